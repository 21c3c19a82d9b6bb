// The record layer (docs/protocol.md, "Records"): AES-256-GCM with a 16-byte tag, a per-direction key
// and IV, and implicit sequence numbers. Each direction has its own sealer (sender) and opener (receiver).
//
// RFC 8446 section 5.3, the per-record nonce: "1. The 64-bit record sequence number is encoded in network
// byte order and padded to the left with zeros to iv_length. 2. The padded sequence number is XORed with
// either the static client_write_iv or server_write_iv (depending on the role)."
// Sequence numbers are never sent: "Each sequence number is set to zero at the beginning of a connection"
// and both ends count. A replayed, reordered, dropped or altered record is therefore opened with the
// wrong nonce (or fails its tag) and is refused with record_auth; after that the opener refuses
// everything (fail closed) and the caller closes the connection.
//
// Additional data: the ASCII string "kds v1 c2s" or "kds v1 s2c", binding the protocol version and the
// direction (a record reflected back to its sender fails even though the keys already differ).
import { aesGcmOpen, aesGcmSeal, AES_256_GCM_KEY_BYTES, AES_GCM_NONCE_BYTES } from '../crypto/aead.js';
import { createDecipheriv } from 'node:crypto';
import { AES_GCM_TAG_BYTES } from '../crypto/aead.js';
import { AuthError, InputError, ProtocolError } from '../errors.js';
import { labOff, type Defences } from '../lab-switches.js';
import { SEQUENCE_LIMIT } from './limits.js';

export type Direction = 'c2s' | 's2c';

export function recordAad(direction: Direction): Buffer {
  return Buffer.from(`kds v1 ${direction}`, 'latin1');
}

// One shared copy per direction: a short Buffer.from(string) is a slice of Node's 8 KiB allocation
// pool, and such a slice held by every idle session kept a pool slab alive per session
// (bench/sessions.ts: ~6 KiB of ArrayBuffers per idle session).
const AAD: Record<Direction, Buffer> = { c2s: recordAad('c2s'), s2c: recordAad('s2c') };

export function recordNonce(iv: Uint8Array, sequence: number): Buffer {
  const nonce = Buffer.alloc(AES_GCM_NONCE_BYTES);
  nonce.writeBigUInt64BE(BigInt(sequence), AES_GCM_NONCE_BYTES - 8);
  for (let i = 0; i < AES_GCM_NONCE_BYTES; i++) nonce[i]! ^= iv[i]!;
  return nonce;
}

abstract class RecordState {
  protected seq = 0;
  protected readonly aad: Buffer;
  protected readonly limit: number;

  constructor(
    protected readonly key: Buffer,
    protected readonly iv: Buffer,
    direction: Direction,
    sequenceLimit: number = SEQUENCE_LIMIT,
  ) {
    if (key.length !== AES_256_GCM_KEY_BYTES || iv.length !== AES_GCM_NONCE_BYTES) {
      throw new InputError('bad_request', 'record layer needs a 32-byte key and a 12-byte IV');
    }
    if (!Number.isSafeInteger(sequenceLimit) || sequenceLimit < 1 || sequenceLimit > SEQUENCE_LIMIT) {
      throw new InputError('bad_request', `sequence limit must be in 1..${SEQUENCE_LIMIT}`);
    }
    this.aad = AAD[direction];
    this.limit = sequenceLimit;
  }

  /** The sequence number the next record will use. */
  get sequence(): number {
    return this.seq;
  }

  protected checkLimit(): void {
    if (this.seq >= this.limit) {
      throw new ProtocolError('sequence_exhausted', 'record sequence limit reached: open a new session');
    }
  }
}

export class RecordSealer extends RecordState {
  /** Returns ciphertext || tag for the next sequence number. Records must be sent in sealing order. */
  seal(plaintext: Uint8Array): Buffer {
    this.checkLimit();
    const sealed = aesGcmSeal(this.key, recordNonce(this.iv, this.seq), plaintext, this.aad);
    this.seq += 1;
    return sealed;
  }
}

/** Records behind or ahead of the expected one that a lab opener with the sequence number off tries. */
const LAB_SEQUENCE_WINDOW = 64;

export class RecordOpener extends RecordState {
  private failed = false;
  readonly #defences: Defences | undefined;

  constructor(key: Buffer, iv: Buffer, direction: Direction, sequenceLimit?: number, defences?: Defences) {
    super(key, iv, direction, sequenceLimit);
    this.#defences = defences;
  }

  /** Opens the next record; any failure is AuthError record_auth and poisons the opener. */
  open(sealed: Uint8Array): Buffer {
    if (this.failed) throw new AuthError('record_auth', 'record authentication failed');
    this.checkLimit();
    try {
      // LAB SWITCH sequence-number: any sequence number near the expected one opens the record.
      if (labOff(this.#defences, 'sequence-number')) return this.#openAnySequence(sealed);
      const plaintext = this.#openAt(sealed, this.seq);
      this.seq += 1;
      return plaintext;
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  #openAt(sealed: Uint8Array, sequence: number): Buffer {
    // LAB SWITCH record-authentication: the GCM tag is not checked (CTR decryption of the ciphertext).
    if (labOff(this.#defences, 'record-authentication')) return this.#openWithoutTag(sealed, sequence);
    return aesGcmOpen(this.key, recordNonce(this.iv, sequence), sealed, this.aad, 'record_auth');
  }

  /**
   * MITM lab only (the sequence-number switch): the nonce is still IV XOR sequence number, but instead
   * of insisting on the next number the opener tries the expected one, then the others in a window
   * around it, and continues after the one that opened. A replayed, reordered or skipped record opens.
   */
  #openAnySequence(sealed: Uint8Array): Buffer {
    const from = Math.max(0, this.seq - LAB_SEQUENCE_WINDOW);
    const candidates = [this.seq];
    for (let s = from; s <= this.seq + LAB_SEQUENCE_WINDOW && s < this.limit; s++)
      if (s !== this.seq) candidates.push(s);
    for (const s of candidates) {
      let plaintext: Buffer;
      try {
        plaintext = this.#openAt(sealed, s);
      } catch {
        continue;
      }
      this.seq = Math.max(this.seq, s + 1);
      return plaintext;
    }
    throw new AuthError('record_auth', 'record authentication failed');
  }

  /**
   * MITM lab only (the record-authentication switch): GCM encrypts with AES-CTR starting at counter
   * block nonce || 0x00000002 (NIST SP 800-38D section 7.1, J0 = IV || 0^31 || 1 for a 96-bit IV, and
   * the first block uses inc32(J0)); decrypting that way skips the tag. The tag must still be there.
   */
  #openWithoutTag(sealed: Uint8Array, sequence: number): Buffer {
    if (sealed.length < AES_GCM_TAG_BYTES) throw new AuthError('record_auth', 'record authentication failed');
    const counter = Buffer.concat([recordNonce(this.iv, sequence), Buffer.from([0, 0, 0, 2])]);
    const decipher = createDecipheriv('aes-256-ctr', this.key, counter);
    const body = Buffer.from(sealed.subarray(0, sealed.length - AES_GCM_TAG_BYTES));
    return Buffer.concat([decipher.update(body), decipher.final()]);
  }
}
