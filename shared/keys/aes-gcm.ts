// The self-contained AES-256-GCM blob the key service stores and sends: nonce (12) || ciphertext || tag
// (16), with a fresh random nonce per seal. The primitive (tag length pinned on both sides) is
// shared/crypto/aead.ts; this file only fixes the blob layout. Random 96-bit nonces are safe here
// because no key seals more than a few blobs (NIST SP 800-38D section 8.3 bounds random-IV use at 2^32
// invocations per key).
import { AuthError, type CodeOf } from '../errors.js';
import { aesGcmOpen, aesGcmSeal, AES_GCM_NONCE_BYTES, AES_GCM_TAG_BYTES } from '../crypto/aead.js';
import { randomBytes } from '../crypto/random.js';

export const GCM_NONCE_BYTES = AES_GCM_NONCE_BYTES;
export const GCM_TAG_BYTES = AES_GCM_TAG_BYTES;

export function sealBlob(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = randomBytes(GCM_NONCE_BYTES);
  return Buffer.concat([nonce, aesGcmSeal(key, nonce, plaintext, aad)]);
}

/** Opens a sealBlob blob; any failure throws AuthError `code` with one fixed message. */
export function openBlob(
  key: Uint8Array,
  blob: Uint8Array,
  aad: Uint8Array,
  code: CodeOf<'auth'> = 'bad_mac',
): Buffer {
  if (blob.length < GCM_NONCE_BYTES + GCM_TAG_BYTES) throw new AuthError(code, 'decryption failed');
  return aesGcmOpen(key, blob.subarray(0, GCM_NONCE_BYTES), blob.subarray(GCM_NONCE_BYTES), aad, code);
}
