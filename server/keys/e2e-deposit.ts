// End-to-end keys, flow 1 (docs/keys.md "Requirements"): the reservation (a serial and one of the
// peer's one-time prekeys, atomically consumed, or its last-resort prekey) and the deposit of the
// sender's wrapped key, checked against the KDC's own view of the exchange, then delivered. Both go
// through the store's group commit (server/store/group-commit.ts): the answer follows the commit.
import { InputError, StateError } from '../../shared/errors.js';
import { labOff } from '../../shared/lab-switches.js';
import { ciphertextDigest } from '../../shared/keys/digest.js';
import { verifyTranscriptSignature } from '../../shared/keys/exchange.js';
import { WRAPPED_KEY_BYTES } from '../../shared/keys/key-wrap.js';
import { newKeySerial } from '../../shared/keys/serial.js';
import { e2eTranscriptHash } from '../../shared/keys/transcript.js';
import { PREKEY_LOW_WATER } from '../../shared/keys/prekey.js';
import { assertCallerCurrent } from '../kdc/caller-status.js';
import type { DeliveryRecord, PrekeyRecord } from '../store/store.js';
import type { AsyncStore, AsyncStoreTx } from '../store/async-store.js';
import { deliveredPush, type Push } from './deliveries.js';
import type { Caller, KeyContext, NewKeyRequest } from './key-context.js';
import type { KeyParties } from './key-parties.js';
import { tellPrekeysLow } from './key-prekeys.js';
import { checkActiveKeys, checkKeyNoticeQuota, checkReservationRoom } from './key-quotas.js';
import type { KeyRevocation } from './key-revoke.js';
import { checkTtl, RESERVATION_TTL_MS } from './ttl.js';

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
 * A write operation split for the group commit: the checks already ran, `write` runs inside a savepoint
 * of the next group commit, `finish` turns the committed result into the answer (and sends the pushes)
 * only after that commit is durable.
 */
interface Step<W, R> {
  write: (tx: AsyncStoreTx) => Promise<W>;
  finish: (written: W) => R | Promise<R>;
}

async function commitGrouped<W, R>(store: AsyncStore, step: Step<W, R>): Promise<R> {
  return step.finish(await store.batch(step.write));
}

export class E2eDeposit {
  readonly #ctx: KeyContext;
  readonly #parties: KeyParties;
  readonly #revocation: KeyRevocation;

  constructor(ctx: KeyContext, parties: KeyParties, revocation: KeyRevocation) {
    this.#ctx = ctx;
    this.#parties = parties;
    this.#revocation = revocation;
  }

