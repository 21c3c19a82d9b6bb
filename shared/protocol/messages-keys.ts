// Catalog entries of the key-distribution service (docs/keys.md):
// request and response bodies of every key.* / msg.* / admin.key* type and the bodies of its pushes.
// The catalog (messages.ts) imports this file; nothing else needs to change to add these types.
import { s } from './schema.js';
import { defineAppType } from './app-types.js';
import { MAX_CERT_BYTES, MAX_SIGNATURE_BYTES } from './limits.js';
import { KEY_REVOCATION_REASONS } from '../revocation-reasons.js';
import { KEY_STATES, VERDICTS } from '../keys/verdict.js';
import { MAX_PREKEY_STOCK } from '../keys/prekey.js';

const NAME = s.string({ min: 1, max: 64, pattern: /^[a-z0-9][a-z0-9._-]{0,63}$/ });
const CERT_SERIAL = s.string({ min: 1, max: 40, pattern: /^[0-9a-f]{1,40}$/ });
const KEY_SERIAL = s.string({ min: 32, max: 32, pattern: /^[0-9a-f]{32}$/ });
const PREKEY_ID = s.string({ min: 16, max: 16, pattern: /^[0-9a-f]{16}$/ });
const X25519_PUBLIC = s.bytes({ len: 32 });
const SIGNATURE = s.bytes({ min: 64, max: MAX_SIGNATURE_BYTES });
const DIGEST = s.bytes({ len: 32 });
const AES_KEY = s.bytes({ len: 32 });
/** nonce (12) || AES-256-GCM(32-byte key) || tag (16): shared/keys/key-wrap.ts WRAPPED_KEY_BYTES. */
const WRAPPED_KEY = s.bytes({ len: 60 });
// The latest time a JavaScript Date holds (ECMA-262 21.4.1.1: 8.64e15 ms): a later one cannot be shown
// or compared as a date by either side.
const TIME = s.uint({ unit: 'epoch ms', max: 8.64e15 });
/** Key lifetime in ms (server/keys/ttl.ts checks the bounds with a clearer message). */
const TTL = s.uint({ max: 90 * 24 * 60 * 60 * 1000, unit: 'ms' });
const MODE = s.enumOf(['e2e', 'kdc'] as const);
/** A reason a client or the admin may give for revoking a key (shared/revocation-reasons.ts). */
const REASON = s.enumOf(KEY_REVOCATION_REASONS);
/** shared/keys/verdict.ts holds the lists: the service's types and the wire's enums are one. */
const KEY_STATE = s.enumOf(KEY_STATES);
const VERDICT = s.enumOf(VERDICTS);
const ANY_REASON = s.string({ max: 64, pattern: /^[A-Za-z]+$/ });
const DELIVERY_ID = s.uint();
/**
 * Optional on key.verify, key.reserve and key.create: delivery ids of the caller's own notices to
 * acknowledge in the same commit as the request (what key.ack does), saving a request per notice.
 */
const PIGGYBACK_ACK = s.optional(s.array(DELIVERY_ID, { min: 1, max: 1000 }));
/** Message plaintext limit (shared/keys/message.ts MAX_MESSAGE_BYTES) plus the 16-byte tag. */
const MESSAGE_CIPHERTEXT = s.bytes({ min: 16, max: 32 * 1024 + 16 });
/** Listings carry the newest keys up to this many, with `truncated: true` when there were more. */
export const MAX_KEYS_LISTED = 1000;
/**
 * Most prekey ids a `key.prekeys` reply lists in `held` (~17 KB of msgpack, well inside one record). A
 * KDC that holds more for one client leaves `held` out, and the client then deletes nothing
 * (docs/keys.md "Prekey housekeeping").
 */
export const MAX_HELD_PREKEYS = 1000;
/**
 * Most keys one `key.create.batch` makes and one `key.verify.batch` checks. 32 keeps both bodies far
 * inside one record (a verify item with an RSA-8192 signature is ~1.1 KB: ~35 KB for 32 of them) and
 * spends at most a quarter of the pair's active-key bound (128) in one request; past ~16 keys per request
 * the per-request share of a key's cost is already small (docs/keys.md "Batches").
 */
export const MAX_KEYS_PER_BATCH = 32;
/** A sender's message sequence number under one key: 1..2^53-1 (shared/keys/replay-window.ts). */
const MESSAGE_SEQ = s.uint();

