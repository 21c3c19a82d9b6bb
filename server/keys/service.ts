// The KDC's symmetric-key service (docs/keys.md): reservations and deposits of end-to-end keys, KDC-generated
// keys wrapped under the KEK, verification verdicts, revocation (by a party, the admin, or a
// certificate revocation cascading to every key of that identity), rotation, expiry, the prekey
// stock, the relayed encrypted messages and the durable delivery queue. Handlers (handlers.ts) are
// thin adapters from wire requests to these methods.
//
// Rules enforced here (docs/keys.md "Requirements, and why"):
// - "Only the two parties (and the admin) may fetch, verify or revoke a key; anyone else gets
//   `not_found` (no oracle telling which serials exist)": every lookup goes through #partyKey, which
//   answers an unknown serial and somebody else's key identically.
// - "Revocation is durable before it is acknowledged": the state change and the queued notices commit
//   in one transaction before the method returns (better-sqlite3 with synchronous=FULL).
// - "Sending to a revoked, expired or unknown peer fails with its code": #peerCertificate.
// - Hostile peers (docs/keys.md "Quotas", docs/security.md): every write re-checks the caller's
//   certificate inside the transaction that makes it (assertCallerCurrent); what one client may queue
//   for another, the active keys and open reservations of one pair, and the rate at which a client
//   creates keys are bounded, each checked inside that same transaction (the rate before any work).
import { createPublicKey, type KeyObject } from 'node:crypto';
import { randomBytes } from '../../shared/crypto/random.js';
import { equalBytes } from '../../shared/crypto/ct.js';
import { AuthError, InputError, PolicyError, StateError } from '../../shared/errors.js';
import { ALL_DEFENCES_ON, labOff, type Defences } from '../../shared/lab-switches.js';
import { pemToDer } from '../../shared/pki/pem.js';
import { assertValidName } from '../../shared/pki/names.js';
import { ciphertextDigest, kdcKeyDigest, AES_KEY_BYTES } from '../../shared/keys/digest.js';
import { verifyTranscriptSignature } from '../../shared/keys/exchange.js';
import { WRAPPED_KEY_BYTES } from '../../shared/keys/key-wrap.js';
import { newKeySerial, isKeySerial } from '../../shared/keys/serial.js';
import { e2eTranscriptHash, kdcTranscriptHash } from '../../shared/keys/transcript.js';
import { PREKEY_LOW_WATER, PREKEY_STOCK } from '../../shared/keys/prekey.js';
import {
  KEY_CREATION_BURST,
  KEY_CREATION_PER_SECOND,
  MAX_ACTIVE_KEYS_PER_PAIR,
  MAX_OPEN_RESERVATIONS_PER_PAIR,
  MAX_QUEUED_KEY_NOTICES_PER_PAIR,
  MAX_QUEUED_MESSAGES_PER_PAIR,
} from '../../shared/keys/quotas.js';
import { assertCallerCurrent } from '../kdc/caller-status.js';
import { KeyCreationRate, type CreationRateOptions } from './creation-rate.js';
import { assertMessageSeq } from '../../shared/keys/replay-window.js';
import { MAX_HELD_PREKEYS } from '../../shared/protocol/messages-keys.js';
import {
  verdictForState,
  type Verdict,
  CERTIFICATE_REVOKED,
  KEY_REVOCATION_REASONS,
} from '../../shared/keys/verdict.js';
import type {
  CertificateRecord,
  DeliveryKind,
  DeliveryRecord,
  NewPrekey,
  PrekeyRecord,
  SymKeyMode,
  SymKeyRecord,
} from '../store/store.js';
import type { AsyncStore, AsyncStoreTx } from '../store/async-store.js';
import {
  buildPush,
  decodeAnnouncement,
  deliveredPush,
  DELIVERY_CHANNEL,
  encodeAnnouncement,
  encodeMessagePayload,
  verifiedPush,
  type Push,
} from './deliveries.js';
import { KeyEncryptionKeys } from './kek.js';
import { checkTtl, RESERVATION_TTL_MS } from './ttl.js';

/** Who is calling (the session's authenticated identity). */
export interface Caller {
  name: string;
  serialHex: string;
  role: string;
}

/** What the service needs from the CA (server/ca/authority.ts CertificateAuthority satisfies it). */
export interface RevocationSource {
  revocationOf(serialHex: string): { reason: string; revokedAt: number } | undefined;
}

/** Live sessions by identity name (server/kdc/session-table.ts SessionTable satisfies it). */
export interface LiveSessions {
  byName(
    name: string,
  ): { push(type: string, body: Record<string, unknown>): void; readonly closed: boolean }[];
}

export interface KeyServiceOptions {
  store: AsyncStore;
  ca: RevocationSource;
  sessions: LiveSessions;
  dataDir: string;
  /** The CA passphrase that protects the KEK files; asked for only when a KEK is first needed. */
  passphrase: () => string;
  now?: () => number;
  /** Most pushes one key.sync sends (the client asks again while `remaining` > 0). */
  syncBatch?: number;
  /** The per-peer bounds (default DEFAULT_KEY_LIMITS; tests and special deployments may change them). */
  limits?: Partial<KeyLimits>;
  /** The MITM lab's ablation switches (shared/lab-switches.ts); default every defence on. */
  defences?: Defences;
  /**
   * This node's name among the KDC nodes sharing the store (PostgreSQL): every queued notice is then
   * also announced on DELIVERY_CHANNEL, in its transaction, for the node holding the recipient's
   * session (pushAnnounced). Unset (one node, SQLite): nothing is announced.
   */
  node?: string;
}

/** docs/keys.md "Quotas"; the defaults are shared/keys/quotas.ts. */
export interface KeyLimits {
  activeKeysPerPair: number;
  queuedKeyNoticesPerPair: number;
  queuedMessagesPerPair: number;
  openReservationsPerPair: number;
  creation: CreationRateOptions;
}

export const DEFAULT_KEY_LIMITS: Readonly<KeyLimits> = Object.freeze({
  activeKeysPerPair: MAX_ACTIVE_KEYS_PER_PAIR,
  queuedKeyNoticesPerPair: MAX_QUEUED_KEY_NOTICES_PER_PAIR,
  queuedMessagesPerPair: MAX_QUEUED_MESSAGES_PER_PAIR,
  openReservationsPerPair: MAX_OPEN_RESERVATIONS_PER_PAIR,
  creation: Object.freeze({ burst: KEY_CREATION_BURST, perSecond: KEY_CREATION_PER_SECOND }),
});

/** A key record as its parties and the admin see it: never key material. */
export interface KeySummary {
  serial: string;
  mode: SymKeyMode;
  owner: string;
  peer: string;
  state: string;
  createdAt: number;
  expiresAt: number;
  peerVerified: boolean;
  revokedAt?: number;
  reason?: string;
  revokedBy?: string;
  replaces?: string;
  supersededBy?: string;
}

export interface VerifyResult {
  serial: string;
  verdict: Verdict;
  peerVerified: boolean;
  state?: string;
  reason?: string;
  revokedAt?: number;
}

