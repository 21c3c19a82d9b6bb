// Certificate fingerprints: lowercase hex SHA-256 of the DER encoding, as kds prints and pins them
// (`--ca-fingerprint`). Same value as `openssl x509 -noout -fingerprint -sha256` without the colons.
import { createHash, timingSafeEqual } from 'node:crypto';
import { InputError } from '../errors.js';

export function fingerprint(certDer: Uint8Array): string {
  return createHash('sha256').update(certDer).digest('hex');
}

/**
 * Accepts what people paste: any case, with or without colons or spaces, optionally prefixed by
 * `sha256:` or OpenSSL's `SHA256 Fingerprint=`. Returns 64 lowercase hex digits, or throws InputError
 * `bad_request`.
 */
export function normalizeFingerprint(input: string): string {
  if (typeof input !== 'string') throw new InputError('bad_request', 'expected a SHA-256 fingerprint');
  const hex = input
    .trim()
    .replace(/^(sha-?256\s*fingerprint\s*=|sha-?256:)/i, '')
    .replace(/[:\s]/g, '')
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new InputError('bad_request', 'expected a SHA-256 fingerprint: 64 hex digits, colons optional');
  }
  return hex;
}

/** Compare a certificate's DER against a pinned fingerprint (constant time over the 32-byte digests). */
export function fingerprintMatches(certDer: Uint8Array, pinned: string): boolean {
  const expected = Buffer.from(normalizeFingerprint(pinned), 'hex');
  const actual = createHash('sha256').update(certDer).digest();
  return timingSafeEqual(actual, expected);
}
