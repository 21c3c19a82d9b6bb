// Generator of test/vectors/keys-v1.json: the encodings of both key flows of docs/keys.md with fixed
// inputs, so that every byte is reproducible: the signed prekey data, the e2e and kdc transcripts (the
// fields() pre-image and its SHA-256), the X25519 secret, the wrapping key and the wrapped key, the
// digests, the exact bytes each party signs, and one message (AAD v2 and ciphertext). Regenerate after
// an intended change with:
//
//   npx tsc -p . && node dist/test/vectors/generate-keys-v1.js > test/vectors/keys-v1.json
//
// RSA-PSS signatures are randomized, so the vectors give the signature INPUT (what is signed), not a
// signature. The two AES-GCM nonces that are random in use (the wrap and the message) are fixed here;
// each sealed value is opened again with the implementation's own open function before it is recorded.
// Certificate serials are given as the text that enters the encodings; the sender's starts with a zero
// digit on purpose (docs/protocol.md "Serials": the text keeps it).
import { fileURLToPath } from 'node:url';
import { aesGcmSeal } from '../../shared/crypto/aead.js';
import { generateDhKeyPair } from '../../shared/crypto/dh.js';
import { sha256 } from '../../shared/crypto/hash.js';
import { ciphertextDigest, kdcKeyDigest } from '../../shared/keys/digest.js';
import { deriveWrappingKey, unwrapKey } from '../../shared/keys/key-wrap.js';
import { messageAad, openMessage } from '../../shared/keys/message.js';
import { prekeySignedData } from '../../shared/keys/prekey.js';
import {
  E2E_TRANSCRIPT_LABEL,
  e2eTranscriptHash,
  encodeFields,
  KDC_TRANSCRIPT_LABEL,
  kdcTranscriptHash,
  signedContent,
  text,
  uint64,
} from '../../shared/keys/transcript.js';

export interface KeyVectorFile {
  description: string;
  version: 1;
  inputs: {
    key_serial: string;
    sender_name: string;
    sender_cert_serial: string;
    receiver_name: string;
    receiver_cert_serial: string;
    prekey_id: string;
    prekey_private: string;
    sender_ephemeral_private: string;
    expires_at: number;
    key: string;
    wrap_nonce: string;
    message_seq: number;
    message_nonce: string;
    message_plaintext: string;
  };
  /** last_resort_signed_data: the same prekey signed as a last-resort one (its own label). */
  prekey: { public: string; signed_data: string; last_resort_signed_data: string };
  e2e: {
    sender_ephemeral_public: string;
    transcript_fields: string;
    transcript_hash: string;
    shared_secret: string;
    wrapping_key: string;
    ciphertext: string;
    digest: string;
    sender_signed_content: string;
    receiver_signed_content: string;
  };
  kdc: {
    digest: string;
    transcript_fields: string;
    transcript_hash: string;
    receiver_signed_content: string;
  };
  message: { aad: string; ciphertext: string };
}

const I = {
  key_serial: '3c5f0a9d2e7b41c6a8d90f1e2b3c4d5e',
  sender_name: 'alice',
  sender_cert_serial: '04b1c2d3e4f5061728394a5b6c7d8e9f',
  receiver_name: 'bob',
  receiver_cert_serial: '7a1b2c3d4e5f60718293a4b5c6d7e8f9',
  prekey_id: '0f1e2d3c4b5a6978',
  // RFC 7748 section 6.1 test keys: Bob's as the prekey, Alice's as the sender's ephemeral.
  prekey_private: '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb',
  sender_ephemeral_private: '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
  expires_at: Date.UTC(2026, 0, 1),
  key: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
  wrap_nonce: 'a0a1a2a3a4a5a6a7a8a9aaab',
  message_seq: 1,
  message_nonce: 'b0b1b2b3b4b5b6b7b8b9babb',
  message_plaintext: Buffer.from('hello bob').toString('hex'),
};

const hx = (s: string): Buffer => Buffer.from(s, 'hex');