  /** Flow 1: hand out a serial and one of the peer's one-time prekeys (atomically consumed). */
  async reserve(caller: Caller, req: NewKeyRequest): Promise<Reservation> {
    return commitGrouped(this.#ctx.store, await this.#reserveStep(caller, req));
  }

  /**
   * Flow 1 step 3: store Alice's deposit once her transcript signature verifies against HER session
   * certificate over the KDC's OWN view of the exchange (its reservation record), then deliver.
   */
  async deposit(caller: Caller, req: DepositRequest): Promise<Deposited> {
    return commitGrouped(this.#ctx.store, await this.#depositStep(caller, req));
  }

  /** reserve's checks now, its writes in `write` (one transaction), its answer from `finish`. */
  async #reserveStep(
    caller: Caller,
    req: NewKeyRequest,
  ): Promise<Step<{ prekey: PrekeyRecord; lastResort: boolean; low?: number } | undefined, Reservation>> {
    const ctx = this.#ctx;
    const ttl = checkTtl(req.ttl);
    const peerCert = await this.#parties.peerCertificate(caller, req.peer);
    if (req.replaces !== undefined) await this.#parties.replaceable(caller, req.replaces, req.peer, 'e2e');
    ctx.creation.take(caller.name);
    const serial = newKeySerial();
    let createdAt = 0;
    return {
      write: async (tx) => {
        const now = ctx.now();
        createdAt = now;
        await assertCallerCurrent(tx, caller.serialHex, now);
        await tx.deleteStaleReservations(now - RESERVATION_TTL_MS);
        await checkReservationRoom(tx, ctx.limits, caller.name, req.peer, {
          now,
          staleBefore: now - RESERVATION_TTL_MS,
          replacing: req.replaces !== undefined,
        });
        await checkKeyNoticeQuota(tx, ctx.limits, caller.name, req.peer);
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
            // Prekeys are published by the recipient's key commands (client/keys/open.ts), not by every
            // session (`kds client status` publishes none): say which, and the mode that needs none.
            `${req.peer} has no prekeys: ${req.peer} publishes them when it runs a key command (e.g. kds client keys or listen) and must do so once before it can receive end-to-end keys; a KDC-generated key (--mode kdc) needs none`,
          );
        }
        if (claimed.low !== undefined) tellPrekeysLow(ctx.sessions, req.peer, claimed.low);
        const { prekey } = claimed;
        return {
          serial,
          createdAt,
          expiresAt: createdAt + ttl,
          peer: req.peer,
          peerCert: (await ctx.certificate(peerCert.serialHex)).der,
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

  async #depositStep(
    caller: Caller,
    req: DepositRequest,
  ): Promise<Step<(DeliveryRecord | Push)[], Deposited>> {
    const ctx = this.#ctx;
    const rec = await ctx.store.getSymKey(req.serial);
    const now = ctx.now();
    if (
      rec === undefined ||
      rec.state !== 'reserved' ||
      rec.owner !== caller.name ||
      rec.ownerCert !== caller.serialHex ||
      rec.createdAt < now - RESERVATION_TTL_MS
    ) {
      throw new StateError('not_found', 'no such key reservation');
    }
    this.#revocation.refuseRevokedParties(rec);
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
    const owner = await ctx.certificate(rec.ownerCert);
    // LAB SWITCH e2e-transcript-signature: the sender's signature over the key transcript is not verified.
    if (!labOff(ctx.defences, 'e2e-transcript-signature'))
      verifyTranscriptSignature('sender', transcriptHash, digest, req.signature, owner.key);
    return {
      write: async (tx) => {
        const at = ctx.now();
        await assertCallerCurrent(tx, caller.serialHex, at);
        await checkKeyNoticeQuota(tx, ctx.limits, caller.name, rec.peer);
        // The old key of a rotation is superseded first, so its notice is queued (and pushed) before the
        // new key's delivery: a receiver never holds both as usable (client/keys MAX_KEYS_ACCEPTED_PER_SENDER).
        const ids: (DeliveryRecord | Push)[] =
          rec.replaces === null
            ? []
            : await this.#revocation.supersede(tx, rec.replaces, rec.serial, caller, at);
        await checkActiveKeys(tx, ctx.limits, caller.name, rec.peer, at);
        if (!(await tx.activateSymKey(rec.serial, { ...req, senderSignature: req.signature, digest }))) {
          throw new StateError('not_found', 'no such key reservation');
        }
        const delivery = await ctx.enqueue(tx, rec.peer, 'key.delivered', rec.serial, null, caller.name);
        // Pushed from the deposit in hand (the same values the row now holds), not re-read from the store.
        const deposited = {
          ...rec,
          ephemeral: req.ephemeral,
          ciphertext: req.ciphertext,
          senderSignature: req.signature,
        };
        ids.push(deliveredPush(delivery, deposited, { fromCert: owner.der }) ?? delivery);
        await ctx.audit(tx, caller.name, 'key.deposit', rec.serial, { peer: rec.peer, mode: 'e2e' });
        return ids;
      },
      finish: async (pushes) => {
        await ctx.pushAll(pushes);
        return { serial: rec.serial, createdAt: rec.createdAt, expiresAt: rec.expiresAt, digest };
      },
    };
  }
}
