// The kds v1 key schedule (docs/protocol.md, "Key schedule"): HKDF-SHA256 (RFC 5869) with the DH shared
// secret Z as input keying material, a transcript hash as salt and an ASCII label as info. Two stages:
//
//   TH_hello = SHA-256(client_hello || server_hello core)        (core: without sig and mac)
//     server_finished_key = HKDF(Z, TH_hello, "kds v1 server finished", 32)
//     client_finished_key = HKDF(Z, TH_hello, "kds v1 client finished", 32)
//   TH_final = SHA-256(client_hello || server_hello || client_finish)   (all as sent)
//     c2s key/iv, s2c key/iv, session id, exporter secret = HKDF(Z, TH_final, label, length)
//
// Salting with the transcript hash binds every key to the whole conversation that produced it
// (TLS 1.3's Derive-Secret(., ., Messages) does the same with a hash in the info). The traffic keys
// use the FINAL transcript, so they also depend on the client's certificate and signature: a session
// cannot be spliced onto another identity. Every output is HKDF(Z, TH, label, length) exactly as above;
// the implementation extracts once per stage and expands per label (shared/crypto/hkdf.ts: one
// OpenSSL HKDF call costs ~5 HMACs, and a handshake derives 8 outputs).
//
// Resumption (docs/protocol.md, "Resumption"): every authenticated session also derives
//     resumption_secret = HKDF(IKM, TH_final, "kds v1 resumption", 32)
// which the KDC seals into a ticket and the client keeps. A resumed handshake proves both sides hold it
// and still runs a fresh Diffie-Hellman: its input keying material is IKM = Z || psk (the new shared
// secret, then the ticket's secret), so its keys need BOTH (forward secrecy from Z, authentication from
// psk), as TLS 1.3's psk_dhe_ke mixes the PSK and the (EC)DHE secret (RFC 8446 section 7.1). The
// client's binder over its hello is HMAC(binder_key, SHA-256(client_hello without binder)) with
//     binder_key = HKDF(psk, salt = empty, "kds v1 resumption binder", 32).
import { hkdfExpand, hkdfExtract, hkdfSha256 } from '../crypto/hkdf.js';
import { AES_256_GCM_KEY_BYTES, AES_GCM_NONCE_BYTES } from '../crypto/aead.js';
import { InputError } from '../errors.js';

export const LABELS = {
  serverFinished: 'kds v1 server finished',
  clientFinished: 'kds v1 client finished',
  c2sKey: 'kds v1 c2s key',
  c2sIv: 'kds v1 c2s iv',
  s2cKey: 'kds v1 s2c key',
  s2cIv: 'kds v1 s2c iv',
  sessionId: 'kds v1 session id',
  exporter: 'kds v1 exporter',
  resumption: 'kds v1 resumption',
  binder: 'kds v1 resumption binder',
} as const;

const FINISHED_KEY_BYTES = 32;
const SESSION_ID_BYTES = 16;
const EXPORTER_SECRET_BYTES = 32;
export const RESUMPTION_SECRET_BYTES = 32;

export interface HandshakeKeys {
  serverFinishedKey: Buffer;
  clientFinishedKey: Buffer;
}

export interface TrafficKeys {
  c2sKey: Buffer;
  c2sIv: Buffer;
  s2cKey: Buffer;
  s2cIv: Buffer;
  sessionId: Buffer;
  exporterSecret: Buffer;
  /** The psk of the ticket this session may issue (docs/protocol.md, "Resumption"). */
  resumptionSecret: Buffer;
}

// The labels' bytes, encoded once (not per handshake).
const LABEL_BYTES = new Map<string, Buffer>(
  Object.values(LABELS).map((label) => [label, Buffer.from(label, 'latin1')]),
);

/** HKDF(Z, TH, label, length) for several labels: PRK = Extract(TH, Z) once, Expand per label. */
function deriver(z: Uint8Array, th: Uint8Array): (label: string, length: number) => Buffer {
  const prk = hkdfExtract(th, z);
  return (label, length) => hkdfExpand(prk, LABEL_BYTES.get(label) ?? Buffer.from(label, 'latin1'), length);
}

export function deriveHandshakeKeys(sharedSecret: Uint8Array, thHello: Uint8Array): HandshakeKeys {
  const derive = deriver(sharedSecret, thHello);
  return {
    serverFinishedKey: derive(LABELS.serverFinished, FINISHED_KEY_BYTES),
    clientFinishedKey: derive(LABELS.clientFinished, FINISHED_KEY_BYTES),
  };
}

export function deriveTrafficKeys(sharedSecret: Uint8Array, thFinal: Uint8Array): TrafficKeys {
  const derive = deriver(sharedSecret, thFinal);
  return {
    c2sKey: derive(LABELS.c2sKey, AES_256_GCM_KEY_BYTES),
    c2sIv: derive(LABELS.c2sIv, AES_GCM_NONCE_BYTES),
    s2cKey: derive(LABELS.s2cKey, AES_256_GCM_KEY_BYTES),
    s2cIv: derive(LABELS.s2cIv, AES_GCM_NONCE_BYTES),
    sessionId: derive(LABELS.sessionId, SESSION_ID_BYTES),
    exporterSecret: derive(LABELS.exporter, EXPORTER_SECRET_BYTES),
    resumptionSecret: derive(LABELS.resumption, RESUMPTION_SECRET_BYTES),
  };
}

/** A resumed handshake's input keying material: the fresh DH secret, then the ticket's psk. */
export function resumptionIkm(sharedSecret: Uint8Array, psk: Uint8Array): Buffer {
  return Buffer.concat([sharedSecret, psk]);
}

const EMPTY_SALT = Buffer.alloc(0);

/**
 * The key of a resumption binder: HKDF(psk, salt = empty, "kds v1 resumption binder", 32), as one
 * Extract and one Expand over HMAC (the same bytes as hkdfSha256): the KDC derives it on every resumed
 * hello, and one OpenSSL HKDF call costs several HMACs (shared/crypto/hkdf.ts).
 */
export function binderKey(psk: Uint8Array): Buffer {
  return hkdfExpand(hkdfExtract(EMPTY_SALT, psk), LABEL_BYTES.get(LABELS.binder)!, FINISHED_KEY_BYTES);
}

const EXPORTER_LABEL = /^[a-z0-9][a-z0-9 ._-]{0,63}$/;

/**
 * Keying material bound to this session for other protocols layered on it (RFC 5705 / RFC 8446 7.5
 * in spirit): HKDF(exporter_secret, salt = empty, info = "kds v1 exporter " || label, length).
 */
export function exportKeyingMaterial(exporterSecret: Uint8Array, label: string, length: number): Buffer {
  if (!EXPORTER_LABEL.test(label))
    throw new InputError('bad_request', `expected exporter label matching ${EXPORTER_LABEL.source}`);
  return hkdfSha256(
    exporterSecret,
    Buffer.alloc(0),
    Buffer.from(`${LABELS.exporter} ${label}`, 'latin1'),
    length,
  );
}