export function buildKeyVectors(): KeyVectorFile {
  const sender = { name: I.sender_name, certSerial: I.sender_cert_serial };
  const receiver = { name: I.receiver_name, certSerial: I.receiver_cert_serial };
  const prekey = generateDhKeyPair('x25519', hx(I.prekey_private));
  const ephemeral = generateDhKeyPair('x25519', hx(I.sender_ephemeral_private));
  const key = hx(I.key);

  // Flow 1 (e2e).
  const e2eFields = encodeFields(E2E_TRANSCRIPT_LABEL, [
    text(I.key_serial),
    text(sender.name),
    text(sender.certSerial),
    text(receiver.name),
    text(receiver.certSerial),
    text(I.prekey_id),
    prekey.publicKey,
    ephemeral.publicKey,
    uint64(I.expires_at),
  ]);
  const th = e2eTranscriptHash({
    serial: I.key_serial,
    sender,
    receiver,
    prekeyId: I.prekey_id,
    prekeyPublic: prekey.publicKey,
    ephemeralPublic: ephemeral.publicKey,
    expiresAt: I.expires_at,
  });
  if (!sha256(e2eFields).equals(th)) throw new Error('e2e transcript pre-image does not hash to TH');
  const z = ephemeral.deriveSharedSecret(prekey.publicKey);
  if (!prekey.deriveSharedSecret(ephemeral.publicKey).equals(z)) throw new Error('X25519 sides disagree');
  const wrappingKey = deriveWrappingKey(z, th);
  const nonce = hx(I.wrap_nonce);
  // wrapKey's layout (key-wrap.ts) with the nonce fixed instead of random.
  const blob = Buffer.concat([nonce, aesGcmSeal(wrappingKey, nonce, key, th)]);
  if (!unwrapKey(blob, wrappingKey, th).equals(key)) throw new Error('the wrapped key does not open');
  const e2eDigest = ciphertextDigest(blob);

  // Flow 2 (kdc).
  const kdcDigest = kdcKeyDigest(I.key_serial, key);
  const kdcFields = encodeFields(KDC_TRANSCRIPT_LABEL, [
    text(I.key_serial),
    text(sender.name),
    text(sender.certSerial),
    text(receiver.name),
    text(receiver.certSerial),
    kdcDigest,
    uint64(I.expires_at),
  ]);
  const kdcTh = kdcTranscriptHash({
    serial: I.key_serial,
    sender,
    receiver,
    digest: kdcDigest,
    expiresAt: I.expires_at,
  });
  if (!sha256(kdcFields).equals(kdcTh)) throw new Error('kdc transcript pre-image does not hash to TH');

  // A message under the key.
  const header = { serial: I.key_serial, from: sender.name, to: receiver.name, seq: I.message_seq };
  const aad = messageAad(header);
  const messageNonce = hx(I.message_nonce);
  const sealed = aesGcmSeal(key, messageNonce, hx(I.message_plaintext), aad);
  if (!openMessage(key, header, { nonce: messageNonce, ciphertext: sealed }).equals(hx(I.message_plaintext)))
    throw new Error('the message does not open');

  return {
    description:
      'kds key distribution (docs/keys.md) known-answer vectors: both flows with fixed inputs. Byte values ' +
      'are lowercase hex; expires_at is epoch ms; serials and ids are the ASCII text that enters fields(). ' +
      'Regenerate with: npx tsc -p . && node dist/test/vectors/generate-keys-v1.js > test/vectors/keys-v1.json',
    version: 1,
    inputs: I,
    prekey: {
      public: prekey.publicKey.toString('hex'),
      signed_data: prekeySignedData(receiver, I.prekey_id, prekey.publicKey).toString('hex'),
      last_resort_signed_data: prekeySignedData(receiver, I.prekey_id, prekey.publicKey, true).toString(
        'hex',
      ),
    },
    e2e: {
      sender_ephemeral_public: ephemeral.publicKey.toString('hex'),
      transcript_fields: e2eFields.toString('hex'),
      transcript_hash: th.toString('hex'),
      shared_secret: z.toString('hex'),
      wrapping_key: wrappingKey.toString('hex'),
      ciphertext: blob.toString('hex'),
      digest: e2eDigest.toString('hex'),
      sender_signed_content: signedContent('sender', th, e2eDigest).toString('hex'),
      receiver_signed_content: signedContent('receiver', th, e2eDigest).toString('hex'),
    },
    kdc: {
      digest: kdcDigest.toString('hex'),
      transcript_fields: kdcFields.toString('hex'),
      transcript_hash: kdcTh.toString('hex'),
      receiver_signed_content: signedContent('receiver', kdcTh, kdcDigest).toString('hex'),
    },
    message: { aad: aad.toString('hex'), ciphertext: sealed.toString('hex') },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${JSON.stringify(buildKeyVectors(), null, 2)}\n`);
}
