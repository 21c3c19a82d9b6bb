// The CA's notBefore backdate, which the CA and its clients agree on, and what it lets a client learn
// about its own clock. The CA signs every certificate it issues with notBefore = its clock minus
// BACKDATE_MS (rounded down to the second, RFC 5280 4.1.2.5), so a certificate that has just arrived
// tells the client the CA's time of issuance, and the gap to the local clock is the local clock's skew
// (to within a second plus the round trip); a certificate that is not valid yet by the local clock says
// the local clock is behind by at least the gap. Pure: the caller passes the local time.

/**
 * notBefore is set this far in the past: a client whose clock is a little behind the CA's must not see
 * a brand-new certificate as "not yet valid" (common CA practice; the 30-day lifetime is unaffected).
 * The root and the KDC and admin certificates made by `kds server init` are backdated the same way, so
 * a client a little behind can use a CA made a second ago.
 */
export const BACKDATE_MS = 5 * 60_000;

/**
 * A skew at least this large is reported: NTP keeps clocks within well under a second, so a minute off
 * is a clock nobody keeps, and it moves the renewal schedule and the key expiry a client reads.
 */
export const CLOCK_SKEW_WARN_MS = 60_000;

/**
 * How far the local clock is ahead of the CA's (negative: behind), measured from a certificate the CA
 * issued just now: `localNow` is the local time it arrived.
 */
export function clockSkewOf(freshCert: { notBefore: number }, localNow: number): number {
  return localNow - (freshCert.notBefore + BACKDATE_MS);
}

/** "3 d 4 h", "21 min 40 s", "58 s": the two largest units, for a person reading a warning. */
function describeSpan(ms: number): string {
  let s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return `${s} s`;
  const units: [number, string][] = [
    [86_400, 'd'],
    [3_600, 'h'],
    [60, 'min'],
    [1, 's'],
  ];
  const parts: string[] = [];
  for (const [size, unit] of units) {
    if (parts.length === 2) break;
    const n = Math.floor(s / size);
    if (n > 0 || parts.length > 0) parts.push(`${n} ${unit}`);
    s -= n * size;
  }
  return parts.filter((p) => !p.startsWith('0 ')).join(' ');
}

/** "ahead of the CA's by about 21 d" / "behind the CA's by about 6 min 2 s". */
export function describeSkew(skewMs: number): string {
  return `${skewMs >= 0 ? 'ahead of' : 'behind'} the CA's by about ${describeSpan(skewMs)}`;
}

/**
 * Under a certificate that is not valid yet by this machine's clock: when it starts, and what that says
 * about the clock. The CA backdates what it signs, so unless the CA's own clock is ahead, the local
 * clock is behind by at least the gap.
 */
export function notYetValidHint(notBefore: number, localNow: number): string {
  return `valid from ${new Date(notBefore).toISOString()}, ${describeSpan(notBefore - localNow)} after this machine's clock (${new Date(localNow).toISOString()}): the local clock looks at least that far behind the CA's`;
}