/** Type aliases (not interfaces) so handlers can return them as wire bodies. */
export type Reservation = {
  serial: string;
  createdAt: number;
  expiresAt: number;
  peer: string;
  peerCert: Buffer;
  /** `lastResort: true`: the peer's last-resort prekey (its one-time stock was empty). */
  prekey: { id: string; publicKey: Buffer; signature: Buffer; lastResort?: true };
};

/**
 * key.reserve / key.create. `ack`: the caller's delivery ids to acknowledge in the same commit (as
 * key.ack), e.g. a sender's key.verified notices of earlier keys; applied only if the request succeeds
 * (otherwise they stay queued and come again: delivery is at-least-once).
 */
export interface NewKeyRequest {
  peer: string;
  ttl?: number;
  replaces?: string;
  ack?: readonly number[];
}

export interface DepositRequest {
  serial: string;
  ephemeral: Buffer;
  signature: Buffer;
  ciphertext: Buffer;
}

export type Deposited = {
  serial: string;
  createdAt: number;
  expiresAt: number;
  digest: Buffer;
};

/**
 * A write operation split for either commit path: the checks already ran, `write` runs inside a
 * transaction (its own, or a savepoint of a group commit), `finish` turns the committed result into the
 * answer (and sends the pushes) only after the commit.
 */
interface Step<W, R> {
  write: (tx: AsyncStoreTx) => Promise<W>;
  finish: (written: W) => R | Promise<R>;
}

/** Run a step in its own transaction (durable when it returns). */
async function commitNow<W, R>(store: AsyncStore, step: Step<W, R>): Promise<R> {
  return step.finish(await store.transaction(step.write));
}

/** Run a step in the store's next group commit (its answer only after that commit is durable). */
async function commitGrouped<W, R>(store: AsyncStore, step: Step<W, R>): Promise<R> {
  return step.finish(await store.batch(step.write));
}

/** Storage bound a client cannot push past: the one-time prekeys it keeps (its last-resort one apart). */
const MAX_PREKEY_STOCK = 100;
/** What a client or the admin may give (certificateRevoked is the cascade's own). */
const CLIENT_REVOCATION_REASONS = new Set<string>(KEY_REVOCATION_REASONS);

export class KeyService {
  readonly #store: AsyncStore;
  readonly #ca: RevocationSource;
  readonly #sessions: LiveSessions;
  readonly #dataDir: string;
  readonly #passphrase: () => string;
  readonly #now: () => number;
  readonly #syncBatch: number;
  readonly #limits: KeyLimits;
  readonly #creation: KeyCreationRate;
  readonly #defences: Defences;
  readonly #node: string | undefined;
  /** Announced deliveries being pushed, one after the other (in commit order). */
  #announced: Promise<void> = Promise.resolve();
  #kek: Promise<KeyEncryptionKeys> | undefined;
  #kekReady: KeyEncryptionKeys | undefined;
  /** Certificates by serial: the imported public key and the DER, for signature checks and e2e pushes. */
  readonly #certs = new Map<string, { key: KeyObject; der: Buffer }>();

  constructor(opts: KeyServiceOptions) {
    this.#store = opts.store;
    this.#ca = opts.ca;
    this.#sessions = opts.sessions;
    this.#dataDir = opts.dataDir;
    this.#passphrase = opts.passphrase;
    this.#now = opts.now ?? Date.now;
    this.#syncBatch = opts.syncBatch ?? 256;
    this.#limits = { ...DEFAULT_KEY_LIMITS, ...opts.limits };
    this.#creation = new KeyCreationRate(this.#limits.creation, () => this.#now());
    this.#defences = opts.defences ?? ALL_DEFENCES_ON;
    this.#node = opts.node;
  }

