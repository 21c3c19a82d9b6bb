// HKDF with SHA-256 (RFC 5869) through node:crypto hkdfSync: Extract then Expand in one call.
import { hkdfSync } from 'node:crypto';
import { InputError } from '../errors.js';

/** RFC 5869 section 2.3: "L length of output keying material in octets (<= 255*HashLen)". */
export const HKDF_SHA256_MAX_LENGTH = 255 * 32;

/**
 * OKM = HKDF-Expand(HKDF-Extract(salt, ikm), info, length). An empty salt means HashLen zero bytes
 * (RFC 5869 section 2.2: "if not provided, it is set to a string of HashLen zeros"), which HMAC
 * treats the same as an empty key, so both spellings give the same output.
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
  if (!Number.isInteger(length) || length < 1 || length > HKDF_SHA256_MAX_LENGTH) {
    throw new InputError(
      'bad_request',
      `expected HKDF length in 1..${HKDF_SHA256_MAX_LENGTH}, got ${length}`,
    );
  }
  // Node caps info at 1024 bytes; kds labels are short ASCII strings.
  if (info.length > 1024)
    throw new InputError('bad_request', `expected HKDF info of at most 1024 bytes, got ${info.length}`);
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}
