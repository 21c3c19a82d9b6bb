// The bodies of the key messages (already checked against their schemas in
// shared/protocol/messages-keys.ts) as the inputs of the exchange functions of ./exchange.ts. One
// place, so that the client (client/keys/key-client.ts) and the benchmark's load generator
// (bench/load/key-pairs.ts) read the wire the same way.
import { InputError } from '../errors.js';
import type { ResponseBody } from '../protocol/catalog.js';
import type { E2eDelivery, KdcDelivery, Reservation } from './exchange.js';

type Body = Record<string, unknown>;

/** A bin field as a Buffer view (no copy); anything else is `malformed`. */
export function wireBytes(value: unknown): Buffer {
  if (!(value instanceof Uint8Array)) throw new InputError('malformed', 'expected bytes');
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** The `key.reserve` reply (typed by its response schema): what runSenderExchange needs. */
export function reservationOf(r: ResponseBody<'key.reserve'>): Reservation {
  const { prekey } = r;
  return {
    serial: r.serial,
    expiresAt: r.expiresAt,
    peer: r.peer,
    peerCert: r.peerCert,
    prekey: {
      id: prekey.id,
      publicKey: prekey.publicKey,
      signature: prekey.signature,
      ...(prekey.lastResort === true ? { lastResort: true } : {}),
    },
  };
}

/** A KDC-generated `key.delivered` push: what acceptKdcKey needs. */
export function kdcDeliveryOf(b: Body): KdcDelivery {
  return {
    serial: String(b.serial),
    from: String(b.from),
    fromCertSerial: String(b.fromCertSerial),
    to: String(b.to),
    toCertSerial: String(b.toCertSerial),
    key: wireBytes(b.key),
    expiresAt: Number(b.expiresAt),
  };
}

/** An end-to-end `key.delivered` push: what runReceiverExchange needs. */
export function e2eDeliveryOf(b: Body): E2eDelivery {
  return {
    serial: String(b.serial),
    from: String(b.from),
    fromCert: wireBytes(b.fromCert),
    to: String(b.to),
    toCertSerial: String(b.toCertSerial),
    prekeyId: String(b.prekeyId),
    ephemeral: wireBytes(b.ephemeral),
    signature: wireBytes(b.signature),
    ciphertext: wireBytes(b.ciphertext),
    expiresAt: Number(b.expiresAt),
  };
}
