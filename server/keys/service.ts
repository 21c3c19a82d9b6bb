// The KDC's symmetric-key service (docs/keys.md): one facade over the parts that hold the rules, each in
// its own file under server/keys/. Handlers (handlers.ts) are thin adapters from wire requests to these
// methods; server/kdc/cluster-push.ts feeds it the other nodes' announcements.
//
// - key-context.ts: what every part shares (store, CA, sessions, clock, limits, KEK ring, certificate
//   cache) and the queue / audit / push helpers;
// - key-parties.ts: the peer's certificate and status, the key a rotation replaces;
// - key-prekeys.ts: the prekey stock; e2e-deposit.ts: flow 1 (reserve, deposit);
// - key-create.ts: flow 2 (KDC-generated keys, one or a batch); key-verify.ts: verification verdicts
//   (one or a batch);
// - key-lookup.ts: lookups only the parties and the admin get answers to, listings, summaries;
// - key-revoke.ts: revocation, the certificate-revocation cascade, rotation's superseding;
// - key-sweep.ts: expiry and the start-up sweep; key-quotas.ts: the per-pair bounds;
// - key-messages.ts: relayed messages; delivery-queue.ts: key.sync, key.ack, other nodes' notices.
//
// Rules enforced by those parts (docs/keys.md "Requirements, and why"):
// - "Only the two parties (and the admin) may fetch, verify or revoke a key; anyone else gets
//   `not_found` (no oracle telling which serials exist)": every lookup goes through KeyLookup.find,
//   which answers an unknown serial and somebody else's key identically.
// - "Revocation is durable before it is acknowledged": the state change and the queued notices commit
//   in one transaction before the method returns (better-sqlite3 with synchronous=FULL).
// - "Sending to a revoked, expired or unknown peer fails with its code": KeyParties.peerCertificate.
// - Hostile peers (docs/keys.md "Quotas", docs/security.md): every write re-checks the caller's
//   certificate inside the transaction that makes it (assertCallerCurrent); what one client may queue
//   for another, the active keys and open reservations of one pair, and the rate at which a client
//   creates keys are bounded, each checked inside that same transaction (the rate before any work).
import { CERTIFICATE_REVOKED } from '../../shared/keys/verdict.js';
import type { NewPrekey } from '../store/store.js';
import { DeliveryQueue } from './delivery-queue.js';
import { E2eDeposit, type DepositRequest, type Deposited, type Reservation } from './e2e-deposit.js';
import { KdcKeyCreation } from './key-create.js';
import { KeyContext, type Caller, type KeyServiceOptions, type NewKeyRequest } from './key-context.js';
import { KeyLookup, type KeySummary } from './key-lookup.js';
import { sendMessage } from './key-messages.js';
import { KeyParties } from './key-parties.js';
import { putPrekeys } from './key-prekeys.js';
import { KeyRevocation } from './key-revoke.js';
import { pruneExpiredKeys, sweep } from './key-sweep.js';
import {
  KeyVerification,
  type VerifyBatchResult,
  type VerifyRequest,
  type VerifyResult,
} from './key-verify.js';

export class KeyService {
  readonly #ctx: KeyContext;
  readonly #lookup: KeyLookup;
  readonly #revocation: KeyRevocation;
  readonly #parties: KeyParties;
  readonly #e2e: E2eDeposit;
  readonly #creation: KdcKeyCreation;
  readonly #queue: DeliveryQueue;
  readonly #verification: KeyVerification;

  constructor(opts: KeyServiceOptions) {
    const ctx = new KeyContext(opts);
    this.#ctx = ctx;
    // Lookups cascade revocations they find unapplied, and revoke looks keys up: each reaches the other
    // through a closure, resolved at call time.
    this.#lookup = new KeyLookup(ctx, (rec) => this.#revocation.checkParties(rec));
    this.#revocation = new KeyRevocation(ctx, (caller, serial) => this.#lookup.find(caller, serial));
    this.#parties = new KeyParties(ctx, this.#lookup);
    this.#e2e = new E2eDeposit(ctx, this.#parties, this.#revocation);
    this.#creation = new KdcKeyCreation(ctx, this.#parties, this.#revocation);
    this.#queue = new DeliveryQueue(ctx);
    this.#verification = new KeyVerification(ctx, this.#lookup, this.#queue);
  }

  // -- peers and prekeys

  peer(caller: Caller, name: string): ReturnType<KeyParties['peer']> {
    return this.#parties.peer(caller, name);
  }

