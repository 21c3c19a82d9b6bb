// The CA's notBefore backdate, which the CA and its clients agree on. The CA signs every certificate it
// issues with notBefore = its clock minus BACKDATE_MS (rounded down to the second, RFC 5280 4.1.2.5).

/**
 * notBefore is set this far in the past: a client whose clock is a little behind the CA's must not see
 * a brand-new certificate as "not yet valid" (common CA practice; the 30-day lifetime is unaffected).
 * The root and the KDC and admin certificates made by `kds server init` are backdated the same way, so
 * a client a little behind can use a CA made a second ago.
 */
export const BACKDATE_MS = 5 * 60_000;
