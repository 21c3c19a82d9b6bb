// HKDF with SHA-256 (RFC 5869) through node:crypto hkdfSync: Extract then Expand in one call.
import { createHmac, hkdfSync } from 'node:crypto';
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

/**
 * HKDF-Extract (RFC 5869 section 2.2): PRK = HMAC-Hash(salt, IKM). An empty salt is HMAC's empty key,
 * which equals "a string of HashLen zeros" (HMAC pads keys with zeros).
 */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Buffer {
  return createHmac('sha256', salt).update(ikm).digest();
}

/**
 * HKDF-Expand (RFC 5869 section 2.3): T(i) = HMAC-Hash(PRK, T(i-1) | info | i), OKM = first L octets.
 * hkdfSha256(ikm, salt, info, L) === hkdfExpand(hkdfExtract(salt, ikm), info, L). Callers deriving
 * several keys from one secret and salt (the key schedule: 8 per handshake) extract once and expand
 * per label: one OpenSSL HKDF call costs as much as ~5 HMACs (KDF fetch and context set-up on every call;
 * bench/handshake.ts measured the 8 hkdfSync calls of a handshake at ~250 us of server CPU).
 */
export function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Buffer {
  if (!Number.isInteger(length) || length < 1 || length > HKDF_SHA256_MAX_LENGTH) {
    throw new InputError(
      'bad_request',
      `expected HKDF length in 1..${HKDF_SHA256_MAX_LENGTH}, got ${length}`,
    );
  }
  if (prk.length < 32) throw new InputError('bad_request', 'HKDF-Expand needs a PRK of at least 32 bytes');
  const blocks: Buffer[] = [];
  // T(0) is the empty string, so the first block is HMAC(PRK, info | 0x01); the counter octet i is fed
  // as a one-character latin1 string (no Buffer per block). A key-schedule output (<= 32 bytes) is one
  // HMAC with two updates.
  let previous: Buffer | undefined;
  for (let i = 1; i <= Math.ceil(length / 32); i++) {
    const h = createHmac('sha256', prk);
    if (previous !== undefined) h.update(previous);
    previous = h.update(info).update(String.fromCharCode(i), 'latin1').digest();
    blocks.push(previous);
  }
  const okm = blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks);
  // A view, not Buffer.from(): a short copy would come from Node's shared 8 KiB pool, and session keys
  // live as long as the session (each would pin a pool slab; bench/sessions.ts).
  return okm.length === length ? okm : okm.subarray(0, length);
}
