// Key lifetimes (docs/keys.md "Lifecycle": `expiresAt`, 1 s .. 90 days): the KDC refuses a request
// outside them (server/keys/ttl.ts), and a client refuses a delivered key whose lifetime is outside them
// (client/keys/key-inbox.ts): only a KDC that does not enforce them (an older or a compromised one) could
// send one, and a key that never expires is one no revocation-by-expiry ever retires.

/** Short lifetimes exist for demonstrations and tests of expiry; below a second is a typo. */
export const MIN_KEY_TTL_MS = 1000;
export const MAX_KEY_TTL_MS = 90 * 24 * 60 * 60 * 1000;