const KEY_SUMMARY = s.map({
  serial: KEY_SERIAL,
  mode: MODE,
  owner: NAME,
  peer: NAME,
  state: KEY_STATE,
  createdAt: TIME,
  expiresAt: TIME,
  peerVerified: s.bool(),
  revokedAt: s.optional(TIME),
  reason: s.optional(ANY_REASON),
  revokedBy: s.optional(NAME),
  replaces: s.optional(KEY_SERIAL),
  supersededBy: s.optional(KEY_SERIAL),
});

const SIGNED_PREKEY = s.map({ id: PREKEY_ID, publicKey: X25519_PUBLIC, signature: SIGNATURE });
/**
 * A prekey handed to a sender: `lastResort: true` when it is the peer's last-resort prekey (its one-time
 * stock was empty), signed under the last-resort label (shared/keys/prekey.ts), so the flag is checked.
 */
const RESERVED_PREKEY = s.map({
  id: PREKEY_ID,
  publicKey: X25519_PUBLIC,
  signature: SIGNATURE,
  lastResort: s.optional(s.bool()),
});

/** key.reserve (end to end) and key.create (KDC-generated) ask for the same: a key with `peer`. */
const NEW_KEY = s.map({
  peer: NAME,
  ttl: s.optional(TTL),
  replaces: s.optional(KEY_SERIAL),
  ack: PIGGYBACK_ACK,
});

const REVOKE_RESULT = s.map({
  serial: KEY_SERIAL,
  status: s.enumOf(['revoked', 'already_revoked'] as const),
  revokedAt: TIME,
  reason: ANY_REASON,
});

/** One verification verdict: what `key.verify` answers, for one item of a batch. */
const VERIFY_RESULT = {
  serial: KEY_SERIAL,
  verdict: VERDICT,
  peerVerified: s.bool(),
  state: s.optional(KEY_STATE),
  reason: s.optional(ANY_REASON),
  revokedAt: s.optional(TIME),
} as const;

/** One item of `key.verify.batch`: the fields of a `key.verify` request, acks on the batch. */
const VERIFY_ITEM = s.map({ serial: KEY_SERIAL, digest: DIGEST, signature: s.optional(SIGNATURE) });

/**
 * One item's answer in `key.verify.batch`: its verdict (the fields of a `key.verify` answer), or the error
 * the single request would have failed with (`error`: the code, `message`), for that item only.
 */
const VERIFY_BATCH_RESULT = s.map(
  {
    serial: KEY_SERIAL,
    verdict: s.optional(VERDICT),
    peerVerified: s.optional(s.bool()),
    state: s.optional(KEY_STATE),
    reason: s.optional(ANY_REASON),
    revokedAt: s.optional(TIME),
    error: s.optional(s.string({ min: 1, max: 64, pattern: /^[a-z_]+$/ })),
    message: s.optional(s.string({ max: 512 })),
  },
  (v) =>
    v.error === undefined
      ? v.verdict !== undefined && v.peerVerified !== undefined && v.message === undefined
        ? undefined
        : 'a verdict needs `verdict` and `peerVerified` and no `message`'
      : v.verdict === undefined && v.peerVerified === undefined && v.state === undefined
        ? undefined
        : 'an item that failed carries `error` and `message`, no verdict',
  'either a verdict (`verdict`, `peerVerified`, optional `state`, `reason`, `revokedAt`) or `error` and `message`',
);