  putPrekeys(
    caller: Caller,
    prekeys: readonly NewPrekey[],
    opts: { listHeld?: boolean; lastResort?: NewPrekey } = {},
  ): ReturnType<typeof putPrekeys> {
    return putPrekeys(this.#ctx, caller, prekeys, opts);
  }

  // -- creating keys (both through the store's group commit)

  reserve(caller: Caller, req: NewKeyRequest): Promise<Reservation> {
    return this.#e2e.reserve(caller, req);
  }

  deposit(caller: Caller, req: DepositRequest): Promise<Deposited> {
    return this.#e2e.deposit(caller, req);
  }

  create(caller: Caller, req: NewKeyRequest): ReturnType<KdcKeyCreation['create']> {
    return this.#creation.create(caller, req);
  }

  /** `count` KDC-generated keys for one peer, in one commit, all or nothing (docs/keys.md "Batches"). */
  createBatch(
    caller: Caller,
    req: Parameters<KdcKeyCreation['createBatch']>[1],
  ): ReturnType<KdcKeyCreation['createBatch']> {
    return this.#creation.createBatch(caller, req);
  }

  // -- verification, lookup, lifecycle

  verify(caller: Caller, req: VerifyRequest): Promise<VerifyResult> {
    return this.#verification.verify(caller, req);
  }

  /** Several key.verify in one request: one answer per item, the writes in one commit. */
  verifyBatch(
    caller: Caller,
    req: { items: readonly Omit<VerifyRequest, 'ack'>[]; ack?: readonly number[] },
  ): Promise<VerifyBatchResult[]> {
    return this.#verification.verifyBatch(caller, req);
  }

  get(caller: Caller, serial: string): Promise<KeySummary> {
    return this.#lookup.get(caller, serial);
  }

  list(caller: Caller): Promise<KeySummary[]> {
    return this.#lookup.list(caller);
  }

  adminList(caller: Caller, opts: { revoked?: boolean } = {}): Promise<KeySummary[]> {
    return this.#lookup.adminList(caller, opts);
  }

  revoke(caller: Caller, req: { serial: string; reason: string }): ReturnType<KeyRevocation['revoke']> {
    return this.#revocation.revoke(caller, req);
  }

  /**
   * The certificate cascade (key-revoke.ts), idempotent: it revokes the name's keys that are still active.
   * `retry`: an earlier attempt for this revocation failed, possibly after its transaction committed (a
   * connection cut during the COMMIT reports an error for a commit that happened), in which case this one
   * finds the keys revoked already and has no notices of its own to push. So the backlogs of the other
   * parties of the name's cascaded keys are pushed to their sessions here, as after a lost notification
   * (delivery is at-least-once, and clients handle a duplicate idempotently: deliveries.ts).
   */
  async onCertificateRevoked(
    serialHex: string,
    name: string,
    opts: { retry?: boolean } = {},
  ): Promise<number> {
    const keys = await this.#revocation.onCertificateRevoked(serialHex, name);
    if (opts.retry === true) {
      const peers = new Set<string>();
      for (const rec of await this.#ctx.store.listSymKeys({ party: name, states: ['revoked'] })) {
        if (rec.revokedReason === CERTIFICATE_REVOKED) peers.add(rec.owner === name ? rec.peer : rec.owner);
      }
      await this.#queue.pushBacklogs(peers);
    }
    return keys;
  }

  sweep(): Promise<void> {
    return sweep(this.#ctx, (rec) => this.#revocation.checkParties(rec));
  }

  /** Delete the keys that expired more than `retentionMs` ago; returns how many (key-sweep.ts). */
  pruneExpired(retentionMs: number, notAfter?: number): Promise<number> {
    return pruneExpiredKeys(this.#ctx, retentionMs, notAfter);
  }

  // -- messages and deliveries

  sendMessage(
    caller: Caller,
    req: { to: string; serial: string; seq: number; nonce: Buffer; ciphertext: Buffer },
  ): ReturnType<typeof sendMessage> {
    return sendMessage(this.#ctx, this.#lookup, caller, req);
  }

  sync(
    caller: Caller,
    push: (type: string, body: Record<string, unknown>) => void,
    opts: { messages?: boolean } = {},
  ): Promise<{ pushed: number; remaining: number }> {
    return this.#queue.sync(caller, push, opts);
  }

  ack(caller: Caller, ids: readonly number[]): Promise<{ acknowledged: number }> {
    return this.#queue.ack(caller, ids);
  }

  pushAnnounced(payload: string): Promise<void> {
    return this.#queue.pushAnnounced(payload);
  }

  pushBacklogs(names: Iterable<string>): Promise<void> {
    return this.#queue.pushBacklogs(names);
  }
}
