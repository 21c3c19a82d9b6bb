// The end-to-end key-exchange transcript (docs/keys.md, flow 1) and the KDC-flow receipt transcript (flow 2).
//
// docs/keys.md "Requirements": "each side signs a transcript that binds both names, both certificate serials, both
// ephemeral keys and the key's serial with its own identity key, and checks the other's signature and
// certificate. A relay (or a proxy) that swaps a value makes the exchange fail."
//
// Encoding (docs/keys.md): TH = SHA-256(label || 0x00 || field_1 || ... ||
// field_n) where every field is a 2-byte big-endian length followed by its bytes, and times are
// 8-byte big-endian unsigned integers. Length prefixes make the encoding injective: no two different
// field lists hash the same bytes (no "alice"+"bob" == "alic"+"ebob" ambiguity).
//
// Signatures are made over `role context || 0x00 || TH`, with a different context for the sender
// (Alice) and the receiver (Bob), so one party's signature can never be replayed as the other's
// (the same domain separation as TLS 1.3 CertificateVerify, RFC 8446 section 4.4.3).
import { InputError } from '../errors.js';
import { sha256 } from '../crypto/hash.js';
import { assertKeySerial } from './serial.js';

export const E2E_TRANSCRIPT_LABEL = 'kds v1 key exchange e2e';
export const KDC_TRANSCRIPT_LABEL = 'kds v1 key exchange kdc';
const SENDER_CONTEXT = 'kds v1 key sender signature';
const RECEIVER_CONTEXT = 'kds v1 key receiver signature';

export type SignerRole = 'sender' | 'receiver';

/** One party of an exchange as the transcript names it. */
export interface Party {
  name: string;
  certSerial: string;
}

export interface E2eTranscriptInput {
  serial: string;
  sender: Party;
  receiver: Party;
  prekeyId: string;
  /** The receiver's one-time X25519 prekey (his ephemeral key), 32 raw bytes. */
  prekeyPublic: Uint8Array;
  /** The sender's fresh X25519 ephemeral key, 32 raw bytes. */
  ephemeralPublic: Uint8Array;
  expiresAt: number;
}

export interface KdcTranscriptInput {
  serial: string;
  sender: Party;
  receiver: Party;
  /** kdcKeyDigest(serial, key): what the receiver got, bound into his signature. */
  digest: Uint8Array;
  expiresAt: number;
}

/** Transcript hash of an end-to-end exchange (32 bytes). */
export function e2eTranscriptHash(input: E2eTranscriptInput): Buffer {
  assertKeySerial(input.serial);
  return hashFields(E2E_TRANSCRIPT_LABEL, [
    text(input.serial),
    text(input.sender.name),
    text(input.sender.certSerial),
    text(input.receiver.name),
    text(input.receiver.certSerial),
    text(input.prekeyId),
    bytes('prekeyPublic', input.prekeyPublic, 32),
    bytes('ephemeralPublic', input.ephemeralPublic, 32),
    uint64(input.expiresAt),
  ]);
}

/** Transcript hash of a KDC-generated key as its receiver acknowledges it (32 bytes). */
export function kdcTranscriptHash(input: KdcTranscriptInput): Buffer {
  assertKeySerial(input.serial);
  return hashFields(KDC_TRANSCRIPT_LABEL, [
    text(input.serial),
    text(input.sender.name),
    text(input.sender.certSerial),
    text(input.receiver.name),
    text(input.receiver.certSerial),
    bytes('digest', input.digest, 32),
    uint64(input.expiresAt),
  ]);
}

/**
 * The bytes a party signs (RSA-PSS SHA-256, salt 32): `context || 0x00 || TH || digest`, where digest
 * is SHA-256 of the deposited ciphertext (e2e) or kdcKeyDigest (kdc). The sender signs the digest of
 * what she deposited, the receiver the digest of what he received: the KDC checks both against its
 * own record, so a blob swapped anywhere on the way fails a signature, not only the AEAD.
 */
export function signedContent(role: SignerRole, transcriptHash: Uint8Array, digest: Uint8Array): Buffer {
  const context = role === 'sender' ? SENDER_CONTEXT : RECEIVER_CONTEXT;
  return Buffer.concat([
    Buffer.from(context, 'latin1'),
    Buffer.from([0]),
    bytes('transcriptHash', transcriptHash, 32),
    bytes('digest', digest, 32),
  ]);
}

/** The length-prefixed field encoding, exported for the prekey signature and message AAD. */
export function encodeFields(label: string, fields: Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from(label, 'latin1'), Buffer.from([0])];
  for (const field of fields) {
    if (field.length > 0xffff) throw new InputError('malformed', 'transcript field longer than 65535 bytes');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(field.length);
    parts.push(len, field);
  }
  return Buffer.concat(parts);
}

function hashFields(label: string, fields: Buffer[]): Buffer {
  return sha256(encodeFields(label, fields));
}

export function text(value: string): Buffer {
  return Buffer.from(value, 'utf8');
}

export function bytes(title: string, value: Uint8Array, length?: number): Buffer {
  if (!(value instanceof Uint8Array)) throw new InputError('malformed', `expected ${title} as bytes`);
  if (length !== undefined && value.length !== length) {
    throw new InputError('malformed', `expected ${title} of ${length} bytes, got ${value.length}`);
  }
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

export function uint64(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new InputError('malformed', 'expected a time in epoch ms');
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(value));
  return out;
}
