// Digests of distributed keys: what the KDC stores and what the receiver presents in `key.verify`.
//
// - End-to-end keys: digest = SHA-256(ciphertext blob), the blob exactly as the sender deposited it
//   and the KDC delivered it (docs/keys.md "Requirements": "digest of the ciphertext"). The KDC never sees the key, only
//   this blob, so the blob is the only thing both can hash.
// - KDC-generated keys: the key itself is what is delivered (inside the record layer), so the digest
//   is SHA-256("kds v1 kdc key digest" || 0x00 || serial || key). It is bound to the serial so two
//   records can never share a digest, and it is one-way, so storing it next to the wrapped key adds
//   nothing an attacker with the database could use.
// The fingerprint shown to users is the first 16 hex digits of SHA-256(key): enough to compare two
// screens by eye, never the key (docs/keys.md "Requirements": "fingerprint — never the key").
import { sha256 } from '../crypto/hash.js';
import { bytes, text } from './transcript.js';
import { assertKeySerial } from './serial.js';

export const AES_KEY_BYTES = 32;
const KDC_DIGEST_LABEL = 'kds v1 kdc key digest';

export function ciphertextDigest(blob: Uint8Array): Buffer {
  return sha256(bytes('ciphertext', blob));
}

export function kdcKeyDigest(serial: string, key: Uint8Array): Buffer {
  assertKeySerial(serial);
  return sha256(
    Buffer.from(KDC_DIGEST_LABEL, 'latin1'),
    Buffer.from([0]),
    text(serial),
    bytes('key', key, AES_KEY_BYTES),
  );
}

export function keyFingerprint(key: Uint8Array): string {
  return sha256(bytes('key', key, AES_KEY_BYTES))
    .toString('hex')
    .slice(0, 16);
}