/** Request types: the body the client sends and the body of the `ok` response. */
export const KEY_REQUESTS = {
  'key.peer': {
    request: s.map({ name: NAME }),
    response: s.map({
      name: NAME,
      cert: s.bytes({ min: 1, max: MAX_CERT_BYTES }),
      serial: CERT_SERIAL,
      notAfter: TIME,
      status: s.literal('good'),
    }),
  },
  'key.prekeys': {
    // listHeld (with no prekeys): also answer `held`, every prekey id of this client the KDC still holds
    // (stock, open reservations, queued deliveries), so the client can delete orphaned privates. Asked
    // for, not always sent: it costs the KDC one more query (~80 us), and a client needs it once per
    // session, not on each top-up after a received key.
    // lastResort (request): store or replace the client's last-resort prekey; (response): the id of the
    // one the KDC holds for the caller's current certificate, absent when none.
    request: s.map({
      prekeys: s.array(SIGNED_PREKEY, { max: MAX_PREKEY_STOCK }),
      listHeld: s.optional(s.bool()),
      lastResort: s.optional(SIGNED_PREKEY),
    }),
    response: s.map({
      stock: s.uint(),
      wanted: s.uint({ max: MAX_PREKEY_STOCK }),
      held: s.optional(s.array(PREKEY_ID, { max: MAX_HELD_PREKEYS })),
      lastResort: s.optional(PREKEY_ID),
    }),
  },
  'key.reserve': {
    request: NEW_KEY,
    response: s.map({
      serial: KEY_SERIAL,
      createdAt: TIME,
      expiresAt: TIME,
      peer: NAME,
      peerCert: s.bytes({ min: 1, max: MAX_CERT_BYTES }),
      prekey: RESERVED_PREKEY,
    }),
  },
  'key.deposit': {
    request: s.map({
      serial: KEY_SERIAL,
      ephemeral: X25519_PUBLIC,
      signature: SIGNATURE,
      ciphertext: WRAPPED_KEY,
    }),
    response: s.map({ serial: KEY_SERIAL, createdAt: TIME, expiresAt: TIME, digest: DIGEST }),
  },
  'key.create': {
    request: NEW_KEY,
    response: s.map({
      serial: KEY_SERIAL,
      key: AES_KEY,
      createdAt: TIME,
      expiresAt: TIME,
      peer: NAME,
      ownerCertSerial: CERT_SERIAL,
      peerCertSerial: CERT_SERIAL,
    }),
  },
  'key.verify': {
    // ack: the receiver acknowledges the key.delivered notice of the key it verifies.
    request: s.map({
      serial: KEY_SERIAL,
      digest: DIGEST,
      signature: s.optional(SIGNATURE),
      ack: PIGGYBACK_ACK,
    }),
    response: s.map(VERIFY_RESULT),
  },
  // `count` keys for one peer with one lifetime in one record, one commit, all or nothing (docs/keys.md
  // "Batches"). No `replaces`: a rotation is one key for one key, and stays `key.create`.
  'key.create.batch': {
    request: s.map(
      {
        peer: NAME,
        count: s.uint({ max: MAX_KEYS_PER_BATCH }),
        ttl: s.optional(TTL),
        ack: PIGGYBACK_ACK,
      },
      (v) => (v.count >= 1 ? undefined : 'count must be at least 1'),
      `count: 1..${MAX_KEYS_PER_BATCH}`,
    ),
    response: s.map({
      peer: NAME,
      ownerCertSerial: CERT_SERIAL,
      peerCertSerial: CERT_SERIAL,
      createdAt: TIME,
      expiresAt: TIME,
      keys: s.array(s.map({ serial: KEY_SERIAL, key: AES_KEY }), { min: 1, max: MAX_KEYS_PER_BATCH }),
    }),
  },
  // Up to MAX_KEYS_PER_BATCH `key.verify` requests in one record: one verdict per item, in order; an
  // item that fails (a bad signature) fails alone. A serial twice is `schema` for the whole request.
  'key.verify.batch': {
    request: s.map(
      {
        items: s.array(VERIFY_ITEM, { min: 1, max: MAX_KEYS_PER_BATCH }),
        ack: PIGGYBACK_ACK,
      },
      (v) =>
        new Set(v.items.map((i) => i.serial)).size === v.items.length
          ? undefined
          : 'a serial appears twice in `items`',
      'every serial in `items` at most once',
    ),
    response: s.map({
      results: s.array(VERIFY_BATCH_RESULT, { min: 1, max: MAX_KEYS_PER_BATCH }),
    }),
  },
  'key.get': { request: s.map({ serial: KEY_SERIAL }), response: KEY_SUMMARY },
  'key.list': {
    request: s.map({}),
    response: s.map({
      keys: s.array(KEY_SUMMARY, { max: MAX_KEYS_LISTED }),
      truncated: s.optional(s.bool()),
    }),
  },
  'key.revoke': { request: s.map({ serial: KEY_SERIAL, reason: REASON }), response: REVOKE_RESULT },
  // messages: false (a session that does not take messages: every command but listen) asks for key
  // notices only, so messages it would leave queued never stand in front of them (docs/keys.md).
  'key.sync': {
    request: s.map({ messages: s.optional(s.bool()) }),
    response: s.map({ pushed: s.uint(), remaining: s.uint() }),
  },
  'key.ack': {
    request: s.map({ ids: s.array(DELIVERY_ID, { min: 1, max: 1000 }) }),
    response: s.map({ acknowledged: s.uint() }),
  },
  'msg.send': {
    request: s.map({
      to: NAME,
      serial: KEY_SERIAL,
      seq: MESSAGE_SEQ,
      nonce: s.bytes({ len: 12 }),
      ciphertext: MESSAGE_CIPHERTEXT,
    }),
    response: s.map({ delivered: s.uint(), queued: s.bool(), sentAt: TIME }),
  },
  'admin.keys': {
    request: s.map({ revoked: s.optional(s.bool()) }),
    response: s.map({
      keys: s.array(KEY_SUMMARY, { max: MAX_KEYS_LISTED }),
      truncated: s.optional(s.bool()),
    }),
  },
  'admin.key.revoke': {
    request: s.map({ serial: KEY_SERIAL, reason: s.optional(REASON) }),
    response: REVOKE_RESULT,
  },
} as const;

