// The durable push queue of the key service (docs/keys.md "Requirements"): "The KDC delivers the record to Bob now, or
// queues it durably until Bob next connects", and revocation notices reach both parties "at once if
// connected, otherwise at next connect".
//
// Every notice is first written to `pending_deliveries` (inside the same transaction as the state
// change it announces), then pushed to the recipient's live sessions if any. A row is deleted only
// when the recipient acknowledges it (`key.ack`), so a notice survives a dropped connection or a
// server restart: delivery is at-least-once and clients handle duplicates idempotently. On connect,
// a client asks for its backlog with `key.sync`; the pushes precede the reply on the ordered channel.
//
// What is queued is only a reference (nothing but the key serial), so a KDC-generated key exists at rest
// only wrapped under the KEK. A notice sent from the queue (key.sync) is rebuilt from the key record and
// shows the key's current state. A notice pushed live right after the commit that queued it is built
// from the data the service has in hand (the same fields, read from the same transaction's values:
// `deliveredPush`, `verifiedPush`): re-reading the record and unwrapping the key again for it cost about
// a third of the KDC's CPU per key in bench/keys.ts.
import { pemToDer } from '../../shared/pki/pem.js';
import type { DeliveryKind, DeliveryRecord, SymKeyRecord } from '../store/store.js';
import type { AsyncStoreData } from '../store/async-store.js';
import type { KeyEncryptionKeys } from './kek.js';

/** A push ready to send: `{ t: type, b: body }`; `body.d` is the delivery id to acknowledge. */
export interface Push {
  recipient: string;
  type: DeliveryKind;
  body: Record<string, unknown>;
}

export interface MessageEnvelope {
  from: string;
  to: string;
  serial: string;
  /** The sender's sequence number (bound into the AAD; docs/keys.md "Messages"). */
  seq: number;
  nonce: Buffer;
  ciphertext: Buffer;
  sentAt: number;
}

export function encodeMessagePayload(m: MessageEnvelope): Buffer {
  return Buffer.from(
    JSON.stringify({
      from: m.from,
      to: m.to,
      serial: m.serial,
      seq: m.seq,
      nonce: m.nonce.toString('base64'),
      ciphertext: m.ciphertext.toString('base64'),
      sentAt: m.sentAt,
    }),
    'utf8',
  );
}

/** undefined for a message queued by a v1 KDC (no `seq`): no v2 client could open it (label v2). */
function decodeMessagePayload(payload: Buffer): MessageEnvelope | undefined {
  const m = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
  if (typeof m.seq !== 'number' || !Number.isSafeInteger(m.seq) || m.seq < 1) return undefined;
  return {
    from: String(m.from),
    to: String(m.to),
    serial: String(m.serial),
    seq: m.seq,
    nonce: Buffer.from(String(m.nonce), 'base64'),
    ciphertext: Buffer.from(String(m.ciphertext), 'base64'),
    sentAt: Number(m.sentAt),
  };
}

/**
 * The push body for a queued delivery, or undefined when the notice is obsolete (a key delivery for a
 * key that is no longer active: the receiver gets the key.revoked notice instead).
 */
export async function buildPush(
  delivery: DeliveryRecord,
  store: Pick<AsyncStoreData, 'getSymKey' | 'getCertificate'>,
  kek: () => KeyEncryptionKeys | undefined,
): Promise<Push | undefined> {
  const base = { recipient: delivery.recipient, type: delivery.kind };
  if (delivery.kind === 'msg') {
    if (delivery.payload === null) return undefined;
    const m = decodeMessagePayload(delivery.payload);
    if (m === undefined) return undefined;
    return { ...base, body: { d: delivery.id, ...m } };
  }
  const key = await store.getSymKey(delivery.keySerial);
  if (key === undefined || key.state === 'reserved') return undefined;
  switch (delivery.kind) {
    case 'key.delivered':
      if (key.state !== 'active') return undefined;
      return deliveredBody(delivery, key, store, kek);
    case 'key.revoked':
      return {
        ...base,
        body: {
          d: delivery.id,
          serial: key.serial,
          state: key.state === 'superseded' ? 'superseded' : 'revoked',
          reason: key.revokedReason ?? (key.state === 'superseded' ? 'superseded' : 'unspecified'),
          revokedAt: key.stateChangedAt ?? 0,
          ...(key.supersededBy === null ? {} : { supersededBy: key.supersededBy }),
        },
      };
    case 'key.verified':
      return {
        ...base,
        body: { d: delivery.id, serial: key.serial, verifiedAt: key.peerVerifiedAt ?? 0 },
      };
  }
}

