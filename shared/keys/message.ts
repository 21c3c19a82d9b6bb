// Messages encrypted with a distributed key (issue 4: "messages round-trip with the shared key").
//
// ciphertext = AES-256-GCM(key, nonce, plaintext, AAD), nonce = 12 random bytes sent alongside, and
// AAD = "kds v1 message" || 0x00 || len-prefixed(serial, from, to). Binding the serial and both names
// means the KDC (which relays the message and sees these fields) cannot re-address a message to a
// different key, sender or receiver: the receiver's decryption fails (`bad_mac`).
import { InputError } from '../errors.js';
import { aesGcmOpen, aesGcmSeal } from '../crypto/aead.js';
import { randomBytes } from '../crypto/random.js';
import { AES_KEY_BYTES } from './digest.js';
import { GCM_NONCE_BYTES } from './aes-gcm.js';
import { bytes, encodeFields, text } from './transcript.js';
import { assertKeySerial } from './serial.js';

export const MESSAGE_AAD_LABEL = 'kds v1 message';
/** Plaintext limit: a message must fit a 64 KiB frame with its envelope. */
export const MAX_MESSAGE_BYTES = 32 * 1024;

export interface MessageHeader {
  serial: string;
  from: string;
  to: string;
}

export interface SealedMessage {
  nonce: Buffer;
  ciphertext: Buffer;
}

export function messageAad(header: MessageHeader): Buffer {
  assertKeySerial(header.serial);
  return encodeFields(MESSAGE_AAD_LABEL, [text(header.serial), text(header.from), text(header.to)]);
}

export function sealMessage(key: Uint8Array, header: MessageHeader, plaintext: Uint8Array): SealedMessage {
  if (plaintext.length > MAX_MESSAGE_BYTES) {
    throw new InputError('bad_request', `message longer than ${MAX_MESSAGE_BYTES} bytes`);
  }
  const nonce = randomBytes(GCM_NONCE_BYTES);
  return {
    nonce,
    ciphertext: aesGcmSeal(bytes('key', key, AES_KEY_BYTES), nonce, plaintext, messageAad(header)),
  };
}

/** Decrypts a message; any tampering with the nonce, ciphertext or header gives `bad_mac`. */
export function openMessage(key: Uint8Array, header: MessageHeader, sealed: SealedMessage): Buffer {
  const nonce = bytes('nonce', sealed.nonce, GCM_NONCE_BYTES);
  return aesGcmOpen(
    bytes('key', key, AES_KEY_BYTES),
    nonce,
    bytes('ciphertext', sealed.ciphertext),
    messageAad(header),
    'bad_mac',
  );
}