  /** The KEK ring, opened (or created) on first use. */
  kek(): Promise<KeyEncryptionKeys> {
    if (this.#kek === undefined) {
      this.#kek = KeyEncryptionKeys.open(this.#dataDir, this.#passphrase()).then((ring) => {
        this.#kekReady = ring;
        return ring;
      });
      this.#kek.catch(() => {
        this.#kek = undefined; // a wrong passphrase must not poison every later attempt
      });
    }
    return this.#kek;
  }

  // -- peers and prekeys ------------------------------------------------------------------------

  /** Flow 1 step 1 (docs/keys.md "Requirements"): "Alice asks the KDC for Bob's certificate; the KDC answers with it and its revocation status." */
  async peer(
    caller: Caller,
    name: string,
  ): Promise<{ name: string; cert: Buffer; serial: string; notAfter: number; status: 'good' }> {
    const cert = await this.#peerCertificate(caller, name);
    return {
      name,
      cert: pemToDer(cert.pem!, 'CERTIFICATE'),
      serial: cert.serialHex,
      notAfter: cert.notAfter,
      status: 'good',
    };
  }

  /**
   * Store signed prekeys for the caller's current certificate (and, with `lastResort`, replace its
   * last-resort prekey); returns the stock and how many to add, the id of the last-resort prekey the KDC
   * holds for that certificate (`lastResort`, absent when none), and, for a status query (no prekeys)
   * with `listHeld`, `held`: every prekey id of the caller this KDC still needs (stock, last-resort,
   * open reservations, queued e2e deliveries), so the client can delete the privates of the others
   * (docs/keys.md "Prekey housekeeping"). Left out when there are more than MAX_HELD_PREKEYS: the client
   * then deletes nothing, which only keeps orphans longer.
   */
  async putPrekeys(
    caller: Caller,
    prekeys: readonly NewPrekey[],
    opts: { listHeld?: boolean; lastResort?: NewPrekey } = {},
  ): Promise<{ stock: number; wanted: number; held?: string[]; lastResort?: string }> {
    // A prekey id names one prekey of this client for good (UNIQUE (owner, prekey_id) in the store): a
    // repeated id is the client's mistake and gets bad_request, not the store's constraint error
    // (found by test/hardening/fuzz-app.test.ts).
    const ids = prekeys.map((p) => p.prekeyId);
    if (opts.lastResort !== undefined) ids.push(opts.lastResort.prekeyId);
    if (new Set(ids).size !== ids.length) {
      throw new InputError('bad_request', 'prekey ids must be distinct');
    }
    let stock: number;
    try {
      stock = await this.#store.transaction(async (tx) => {
        await assertCallerCurrent(tx, caller.serialHex, this.#now());
        // Prekeys signed under an older certificate of this name can no longer be verified by senders.
        await tx.deletePrekeys(caller.name, caller.serialHex);
        const before = await tx.countPrekeys(caller.name, caller.serialHex);
        if (before + prekeys.length > MAX_PREKEY_STOCK) {
          throw new PolicyError('rate_limited', `at most ${MAX_PREKEY_STOCK} prekeys are kept per client`);
        }
        const now = this.#now();
        if (prekeys.length > 0) await tx.insertPrekeys(caller.name, caller.serialHex, prekeys, now);
        if (opts.lastResort !== undefined) {
          await tx.putLastResortPrekey(caller.name, caller.serialHex, opts.lastResort, now);
        }
        return before + prekeys.length;
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: unknown } }).cause;
      // SQLite's and PostgreSQL's codes for a UNIQUE violation (pg-store.ts keeps the driver's error as the cause).
      if (cause?.code === 'SQLITE_CONSTRAINT_UNIQUE' || cause?.code === '23505') {
        throw new InputError('bad_request', 'a prekey with this id is already stocked');
      }
      throw err;
    }
    const lastResort = (await this.#store.getLastResortPrekey(caller.name, caller.serialHex))?.prekeyId;
    const answer = {
      stock,
      wanted: Math.max(0, PREKEY_STOCK - stock),
      ...(lastResort === undefined ? {} : { lastResort }),
    };
    if (prekeys.length > 0 || opts.lastResort !== undefined || opts.listHeld !== true) return answer;
    const held = await this.#store.heldPrekeyIds(
      caller.name,
      caller.serialHex,
      this.#now() - RESERVATION_TTL_MS,
      MAX_HELD_PREKEYS + 1,
    );
    return held.length > MAX_HELD_PREKEYS ? answer : { ...answer, held };
  }

  // -- creating keys -----------------------------------------------------------------------------

  /** Flow 1: hand out a serial and one of the peer's one-time prekeys (atomically consumed). */
  async reserve(caller: Caller, req: NewKeyRequest): Promise<Reservation> {
    return commitNow(this.#store, await this.#reserveStep(caller, req));
  }

  /** reserve through the store's group commit: what the `key.reserve` handler uses. */
  async reserveGrouped(caller: Caller, req: NewKeyRequest): Promise<Reservation> {
    return commitGrouped(this.#store, await this.#reserveStep(caller, req));
  }

  /** reserve's checks now, its writes in `write` (one transaction), its answer from `finish`. */
  async #reserveStep(
    caller: Caller,
    req: NewKeyRequest,
  ): Promise<Step<{ prekey: PrekeyRecord; lastResort: boolean; low?: number } | undefined, Reservation>> {
    const ttl = checkTtl(req.ttl);
    const peerCert = await this.#peerCertificate(caller, req.peer);
    if (req.replaces !== undefined) await this.#replaceable(caller, req.replaces, req.peer, 'e2e');
    this.#creation.take(caller.name);
    const serial = newKeySerial();
    let createdAt = 0;
    return {
      write: async (tx) => {
        const now = this.#now();
        createdAt = now;
        await assertCallerCurrent(tx, caller.serialHex, now);
        await tx.deleteStaleReservations(now - RESERVATION_TTL_MS);
        // The reservation becomes an active key at its deposit: refuse now what the deposit would
        // refuse, before one of the peer's prekeys is consumed for nothing.
        const reserved = await tx.countOpenReservations(caller.name, req.peer, now - RESERVATION_TTL_MS);
        if (reserved >= this.#limits.openReservationsPerPair) {
          throw new PolicyError(
            'quota_exceeded',
            `you already hold ${reserved} open reservations on ${req.peer}'s prekeys (at most ${this.#limits.openReservationsPerPair}): deposit or let them expire`,
          );
        }
        const active = await tx.countActiveKeys(caller.name, req.peer, now);
        const replacing = req.replaces === undefined ? 0 : 1;
        if (active + reserved - replacing >= this.#limits.activeKeysPerPair) {
          throw this.#tooManyActive(req.peer);
        }
        await this.#checkKeyNoticeQuota(tx, caller.name, req.peer);
        let lastResort = false;
        let prekey = await tx.claimPrekey(req.peer, peerCert.serialHex);
        if (prekey === undefined) {
          // The one-time stock is empty: the peer's last-resort prekey, which stays (docs/keys.md).
          prekey = await tx.getLastResortPrekey(req.peer, peerCert.serialHex);
          lastResort = true;
        }
        if (prekey === undefined) return undefined;
        if (req.ack !== undefined && req.ack.length > 0) await tx.deleteDeliveries(caller.name, req.ack);
        await tx.insertSymKey({
          serial,
          mode: 'e2e',
          owner: caller.name,
          ownerCert: caller.serialHex,
          peer: req.peer,
          peerCert: peerCert.serialHex,
          createdAt: now,
          expiresAt: now + ttl,
          state: 'reserved',
          replaces: req.replaces ?? null,
          prekeyId: prekey.prekeyId,
          prekeyPublic: prekey.publicKey,
        });
        // Tell the owner when this claim takes his stock below the mark, when it takes the last one, and
        // whenever the last-resort one serves: not at every claim below the mark (a top-up answers the
        // first notice; the next one comes if the stock still runs out).
        const stock = lastResort ? 0 : await tx.countPrekeys(req.peer, peerCert.serialHex);
        const tell = lastResort || stock === 0 || stock === PREKEY_LOW_WATER - 1;
        return { prekey, lastResort, ...(tell ? { low: stock } : {}) };
      },
      finish: async (claimed) => {
        if (claimed === undefined) {
          throw new StateError(
            'peer_unavailable',
            `${req.peer} has no prekeys left: it must connect once (e.g. kds client listen) before it can receive end-to-end keys`,
          );
        }
        if (claimed.low !== undefined) this.#tellPrekeysLow(req.peer, claimed.low);
        const { prekey } = claimed;
        return {
          serial,
          createdAt,
          expiresAt: createdAt + ttl,
          peer: req.peer,
          peerCert: (await this.#certificate(peerCert.serialHex)).der,
          prekey: {
            id: prekey.prekeyId,
            publicKey: prekey.publicKey,
            signature: prekey.signature,
            ...(claimed.lastResort ? { lastResort: true as const } : {}),
          },
        };
      },
    };
  }

  /**
   * Flow 1 step 3: store Alice's deposit once her transcript signature verifies against HER session
   * certificate over the KDC's OWN view of the exchange (its reservation record), then deliver.
   */
  async deposit(caller: Caller, req: DepositRequest): Promise<Deposited> {
    return commitNow(this.#store, await this.#depositStep(caller, req));
  }

  /** deposit through the store's group commit: what the `key.deposit` handler uses. */
  async depositGrouped(caller: Caller, req: DepositRequest): Promise<Deposited> {
    return commitGrouped(this.#store, await this.#depositStep(caller, req));
  }

  async #depositStep(
    caller: Caller,
    req: DepositRequest,
  ): Promise<Step<(DeliveryRecord | Push)[], Deposited>> {
    const rec = await this.#store.getSymKey(req.serial);
    const now = this.#now();
    if (
      rec === undefined ||
      rec.state !== 'reserved' ||
      rec.owner !== caller.name ||
      rec.ownerCert !== caller.serialHex ||
      rec.createdAt < now - RESERVATION_TTL_MS
    ) {
      throw new StateError('not_found', 'no such key reservation');
    }
    this.#refuseRevokedParties(rec);
    if (req.ciphertext.length !== WRAPPED_KEY_BYTES) {
      throw new InputError('malformed', `expected a wrapped key of ${WRAPPED_KEY_BYTES} bytes`);
    }
    const transcriptHash = e2eTranscriptHash({
      serial: rec.serial,
      sender: { name: rec.owner, certSerial: rec.ownerCert },
      receiver: { name: rec.peer, certSerial: rec.peerCert },
      prekeyId: rec.prekeyId!,
      prekeyPublic: rec.prekeyPublic!,
      ephemeralPublic: req.ephemeral,
      expiresAt: rec.expiresAt,
    });
    const digest = ciphertextDigest(req.ciphertext);
    const owner = await this.#certificate(rec.ownerCert);
    // LAB SWITCH e2e-transcript-signature: the sender's signature over the key transcript is not verified.
    if (!labOff(this.#defences, 'e2e-transcript-signature'))
      verifyTranscriptSignature('sender', transcriptHash, digest, req.signature, owner.key);
    return {
      write: async (tx) => {
        const at = this.#now();
        await assertCallerCurrent(tx, caller.serialHex, at);
        await this.#checkKeyNoticeQuota(tx, caller.name, rec.peer);
        // The old key of a rotation is superseded first, so its notice is queued (and pushed) before the
        // new key's delivery: a receiver never holds both as usable (client/keys MAX_KEYS_ACCEPTED_PER_SENDER).
        const ids: (DeliveryRecord | Push)[] =
          rec.replaces === null ? [] : await this.#supersede(tx, rec.replaces, rec.serial, caller, at);
        await this.#checkActiveKeys(tx, caller.name, rec.peer, at);
        if (!(await tx.activateSymKey(rec.serial, { ...req, senderSignature: req.signature, digest }))) {
          throw new StateError('not_found', 'no such key reservation');
        }
        const delivery = await this.#enqueue(tx, rec.peer, 'key.delivered', rec.serial, null, caller.name);
        // Pushed from the deposit in hand (the same values the row now holds), not re-read from the store.
        const deposited = {
          ...rec,
          ephemeral: req.ephemeral,
          ciphertext: req.ciphertext,
          senderSignature: req.signature,
        };
        ids.push(deliveredPush(delivery, deposited, { fromCert: owner.der }) ?? delivery);
        await this.#audit(tx, caller.name, 'key.deposit', rec.serial, { peer: rec.peer, mode: 'e2e' });
        return ids;
      },
      finish: async (pushes) => {
        await this.#pushAll(pushes);
        return { serial: rec.serial, createdAt: rec.createdAt, expiresAt: rec.expiresAt, digest };
      },
    };
  }

  /** Flow 2: the KDC generates the key, stores it wrapped under the current KEK, and delivers it. */
  async create(
    caller: Caller,
    req: NewKeyRequest,
  ): Promise<{
    serial: string;
    key: Buffer;
    createdAt: number;
    expiresAt: number;
    peer: string;
    ownerCertSerial: string;
    peerCertSerial: string;
  }> {
    const ttl = checkTtl(req.ttl);
    const peerCert = await this.#peerCertificate(caller, req.peer);
    if (req.replaces !== undefined) await this.#replaceable(caller, req.replaces, req.peer, 'kdc');
    this.#creation.take(caller.name);
    const kek = await this.kek();
    const now = this.#now();
    const serial = newKeySerial();
    const key = randomBytes(AES_KEY_BYTES);
    const { wrapped, version } = kek.wrap(serial, key);
    // Group commit (server/store/group-commit.ts): concurrent creates share one WAL sync; this one still
    // returns (and pushes) only after its own rows committed. bench/keys.ts measured the per-commit
    // fsync as the largest part of the KDC's cost per key.
    const record = {
      serial,
      mode: 'kdc' as const,
      owner: caller.name,
      ownerCert: caller.serialHex,
      peer: req.peer,
      peerCert: peerCert.serialHex,
      createdAt: now,
      expiresAt: now + ttl,
      prekeyId: null,
      ephemeral: null,
      ciphertext: null,
      senderSignature: null,
    };
    const pushes = await this.#store.batch(async (tx) => {
      const at = this.#now();
      await assertCallerCurrent(tx, caller.serialHex, at);
      await this.#checkKeyNoticeQuota(tx, caller.name, req.peer);
      // Old key first (see #depositStep), then the bound on active keys, which a rotation keeps.
      const ids: (DeliveryRecord | Push)[] =
        req.replaces === undefined ? [] : await this.#supersede(tx, req.replaces, serial, caller, at);
      await this.#checkActiveKeys(tx, caller.name, req.peer, at);
      await tx.insertSymKey({
        ...record,
        state: 'active',
        replaces: req.replaces ?? null,
        digest: kdcKeyDigest(serial, key),
        wrappedKey: wrapped,
        kekVersion: version,
      });
      const delivery = await this.#enqueue(tx, req.peer, 'key.delivered', serial, null, caller.name);
      // Pushed from the key in hand: the plaintext we just wrapped, not an unwrap of the stored copy.
      ids.push(deliveredPush(delivery, record, { key }) ?? delivery);
      await this.#audit(tx, caller.name, 'key.create', serial, {
        peer: req.peer,
        mode: 'kdc',
        kekVersion: version,
      });
      if (req.ack !== undefined && req.ack.length > 0) await tx.deleteDeliveries(caller.name, req.ack);
      return ids;
    });
    await this.#pushAll(pushes);
    return {
      serial,
      key,
      createdAt: now,
      expiresAt: now + ttl,
      peer: req.peer,
      ownerCertSerial: caller.serialHex,
      peerCertSerial: peerCert.serialHex,
    };
  }

  // -- verification, lookup, lifecycle -------------------------------------------------------------

  /**
   * Flow 1 step 5 (docs/keys.md "Requirements"): "it compares the digest of what Bob received with what it stored, and the
   * key's state". The stored record is checked against itself too (the digest column against the
   * stored ciphertext, or the KEK-unwrapped key), so tampering with either column says `mismatch`.
   * With a signature from the receiver over the transcript, a `valid` verdict also records that the
   * receiver accepted the key and tells the owner (`key.verified`).
   *
   * `ack` (optional) acknowledges the caller's own queued deliveries, as key.ack does, in the same
   * commit as the verification: the receiver sends the id of the key.delivered notice it has stored,
   * which saves a request and a commit per key. The ids are deleted before this answers, whatever the
   * verdict; if the caller disconnects before sending key.verify, the notice stays queued.
   */
  async verify(
    caller: Caller,
    req: { serial: string; digest: Buffer; signature?: Buffer; ack?: readonly number[] },
  ): Promise<VerifyResult> {
    const ack = req.ack ?? [];
    const rec = await this.#lookup(caller, req.serial);
    if (rec === undefined) {
      if (ack.length > 0) await this.ackGrouped(caller, ack);
      return { serial: req.serial, verdict: 'not_found', peerVerified: false };
    }
    const isPeer = rec.peer === caller.name;
    if (req.signature !== undefined && !isPeer) {
      throw new InputError('bad_request', 'only the receiver of a key signs its verification');
    }
    // The digests first: if the record no longer matches itself or the caller's copy, that is the
    // answer (`mismatch`), whatever the signature says (a tampered record changes the transcript too).
    const consistent = (await this.#recordConsistent(rec)) && equalBytes(req.digest, rec.digest!);
    // LAB SWITCH e2e-transcript-signature: the receiver's signature over the key transcript is not verified.
    if (consistent && req.signature !== undefined && !labOff(this.#defences, 'e2e-transcript-signature')) {
      verifyTranscriptSignature(
        'receiver',
        this.#transcriptOf(rec),
        req.digest,
        req.signature,
        await this.#certificateKey(caller.serialHex),
      );
    }
    const verdict: Verdict = consistent ? verdictForState(asKeyState(rec.state)) : 'mismatch';
    let peerVerified = rec.peerVerifiedAt !== null;
    if (verdict === 'valid' && isPeer && req.signature !== undefined && !peerVerified) {
      const now = this.#now();
      const pushes = await this.#store.batch(async (tx) => {
        await assertCallerCurrent(tx, caller.serialHex, this.#now());
        await tx.markSymKeyPeerVerified(rec.serial, now);
        await this.#audit(tx, caller.name, 'key.verify', rec.serial, { verdict });
        if (ack.length > 0) await tx.deleteDeliveries(caller.name, ack);
        // Counted against the key's owner (its own key.create/key.reserve caused it), never against the
        // verifier: verifying a delivered key is never refused, and it happens once per key.
        const notice = await this.#enqueue(tx, rec.owner, 'key.verified', rec.serial, null, rec.owner);
        return [verifiedPush(notice, rec.serial, now)];
      });
      await this.#pushAll(pushes);
      peerVerified = true;
    } else if (ack.length > 0) {
      await this.ackGrouped(caller, ack);
    }
    return {
      serial: rec.serial,
      verdict,
      peerVerified,
      state: rec.state,
      ...(rec.revokedReason === null ? {} : { reason: rec.revokedReason }),
      ...(rec.stateChangedAt === null || rec.state === 'active' ? {} : { revokedAt: rec.stateChangedAt }),
    };
  }

  /** One key's record, for its parties and the admin only. */
  async get(caller: Caller, serial: string): Promise<KeySummary> {
    const rec = await this.#lookup(caller, serial);
    if (rec === undefined) throw new StateError('not_found', 'no such key');
    return summarize(rec);
  }

  async list(caller: Caller): Promise<KeySummary[]> {
    await this.expireDue();
    const out: KeySummary[] = [];
    for (const r of await this.#store.listSymKeys({ party: caller.name }))
      out.push(summarize(await this.#checkParties(r)));
    return out;
  }

  /** `kds admin keys [--revoked]`: every key, or the revoked-key list (serial, time, reason). */
  async adminList(opts: { revoked?: boolean } = {}): Promise<KeySummary[]> {
    await this.expireDue();
    return (await this.#store.listSymKeys(opts.revoked === true ? { states: ['revoked'] } : {})).map((r) =>
      summarize(r),
    );
  }

  /**
   * Revoke a key (either party or the admin). Durable, with both parties' notices queued, before this
   * returns; notices go out at once to whoever is connected.
   */
  async revoke(
    caller: Caller,
    req: { serial: string; reason: string },
  ): Promise<{ serial: string; status: 'revoked' | 'already_revoked'; revokedAt: number; reason: string }> {
    if (!CLIENT_REVOCATION_REASONS.has(req.reason)) {
      throw new InputError(
        'bad_reason',
        `${req.reason.slice(0, 40)} is not a reason for revoking a key; expected one of ${KEY_REVOCATION_REASONS.join(', ')}`,
      );
    }
    const rec = await this.#lookup(caller, req.serial);
    if (rec === undefined) throw new StateError('not_found', 'no such key');
    if (rec.state === 'revoked') {
      return {
        serial: rec.serial,
        status: 'already_revoked',
        revokedAt: rec.stateChangedAt ?? 0,
        reason: rec.revokedReason ?? 'unspecified',
      };
    }
    const now = this.#now();
    const pushes = await this.#store.transaction(async (tx) => {
      await assertCallerCurrent(tx, caller.serialHex, this.#now());
      // Revoking a usable key is never refused. One already unusable everywhere (expired, superseded:
      // both clients dropped or stop using it on their own) only updates its record; its notices count
      // against the revoker like any other, so revoking old keys cannot fill the other party's queue.
      const current = await tx.getSymKey(rec.serial);
      if (caller.role === 'client' && current !== undefined && current.state !== 'active') {
        await this.#checkKeyNoticeQuota(tx, caller.name, rec.owner === caller.name ? rec.peer : rec.owner);
      }
      return this.#revokeKey(
        tx,
        rec,
        req.reason,
        caller.name,
        now,
        caller.role === 'client' ? caller.name : null,
      );
    });
    await this.#pushAll(pushes);
    const after = (await this.#store.getSymKey(rec.serial))!;
    return {
      serial: rec.serial,
      status: pushes.length > 0 ? 'revoked' : 'already_revoked',
      revokedAt: after.stateChangedAt ?? now,
      reason: after.revokedReason ?? req.reason,
    };
  }

  /**
   * docs/keys.md "Requirements": "Revoking a certificate moves every key that involves that identity to revoked with
   * reason `certificateRevoked`, and notifies the other party." Called from the CA's onRevoked (in
   * the revoking request, before it is answered); keys of certificates revoked by another process
   * (`kds cert revoke` against the data dir) are caught by #checkParties on their next use.
   */
  async onCertificateRevoked(serialHex: string, name: string): Promise<number> {
    const now = this.#now();
    const pushes = await this.#store.transaction(async (tx) => {
      const ids: DeliveryRecord[] = [];
      for (const rec of await tx.listSymKeys({ party: name, states: ['active'] })) {
        ids.push(...(await this.#revokeKey(tx, rec, CERTIFICATE_REVOKED, 'kdc', now, null)));
      }
      await tx.deletePrekeys(name);
      if (ids.length > 0)
        await this.#audit(tx, 'kdc', 'key.revoke.cascade', serialHex, { name, keys: ids.length / 2 });
      return ids;
    });
    await this.#pushAll(pushes);
    return pushes.length / 2;
  }

  /** Active keys past their expiry become `expired` (lazily, on every listing and lookup). */
  async expireDue(): Promise<void> {
    await this.#store.expireSymKeys(this.#now());
  }

  /**
   * At service start: expire, cascade revocations committed while the KDC was not running, and drop
   * the reservations of the sessions that ended with the previous run. A client deposits on the session
   * that reserved (client/keys/key-client.ts sendKey), so after a restart none of them can be deposited;
   * left in place they would only count against their requesters' open reservations for 5 minutes (a
   * KDC killed mid-exchange a few times would lock its clients out of end-to-end keys for that long).
   * Their prekeys were consumed either way; their owners' housekeeping drops the privates.
   */
  async sweep(): Promise<void> {
    await this.expireDue();
    for (const rec of await this.#store.listSymKeys({ states: ['active'] })) await this.#checkParties(rec);
    await this.#store.deleteStaleReservations(Number.MAX_SAFE_INTEGER);
  }

  // -- messages and deliveries ---------------------------------------------------------------------

  /**
   * Relay a message encrypted with a shared key (the KDC never sees its plaintext). docs/keys.md "Requirements": "Stale
   * (revoked) keys are refused by both the KDC (`key_revoked`) and the clients."
   */
  async sendMessage(
    caller: Caller,
    req: { to: string; serial: string; seq: number; nonce: Buffer; ciphertext: Buffer },
  ): Promise<{ delivered: number; queued: boolean; sentAt: number }> {
    // The KDC only relays `seq` (bound into the AAD, checked by the receiver); 0 is not a sequence number.
    assertMessageSeq(req.seq);
    const rec = await this.#lookup(caller, req.serial);
    if (rec === undefined) throw new StateError('not_found', 'no such key');
    const other = rec.owner === caller.name ? rec.peer : rec.owner;
    if (req.to !== other || caller.role !== 'client') {
      throw new InputError('bad_request', `key ${rec.serial} is shared with ${other}, not ${req.to}`);
    }
    // LAB SWITCH revocation: a message under a revoked key is relayed.
    if (!labOff(this.#defences, 'revocation')) refuseUnusable(rec);
    const sentAt = this.#now();
    const payload = encodeMessagePayload({
      from: caller.name,
      to: req.to,
      serial: rec.serial,
      seq: req.seq,
      nonce: req.nonce,
      ciphertext: req.ciphertext,
      sentAt,
    });
    const queued = await this.#store.transaction(async (tx) => {
      await assertCallerCurrent(tx, caller.serialHex, this.#now());
      // Per (sender, recipient): one sender's backlog never refuses another sender's message.
      const waiting = await tx.countQueuedFrom(req.to, caller.name, 'msg');
      if (waiting >= this.#limits.queuedMessagesPerPair) {
        throw new PolicyError(
          'quota_exceeded',
          `${req.to} has ${waiting} undelivered messages from you (at most ${this.#limits.queuedMessagesPerPair}): they are delivered when ${req.to} connects`,
        );
      }
      return this.#enqueue(tx, req.to, 'msg', rec.serial, payload, caller.name);
    });
    const delivered = await this.#pushAll([queued]);
    return { delivered, queued: true, sentAt };
  }

  /**
   * Push the caller's queued notices (oldest first) to `push`, then say how many remain. The pushes
   * precede the reply on the ordered channel, so when the client sees the reply it has them all.
   */
  async sync(
    caller: Caller,
    push: (type: string, body: Record<string, unknown>) => void,
  ): Promise<{ pushed: number; remaining: number }> {
    await this.expireDue();
    const rows = await this.#store.listDeliveries(caller.name, this.#syncBatch);
    if (rows.some((r) => r.kind === 'key.delivered')) await this.#kekIfKdcKeys(rows.map((r) => r.keySerial));
    let pushed = 0;
    const obsolete: number[] = [];
    for (const row of rows) {
      const p = await buildPush(row, this.#store, () => this.#kekReady);
      if (p === undefined) {
        obsolete.push(row.id);
        continue;
      }
      push(p.type, p.body);
      pushed += 1;
    }
    if (obsolete.length > 0) await this.#store.deleteDeliveries(caller.name, obsolete);
    return { pushed, remaining: Math.max(0, (await this.#store.countDeliveries(caller.name)) - pushed) };
  }

  /** Forget acknowledged deliveries (only the caller's own). */
  ack(caller: Caller, ids: readonly number[]): Promise<{ acknowledged: number }> {
    return this.#store.transaction((tx) => this.#ackWrite(tx, caller, ids));
  }

  /** ack through the store's group commit: what the `key.ack` handler uses (two acks per key). */
  async ackGrouped(caller: Caller, ids: readonly number[]): Promise<{ acknowledged: number }> {
    return this.#store.batch((tx) => this.#ackWrite(tx, caller, ids));
  }

  async #ackWrite(
    tx: AsyncStoreTx,
    caller: Caller,
    ids: readonly number[],
  ): Promise<{ acknowledged: number }> {
    await assertCallerCurrent(tx, caller.serialHex, this.#now());
    return { acknowledged: await tx.deleteDeliveries(caller.name, ids) };
  }

  // -- internals ------------------------------------------------------------------------------------

  /** A non-reserved key the caller may see (a party, or the admin), or undefined: one answer for both. */
  async #lookup(caller: Caller, serial: string): Promise<SymKeyRecord | undefined> {
    if (!isKeySerial(serial)) return undefined;
    let rec = await this.#store.getSymKey(serial);
    // Expiry is applied lazily: only this record's expiry matters to this lookup, so the store-wide
    // UPDATE (a write statement on every verify otherwise) runs only when this key is due.
    if (rec?.state === 'active' && rec.expiresAt <= this.#now()) {
      await this.expireDue();
      rec = await this.#store.getSymKey(serial);
    }
    if (rec === undefined || rec.state === 'reserved') return undefined;
    if (caller.role !== 'admin' && rec.owner !== caller.name && rec.peer !== caller.name) return undefined;
    return this.#checkParties(rec);
  }

  /** Cascade a certificate revocation the KDC has not applied yet (revoked by another process). */
  async #checkParties(rec: SymKeyRecord): Promise<SymKeyRecord> {
    if (rec.state !== 'active') return rec;
    if (
      this.#ca.revocationOf(rec.ownerCert) === undefined &&
      this.#ca.revocationOf(rec.peerCert) === undefined
    ) {
      return rec;
    }
    const now = this.#now();
    const pushes = await this.#store.transaction((tx) =>
      this.#revokeKey(tx, rec, CERTIFICATE_REVOKED, 'kdc', now, null),
    );
    await this.#pushAll(pushes);
    return (await this.#store.getSymKey(rec.serial)) ?? rec;
  }

  #refuseRevokedParties(rec: SymKeyRecord): void {
    if (
      this.#ca.revocationOf(rec.ownerCert) !== undefined ||
      this.#ca.revocationOf(rec.peerCert) !== undefined
    ) {
      throw new StateError('peer_revoked', 'a certificate of this exchange has been revoked');
    }
  }

  /**
   * Inside a transaction: revoke once and queue a notice for both parties, counted against `sender` (the
   * client that revoked; null for the KDC and the admin). Returns the delivery ids.
   */
  async #revokeKey(
    tx: AsyncStoreTx,
    rec: SymKeyRecord,
    reason: string,
    by: string,
    now: number,
    sender: string | null,
  ): Promise<DeliveryRecord[]> {
    if (
      !(await tx.setSymKeyState(rec.serial, ['active', 'expired', 'superseded'], 'revoked', {
        at: now,
        reason,
        by,
      }))
    ) {
      return [];
    }
    await this.#audit(tx, by, 'key.revoke', rec.serial, { reason, owner: rec.owner, peer: rec.peer });
    return [
      await this.#replaceKeyNotices(tx, rec.owner, rec.serial, sender),
      await this.#replaceKeyNotices(tx, rec.peer, rec.serial, sender),
    ];
  }

  /**
   * Queue a key.revoked notice for `recipient` in place of whatever notice about the same key is still
   * queued for it (a key.delivered of a key it never acknowledged, a key.verified, an earlier
   * key.revoked). Nothing is lost: a queued notice is rebuilt from the key's record when it is sent, so
   * the new one says all the old ones would have (the key is no longer usable), and a delivery of a key
   * that is no longer active is dropped at key.sync anyway. So a key has at most one queued notice per
   * recipient, whatever happens to it (docs/keys.md "Quotas").
   */
  async #replaceKeyNotices(
    tx: AsyncStoreTx,
    recipient: string,
    serial: string,
    sender: string | null,
  ): Promise<DeliveryRecord> {
    await tx.deleteQueuedKeyNotices(recipient, serial);
    return this.#enqueue(tx, recipient, 'key.revoked', serial, null, sender);
  }

  /** Inside a transaction: the old key of a rotation becomes superseded; both parties are told. */
  async #supersede(
    tx: AsyncStoreTx,
    oldSerial: string,
    newSerial: string,
    caller: Caller,
    now: number,
  ): Promise<DeliveryRecord[]> {
    const by = caller.name;
    const old = await tx.getSymKey(oldSerial);
    if (old === undefined) return [];
    if (
      !(await tx.setSymKeyState(oldSerial, ['active'], 'superseded', {
        at: now,
        reason: 'superseded',
        by,
        supersededBy: newSerial,
      }))
    ) {
      throw new StateError('key_revoked', `key ${oldSerial} is no longer active`);
    }
    await this.#audit(tx, by, 'key.rotate', oldSerial, { supersededBy: newSerial });
    return [
      await this.#replaceKeyNotices(tx, old.owner, oldSerial, by),
      await this.#replaceKeyNotices(tx, old.peer, oldSerial, by),
    ];
  }

  /** Inside a transaction: refuse a new key notice `sender` would queue for `recipient` past its quota. */
  async #checkKeyNoticeQuota(tx: AsyncStoreTx, sender: string, recipient: string): Promise<void> {
    const waiting = await tx.countQueuedFrom(recipient, sender, 'key');
    if (waiting >= this.#limits.queuedKeyNoticesPerPair) {
      throw new PolicyError(
        'quota_exceeded',
        `${recipient} has ${waiting} undelivered key notices from you (at most ${this.#limits.queuedKeyNoticesPerPair}): they are delivered when ${recipient} connects`,
      );
    }
  }

  /** Inside a transaction: refuse one more active key of `owner` with `peer` past the pair's bound. */
  async #checkActiveKeys(tx: AsyncStoreTx, owner: string, peer: string, now: number): Promise<void> {
    if ((await tx.countActiveKeys(owner, peer, now)) >= this.#limits.activeKeysPerPair) {
      throw this.#tooManyActive(peer);
    }
  }

  #tooManyActive(peer: string): PolicyError {
    return new PolicyError(
      'quota_exceeded',
      `you already hold ${this.#limits.activeKeysPerPair} active keys with ${peer}: rotate (--replaces) or revoke one`,
    );
  }

  /**
   * After the commit of a reservation that left `stock` one-time prekeys: ask the owner's live sessions
   * to top up (`key.prekeys.low`). Not queued: an offline client tops up at its next session anyway, and
   * the last-resort prekey serves meanwhile.
   */
  #tellPrekeysLow(owner: string, stock: number): void {
    for (const session of this.#sessions.byName(owner)) {
      if (session.closed) continue;
      try {
        session.push('key.prekeys.low', { stock, wanted: Math.max(0, PREKEY_STOCK - stock) });
      } catch {
        // best effort: the stock is checked again at every session start and after every key received
      }
    }
  }

  /** A rotation must name an active key of the same two parties and mode. */
  async #replaceable(caller: Caller, serial: string, peer: string, mode: SymKeyMode): Promise<void> {
    const rec = await this.#lookup(caller, serial);
    const pair = rec === undefined ? [] : [rec.owner, rec.peer].sort();
    if (
      rec === undefined ||
      caller.role !== 'client' ||
      pair.join('\0') !== [caller.name, peer].sort().join('\0')
    ) {
      throw new StateError('not_found', 'no such key');
    }
    if (rec.mode !== mode)
      throw new InputError('bad_request', `key ${serial} is a ${rec.mode} key, not ${mode}`);
    refuseUnusable(rec);
  }

  /** The peer's active certificate, or the code docs/keys.md names: peer_revoked / peer_unavailable. */
  async #peerCertificate(caller: Caller, name: string): Promise<CertificateRecord> {
    assertValidName(name);
    if (caller.role !== 'client') throw new InputError('bad_request', 'only enrolled clients exchange keys');
    if (name === caller.name) throw new InputError('bad_request', 'a key needs two different parties');
    const cert = await this.#store.activeCertificate(name);
    if (cert === undefined || cert.role !== 'client' || cert.pem === null) {
      const latest = await this.#store.latestCertificate(name);
      if (latest?.status === 'revoked' && latest.role === 'client') {
        throw new StateError('peer_revoked', `the certificate of ${name} is revoked`);
      }
      throw new StateError('peer_unavailable', `no enrolled client named ${name}`);
    }
    if (this.#ca.revocationOf(cert.serialHex) !== undefined) {
      throw new StateError('peer_revoked', `the certificate of ${name} is revoked`);
    }
    const now = this.#now();
    if (cert.notAfter <= now || cert.notBefore > now) {
      throw new StateError('peer_unavailable', `the certificate of ${name} is not valid now`);
    }
    return cert;
  }

  async #certificateKey(serialHex: string): Promise<KeyObject> {
    return (await this.#certificate(serialHex)).key;
  }

  /**
   * A certificate's public key and DER by serial, cached: a certificate's content never changes (its
   * status does, and every caller checks revocation through the CA separately).
   */
  async #certificate(serialHex: string): Promise<{ key: KeyObject; der: Buffer }> {
    let entry = this.#certs.get(serialHex);
    if (entry === undefined) {
      const cert = await this.#store.getCertificate(serialHex);
      if (cert?.pem === null || cert?.pem === undefined)
        throw new AuthError('bad_signature', 'signature verification failed');
      // createPublicKey takes the certificate's SubjectPublicKeyInfo.
      entry = { key: createPublicKey(cert.pem), der: pemToDer(cert.pem, 'CERTIFICATE') };
      if (this.#certs.size > 4096) this.#certs.clear();
      this.#certs.set(serialHex, entry);
    }
    return entry;
  }

  #transcriptOf(rec: SymKeyRecord): Buffer {
    const sender = { name: rec.owner, certSerial: rec.ownerCert };
    const receiver = { name: rec.peer, certSerial: rec.peerCert };
    if (rec.mode === 'kdc') {
      return kdcTranscriptHash({
        serial: rec.serial,
        sender,
        receiver,
        digest: rec.digest!,
        expiresAt: rec.expiresAt,
      });
    }
    return e2eTranscriptHash({
      serial: rec.serial,
      sender,
      receiver,
      prekeyId: rec.prekeyId ?? '',
      prekeyPublic: rec.prekeyPublic ?? Buffer.alloc(0),
      ephemeralPublic: rec.ephemeral ?? Buffer.alloc(0),
      expiresAt: rec.expiresAt,
    });
  }

  /** Does the stored digest still describe the stored ciphertext / wrapped key? */
  async #recordConsistent(rec: SymKeyRecord): Promise<boolean> {
    if (rec.digest === null || rec.digest.length !== 32) return false;
    if (rec.mode === 'e2e') {
      return rec.ciphertext !== null && equalBytes(ciphertextDigest(rec.ciphertext), rec.digest);
    }
    if (rec.wrappedKey === null || rec.kekVersion === null) return false;
    try {
      const key = (await this.kek()).unwrap(rec.serial, rec.wrappedKey, rec.kekVersion);
      return equalBytes(kdcKeyDigest(rec.serial, key), rec.digest);
    } catch (err) {
      if (err instanceof AuthError) return false;
      throw err;
    }
  }

  async #kekIfKdcKeys(serials: string[]): Promise<void> {
    for (const serial of serials) {
      if ((await this.#store.getSymKey(serial))?.mode === 'kdc') {
        await this.kek();
        return;
      }
    }
  }

  /** `sender`: the client whose quota the notice counts against (null: the KDC or the admin). */
  async #enqueue(
    tx: AsyncStoreTx,
    recipient: string,
    kind: DeliveryKind,
    keySerial: string,
    payload: Buffer | null,
    sender: string | null,
  ): Promise<DeliveryRecord> {
    const delivery = { recipient, kind, keySerial, payload, sender, createdAt: this.#now() };
    const id = await tx.enqueueDelivery(delivery);
    if (this.#node !== undefined)
      await tx.notify(DELIVERY_CHANNEL, encodeAnnouncement({ node: this.#node, id, recipient }));
    return { ...delivery, id };
  }

  /**
   * Another node queued a notice (a DELIVERY_CHANNEL payload): push it to the recipient's sessions on
   * this node, read from the store. That node pushed it to its own sessions; this node's are reached
   * only here, so each session gets it once. Pushes run one at a time, in the order announced.
   */
  pushAnnounced(payload: string): Promise<void> {
    const a = decodeAnnouncement(payload);
    // Ours (already pushed after the commit), or nobody to push to here: not even a read.
    if (a === undefined || a.node === this.#node || !this.#hasLiveSession(a.recipient))
      return this.#announced;
    this.#announced = this.#announced.then(async () => {
      const delivery = await this.#store.getDelivery(a.recipient, a.id);
      // Acknowledged already (through another node), or replaced by a newer notice about its key.
      if (delivery === undefined) return;
      // The KEK ring is opened once per process: after that, no look at the key's mode first.
      if (delivery.kind === 'key.delivered' && this.#kekReady === undefined)
        await this.#kekIfKdcKeys([delivery.keySerial]);
      await this.#pushAll([delivery]);
    });
    // A failed read leaves the notice to the queue (key.sync at the next connect); later ones still go.
    this.#announced = this.#announced.catch(() => undefined);
    return this.#announced;
  }

  /**
   * Announcements may have been missed (the store's listening connection was lost): push the backlog of
   * every identity with a session on this node. Notices pushed before are pushed again; clients take a
   * notice twice as once (docs/keys.md "Requirements": at-least-once).
   */
  async pushBacklogs(names: Iterable<string>): Promise<void> {
    for (const name of names) {
      if (!this.#hasLiveSession(name)) continue;
      const rows = await this.#store.listDeliveries(name, this.#syncBatch);
      if (rows.some((r) => r.kind === 'key.delivered'))
        await this.#kekIfKdcKeys(rows.map((r) => r.keySerial));
      await this.#pushAll(rows);
    }
  }

  #hasLiveSession(name: string): boolean {
    return this.#sessions.byName(name).some((s) => !s.closed);
  }

  /** Audit rows name serials, parties, reasons: never key material (the store refuses secret-looking keys). */
  async #audit(
    tx: AsyncStoreTx,
    actor: string,
    action: string,
    subject: string,
    detail: Record<string, unknown>,
  ): Promise<void> {
    await tx.appendAudit({ at: this.#now(), actor, action, subject, detail });
  }

  /**
   * After commit: push each queued delivery to its recipient's live sessions. Returns sessions reached.
   * A row is a queued delivery (its push rebuilt from the store) or a push built from the data in hand
   * by the request that just committed it (no second read of the record, no second unwrap).
   */
  async #pushAll(rows: readonly (DeliveryRecord | Push)[]): Promise<number> {
    let reached = 0;
    for (const row of rows) {
      const sessions = this.#sessions.byName(row.recipient).filter((s) => !s.closed);
      if (sessions.length === 0) continue;
      const p = 'body' in row ? row : await buildPush(row, this.#store, () => this.#kekReady);
      if (p === undefined) continue;
      for (const session of sessions) {
        // The change is committed and the notice queued: a push that fails (a socket closing right now)
        // must not turn the acknowledged request into an error. The queue redelivers it on key.sync.
        try {
          session.push(p.type, p.body);
          reached += 1;
        } catch {
          // left to the queue
        }
      }
    }
    return reached;
  }
}

function summarize(rec: SymKeyRecord): KeySummary {
  const out: KeySummary = {
    serial: rec.serial,
    mode: rec.mode,
    owner: rec.owner,
    peer: rec.peer,
    state: rec.state,
    createdAt: rec.createdAt,
    expiresAt: rec.expiresAt,
    peerVerified: rec.peerVerifiedAt !== null,
  };
  if (rec.state !== 'active' && rec.stateChangedAt !== null) out.revokedAt = rec.stateChangedAt;
  if (rec.revokedReason !== null) out.reason = rec.revokedReason;
  if (rec.revokedBy !== null) out.revokedBy = rec.revokedBy;
  if (rec.replaces !== null) out.replaces = rec.replaces;
  if (rec.supersededBy !== null) out.supersededBy = rec.supersededBy;
  return out;
}

function refuseUnusable(rec: SymKeyRecord): void {
  if (rec.state === 'revoked' || rec.state === 'superseded') {
    throw new StateError('key_revoked', `key ${rec.serial} is ${rec.state}`);
  }
  if (rec.state === 'expired') throw new StateError('key_expired', `key ${rec.serial} has expired`);
}

function asKeyState(state: SymKeyRecord['state']): 'active' | 'revoked' | 'expired' | 'superseded' {
  return state === 'reserved' ? 'revoked' : state;
}