/** Server pushes (`{ t, b }`). `d` is the delivery id the client acknowledges with key.ack. */
export const KEY_PUSHES = {
  'key.delivered': s.map(
    {
      d: DELIVERY_ID,
      serial: KEY_SERIAL,
      mode: MODE,
      from: NAME,
      fromCertSerial: CERT_SERIAL,
      to: NAME,
      toCertSerial: CERT_SERIAL,
      createdAt: TIME,
      expiresAt: TIME,
      // e2e
      fromCert: s.optional(s.bytes({ min: 1, max: MAX_CERT_BYTES })),
      prekeyId: s.optional(PREKEY_ID),
      ephemeral: s.optional(X25519_PUBLIC),
      signature: s.optional(SIGNATURE),
      ciphertext: s.optional(WRAPPED_KEY),
      // kdc (inside the record layer only)
      key: s.optional(AES_KEY),
    },
    (v) => {
      if (v.mode === 'e2e') {
        const complete =
          v.fromCert && v.prekeyId && v.ephemeral && v.signature && v.ciphertext && v.key === undefined;
        return complete
          ? undefined
          : 'an e2e delivery needs fromCert, prekeyId, ephemeral, signature, ciphertext and no key';
      }
      // A KDC-generated key has no sender-side exchange (docs/keys.md "Flow 2"): the receiver checks
      // nothing of the sender's, so no field of flow 1 may ride along and suggest otherwise.
      const e2eOnly = [v.fromCert, v.prekeyId, v.ephemeral, v.signature, v.ciphertext];
      return v.key !== undefined && e2eOnly.every((f) => f === undefined)
        ? undefined
        : 'a kdc delivery carries the key and none of the e2e fields';
    },
    'e2e: `fromCert`, `prekeyId`, `ephemeral`, `signature` and `ciphertext`, no `key`; kdc: `key` and none of those five',
  ),
  'key.revoked': s.map({
    d: DELIVERY_ID,
    serial: KEY_SERIAL,
    state: s.enumOf(['revoked', 'superseded'] as const),
    reason: ANY_REASON,
    revokedAt: TIME,
    supersededBy: s.optional(KEY_SERIAL),
  }),
  'key.verified': s.map({ d: DELIVERY_ID, serial: KEY_SERIAL, verifiedAt: TIME }),
  // Not queued (no `d`, never acknowledged): a reservation left the owner fewer than PREKEY_LOW_WATER
  // one-time prekeys; its live sessions top the stock up (docs/keys.md "Prekey stock").
  'key.prekeys.low': s.map({ stock: s.uint(), wanted: s.uint({ max: MAX_PREKEY_STOCK }) }),
  msg: s.map({
    d: DELIVERY_ID,
    from: NAME,
    to: NAME,
    serial: KEY_SERIAL,
    seq: MESSAGE_SEQ,
    nonce: s.bytes({ len: 12 }),
    ciphertext: MESSAGE_CIPHERTEXT,
    sentAt: TIME,
  }),
} as const;

for (const [name, schemas] of Object.entries(KEY_REQUESTS)) defineAppType(name, schemas);
for (const [name, push] of Object.entries(KEY_PUSHES)) defineAppType(name, { push });