async function deliveredBody(
  delivery: DeliveryRecord,
  key: SymKeyRecord,
  store: Pick<AsyncStoreData, 'getCertificate'>,
  kek: () => KeyEncryptionKeys | undefined,
): Promise<Push | undefined> {
  if (key.mode === 'e2e') {
    const cert = await store.getCertificate(key.ownerCert);
    if (cert?.pem === null || cert?.pem === undefined) return undefined;
    return deliveredPush(delivery, key, { fromCert: pemToDer(cert.pem, 'CERTIFICATE') });
  }
  const ring = kek();
  if (ring === undefined || key.wrappedKey === null || key.kekVersion === null) return undefined;
  return deliveredPush(delivery, key, { key: ring.unwrap(key.serial, key.wrappedKey, key.kekVersion) });
}

/** The key fields a key.delivered notice shows (a subset of SymKeyRecord). */
export type DeliveredKey = Pick<
  SymKeyRecord,
  | 'serial'
  | 'mode'
  | 'owner'
  | 'ownerCert'
  | 'peer'
  | 'peerCert'
  | 'createdAt'
  | 'expiresAt'
  | 'prekeyId'
  | 'ephemeral'
  | 'ciphertext'
  | 'senderSignature'
>;

/**
 * key.delivered for `delivery` from a key in hand: an e2e key with the sender's certificate (DER), or a
 * KDC-generated key with its plaintext (sent inside the record layer only). Undefined when the record
 * lacks what its mode needs.
 */
export function deliveredPush(
  delivery: DeliveryRecord,
  key: DeliveredKey,
  extra: { fromCert: Buffer } | { key: Buffer },
): Push | undefined {
  const common = {
    d: delivery.id,
    serial: key.serial,
    mode: key.mode,
    from: key.owner,
    fromCertSerial: key.ownerCert,
    to: key.peer,
    toCertSerial: key.peerCert,
    createdAt: key.createdAt,
    expiresAt: key.expiresAt,
  };
  if (key.mode === 'e2e') {
    if (
      !('fromCert' in extra) ||
      key.ephemeral === null ||
      key.ciphertext === null ||
      key.senderSignature === null
    ) {
      return undefined;
    }
    return {
      recipient: delivery.recipient,
      type: 'key.delivered',
      body: {
        ...common,
        fromCert: extra.fromCert,
        prekeyId: key.prekeyId,
        ephemeral: key.ephemeral,
        signature: key.senderSignature,
        ciphertext: key.ciphertext,
      },
    };
  }
  if (!('key' in extra)) return undefined;
  return { recipient: delivery.recipient, type: 'key.delivered', body: { ...common, key: extra.key } };
}

/** key.verified for `delivery`: the receiver verified key `serial` at `verifiedAt`. */
export function verifiedPush(delivery: DeliveryRecord, serial: string, verifiedAt: number): Push {
  return {
    recipient: delivery.recipient,
    type: 'key.verified',
    body: { d: delivery.id, serial, verifiedAt },
  };
}

/**
 * The store channel a queued notice is announced on, for the KDC nodes sharing a PostgreSQL store: the
 * node holding the recipient's session reads the delivery from the store and pushes it. The payload
 * names the delivery only (announcementOf), never what it carries: a key's material stays in the
 * store's rows, wrapped under the KEK, and in the record layer.
 */
export const DELIVERY_CHANNEL = 'delivery';

/** Which delivery was queued, for whom, by which node (that node pushed it to its own sessions). */
export interface Announcement {
  node: string;
  id: number;
  recipient: string;
}

export function encodeAnnouncement(a: Announcement): string {
  return JSON.stringify({ n: a.node, d: a.id, r: a.recipient });
}

/** undefined for a payload that is not an announcement (the channel is open to anyone on the database). */
export function decodeAnnouncement(payload: string): Announcement | undefined {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { n, d, r } = v as Record<string, unknown>;
  if (typeof n !== 'string' || typeof r !== 'string' || !Number.isSafeInteger(d) || (d as number) < 1)
    return undefined;
  return { node: n, id: d as number, recipient: r };
}
