// Resumption tickets (docs/protocol.md, "Resumption"): what the KDC hands a client at the end of an
// authenticated session so that its next handshake can skip both RSA signatures and verifications.
//
// A ticket is opaque to the client and readable only by the KDC's nodes:
//
//   ticket = key_id (16) || nonce (12) || AES-256-GCM(ticket_key, nonce, contents, aad) || tag (16)
//   aad    = "kds v1 ticket" || 0x00 || key_id
//   contents = msgpack { v: 1, name, serial, role, notAfter, issuedAt, expiresAt, psk (32), authAt? }
//
// authAt is when the full handshake behind the ticket proved the client holds its certificate's key: a
// ticket issued to a resumed session carries it on, so that a chain of tickets cannot postpone that
// proof beyond a bound (RFC 8446 section 4.6.1). Tickets sealed before it existed have none: their
// issuedAt stands for it.
//
// Sealing (AEAD) rather than a MAC over clear contents keeps the psk secret and the client's identity
// unreadable on the wire (RFC 8446 section 4.6.1 leaves the format to the server; RFC 5077 section 4
// recommends exactly this: a key name, an IV and encrypted state with a MAC). The key id names which
// ticket key sealed it, so keys can rotate while tickets under the previous key still open.
//
// A ticket that does not open, names an unknown key, or has expired is refused with one code and one
// message (`ticket_invalid`), so a prober learns nothing about which check failed.
import { aesGcmOpen, aesGcmSeal, AES_GCM_NONCE_BYTES, AES_GCM_TAG_BYTES } from '../crypto/aead.js';
import { randomBytes } from '../crypto/random.js';
import { AuthError, InputError } from '../errors.js';
import { decodeValue, encodeValue } from './codec.js';
import { RESUMPTION_SECRET_BYTES } from './key-schedule.js';
import { MAX_TICKET_BYTES } from './limits.js';
import { s, validate, type Infer } from './schema.js';
import { NAME_PATTERN } from '../pki/names.js';

const TICKET_KEY_ID_BYTES = 16;
const TICKET_KEY_BYTES = 32;
const AAD_LABEL = Buffer.from('kds v1 ticket\0', 'latin1');
export const TICKET_INVALID = 'resumption ticket invalid or expired';

const TicketContentsSchema = s.map({
  v: s.uint({ max: 255 }),
  name: s.string({ min: 1, max: 64, pattern: NAME_PATTERN }),
  serial: s.string({ min: 1, max: 64, pattern: /^[0-9a-f]+$/ }),
  role: s.enumOf(['client', 'admin'] as const),
  notAfter: s.uint({ unit: 'epoch ms' }),
  issuedAt: s.uint({ unit: 'epoch ms' }),
  expiresAt: s.uint({ unit: 'epoch ms' }),
  psk: s.bytes({ len: RESUMPTION_SECRET_BYTES }),
  authAt: s.optional(s.uint({ unit: 'epoch ms' })),
});

/** When the ticket's chain of sessions last proved possession of the certificate's key. */
export function ticketAuthenticatedAt(t: Pick<TicketContents, 'authAt' | 'issuedAt'>): number {
  return t.authAt ?? t.issuedAt;
}

/** What a ticket says: who the session was, until when, and the secret the resumption proves. */
export type TicketContents = Infer<typeof TicketContentsSchema>;

export interface TicketKey {
  /** 16 random bytes, sent in clear at the head of every ticket it seals. */
  id: Buffer;
  key: Buffer;
}

/** The keys a node opens tickets with: `current` seals, every key in `all` (current included) opens. */
export interface TicketKeyRing {
  current: TicketKey;
  all: readonly TicketKey[];
}

function aad(keyId: Uint8Array): Buffer {
  return Buffer.concat([AAD_LABEL, keyId]);
}

export function sealTicket(ring: TicketKeyRing, contents: TicketContents, nonce?: Buffer): Buffer {
  validate(TicketContentsSchema, contents, 'ticket');
  const { id, key } = ring.current;
  const iv = nonce ?? randomBytes(AES_GCM_NONCE_BYTES);
  if (iv.length !== AES_GCM_NONCE_BYTES) throw new InputError('bad_request', 'ticket nonce must be 12 bytes');
  const sealed = aesGcmSeal(key, iv, encodeValue({ ...contents }), aad(id));
  const ticket = Buffer.concat([id, iv, sealed]);
  if (ticket.length > MAX_TICKET_BYTES) throw new InputError('bad_request', 'ticket contents too large');
  return ticket;
}

/**
 * Opens a ticket sealed by one of the ring's keys and checks it has not expired at `now`. Every failure
 * is AuthError `ticket_invalid` with the same message.
 */
export function openTicket(ring: TicketKeyRing, ticket: Uint8Array, now: number): TicketContents {
  const refuse = (): never => {
    throw new AuthError('ticket_invalid', TICKET_INVALID);
  };
  if (ticket.length < TICKET_KEY_ID_BYTES + AES_GCM_NONCE_BYTES + AES_GCM_TAG_BYTES) refuse();
  const id = ticket.subarray(0, TICKET_KEY_ID_BYTES);
  const key = ring.all.find((k) => k.id.equals(id));
  if (key === undefined) return refuse();
  let contents: TicketContents;
  try {
    const plain = aesGcmOpen(
      key.key,
      ticket.subarray(TICKET_KEY_ID_BYTES, TICKET_KEY_ID_BYTES + AES_GCM_NONCE_BYTES),
      ticket.subarray(TICKET_KEY_ID_BYTES + AES_GCM_NONCE_BYTES),
      aad(id),
      'ticket_invalid',
    );
    contents = validate(TicketContentsSchema, decodeValue(plain).value, 'ticket') as TicketContents;
  } catch {
    return refuse();
  }
  if (contents.v !== 1 || now >= contents.expiresAt || now >= contents.notAfter) refuse();
  return contents;
}

/** A fresh ticket key (random id and key). */
export function newTicketKey(): TicketKey {
  return { id: randomBytes(TICKET_KEY_ID_BYTES), key: randomBytes(TICKET_KEY_BYTES) };
}
