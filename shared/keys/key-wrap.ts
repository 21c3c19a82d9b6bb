// Wrapping the AES-256 key for its receiver in the end-to-end flow (docs/keys.md, flow 1, step 3):
// "Alice generates the AES-256 key, encrypts it under the DH-derived key (AES-256-GCM)".
//
// wrapping key = HKDF-SHA256(IKM = X25519(ephemeral, prekey), salt = TH, info = "kds v1 e2e key wrap", L = 32)
// blob         = nonce (12) || AES-256-GCM(wrapping key, nonce, key, AAD = TH) (32) || tag (16)   = 60 bytes
//
// The transcript hash is both the HKDF salt and the AEAD associated data, so a blob only opens in the
// exchange it was made for (RFC 5869 section 3.1: the salt "adds significantly to the strength of
// HKDF"). The nonce is random: each wrapping key is used exactly once, so nonce reuse cannot occur.
import { InputError } from '../errors.js';
import { hkdfSha256 } from '../crypto/hkdf.js';
import { AES_KEY_BYTES } from './digest.js';
import { openBlob, sealBlob, GCM_NONCE_BYTES, GCM_TAG_BYTES } from './aes-gcm.js';
import { bytes } from './transcript.js';

const WRAP_INFO = 'kds v1 e2e key wrap';
export const WRAPPED_KEY_BYTES = GCM_NONCE_BYTES + AES_KEY_BYTES + GCM_TAG_BYTES;

export function deriveWrappingKey(sharedSecret: Uint8Array, transcriptHash: Uint8Array): Buffer {
  const ikm = bytes('sharedSecret', sharedSecret, 32);
  const salt = bytes('transcriptHash', transcriptHash, 32);
  return hkdfSha256(ikm, salt, Buffer.from(WRAP_INFO, 'latin1'), 32);
}

export function wrapKey(key: Uint8Array, wrappingKey: Uint8Array, transcriptHash: Uint8Array): Buffer {
  return sealBlob(
    bytes('wrappingKey', wrappingKey, 32),
    bytes('key', key, AES_KEY_BYTES),
    bytes('transcriptHash', transcriptHash, 32),
  );
}

/** Opens a blob made by wrapKey; any tampering gives AuthError `bad_mac` with a fixed message. */
export function unwrapKey(blob: Uint8Array, wrappingKey: Uint8Array, transcriptHash: Uint8Array): Buffer {
  if (!(blob instanceof Uint8Array) || blob.length !== WRAPPED_KEY_BYTES) {
    throw new InputError('malformed', `expected a wrapped key of ${WRAPPED_KEY_BYTES} bytes`);
  }
  return openBlob(
    bytes('wrappingKey', wrappingKey, 32),
    blob,
    bytes('transcriptHash', transcriptHash, 32),
    'bad_mac',
  );
}
