// AES-256-GCM (NIST SP 800-38D) with a 96-bit nonce and a 128-bit tag, via node:crypto.
// The tag length is pinned on BOTH createCipheriv and createDecipheriv: without authTagLength Node's
// decipher accepts any tag length from 4 bytes up (setAuthTag with a truncated tag), which turns a
// 128-bit forgery bound into a 32-bit one.
import { createCipheriv, createDecipheriv, type KeyObject } from 'node:crypto';
import { InputError, AuthError, type CodeOf } from '../errors.js';

export const AES_256_GCM_KEY_BYTES = 32;
export const AES_GCM_NONCE_BYTES = 12;
export const AES_GCM_TAG_BYTES = 16;

const ALG = 'aes-256-gcm';

/** Returns ciphertext || tag (tag: the last 16 bytes). */
export function aesGcmSeal(
  key: Uint8Array | KeyObject,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Buffer {
  checkKeyAndNonce(key, nonce);
  const cipher = createCipheriv(ALG, key, nonce, { authTagLength: AES_GCM_TAG_BYTES });
  cipher.setAAD(aad);
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  return Buffer.concat([head, tail, cipher.getAuthTag()]);
}

/**
 * Opens ciphertext || tag. Every failure (too short to hold a tag, wrong tag, wrong key, nonce or AAD)
 * throws AuthError with `code` and one fixed message, so nothing distinguishes the cases.
 */
export function aesGcmOpen(
  key: Uint8Array | KeyObject,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
  code: CodeOf<'auth'> = 'record_auth',
): Buffer {
  checkKeyAndNonce(key, nonce);
  const message = code === 'record_auth' ? 'record authentication failed' : 'decryption failed';
  if (sealed.length < AES_GCM_TAG_BYTES) throw new AuthError(code, message);
  const tagAt = sealed.length - AES_GCM_TAG_BYTES;
  try {
    const decipher = createDecipheriv(ALG, key, nonce, { authTagLength: AES_GCM_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(tagAt));
    const head = decipher.update(sealed.subarray(0, tagAt));
    const tail = decipher.final(); // throws on a bad tag
    return Buffer.concat([head, tail]);
  } catch {
    throw new AuthError(code, message);
  }
}

function checkKeyAndNonce(key: Uint8Array | KeyObject, nonce: Uint8Array): void {
  const keyLength = key instanceof Uint8Array ? key.length : key.symmetricKeySize;
  if (keyLength !== AES_256_GCM_KEY_BYTES) {
    throw new InputError(
      'bad_request',
      `expected AES-256 key of ${AES_256_GCM_KEY_BYTES} bytes, got ${String(keyLength)}`,
    );
  }
  if (nonce.length !== AES_GCM_NONCE_BYTES) {
    throw new InputError(
      'bad_request',
      `expected GCM nonce of ${AES_GCM_NONCE_BYTES} bytes, got ${nonce.length}`,
    );
  }
}
