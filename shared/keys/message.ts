// Messages encrypted with a distributed key (docs/keys.md "Messages").
//
// ciphertext = AES-256-GCM(key, nonce, plaintext, AAD), nonce = 12 random bytes sent alongside, and
// AAD = "kds v2 message" || 0x00 || len-prefixed(serial, from, to, u64(seq)). Binding the serial and
// both names means the KDC (which relays the message and sees these fields) cannot re-address a message
// to a different key, sender or receiver: the receiver's decryption fails (`bad_mac`).
//
// v2 adds `seq`, the sender's sequence number under this key (1, 2, 3, ...), so that the
// receiver can refuse a message the relay delivers twice (shared/keys/replay-window.ts; docs/keys.md
// "Messages"). The label changed with the AAD ("kds v1 message" -> "kds v2 message"): a v1 message
// never opens as v2 and the other way round. The nonce stays random rather than derived from `seq`:
// both parties send under the same key, and two processes of one client could pick the same `seq`
// (docs/keys.md); with a random nonce such a collision costs one refused message, never a GCM nonce
// reused under one key.
import { InputError } from '../errors.js';
import { aesGcmOpen, aesGcmSeal } from '../crypto/aead.js';
import { randomBytes } from '../crypto/random.js';
import { AES_KEY_BYTES } from './digest.js';
import { GCM_NONCE_BYTES } from './aes-gcm.js';
import { bytes, encodeFields, text, uint64 } from './transcript.js';
import { assertKeySerial } from './serial.js';
import { assertMessageSeq } from './replay-window.js';

const MESSAGE_AAD_LABEL = 'kds v2 message';
/** Plaintext limit: a message must fit a 64 KiB frame with its envelope. */
export const MAX_MESSAGE_BYTES = 32 * 1024;

export interface MessageHeader {
  serial: string;
  from: string;
  to: string;
  /** The sender's sequence number under this key, from 1 (replay-window.ts). */
  seq: number;
}

export interface SealedMessage {
  seq: number;
  nonce: Buffer;
  ciphertext: Buffer;
}

export function messageAad(header: MessageHeader): Buffer {
  assertKeySerial(header.serial);
  return encodeFields(MESSAGE_AAD_LABEL, [
    text(header.serial),
    text(header.from),
    text(header.to),
    uint64(assertMessageSeq(header.seq)),
  ]);
}

/** Seals a message; the result (`seq`, `nonce`, `ciphertext`) is what msg.send carries. */
export function sealMessage(key: Uint8Array, header: MessageHeader, plaintext: Uint8Array): SealedMessage {
  if (plaintext.length > MAX_MESSAGE_BYTES) {
    throw new InputError('bad_request', `message longer than ${MAX_MESSAGE_BYTES} bytes`);
  }
  const aad = messageAad(header);
  const nonce = randomBytes(GCM_NONCE_BYTES);
  return {
    seq: header.seq,
    nonce,
    ciphertext: aesGcmSeal(bytes('key', key, AES_KEY_BYTES), nonce, plaintext, aad),
  };
}

/**
 * Decrypts a message; any tampering with the nonce, ciphertext or header (seq included) gives
 * `bad_mac`. Whether `header.seq` is fresh is the caller's check (replay-window.ts), after this one.
 */
export function openMessage(
  key: Uint8Array,
  header: MessageHeader,
  sealed: Pick<SealedMessage, 'nonce' | 'ciphertext'>,
): Buffer {
  const nonce = bytes('nonce', sealed.nonce, GCM_NONCE_BYTES);
  return aesGcmOpen(
    bytes('key', key, AES_KEY_BYTES),
    nonce,
    bytes('ciphertext', sealed.ciphertext),
    messageAad(header),
    'bad_mac',
  );
}
