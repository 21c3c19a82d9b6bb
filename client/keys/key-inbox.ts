// The KDC's notices to this client on one session (docs/keys.md "Delivery queue"): delivered keys
// (checked, decrypted, stored `pending`, then verified), revocations, the receiver's confirmation of a
// key we sent, and messages. Notices are processed one at a time in arrival order and acknowledged
// (`key.ack`) once applied, so a notice is never lost and a duplicate (at-least-once delivery) changes
// nothing. A delivered key is acknowledged inside its key.verify (`ack`, one request fewer per key),
// sent only once the key is stored; deliveries that arrive together share one key.verify.batch
// (docs/keys.md "Batches"). If we stop between that verify and storing its verdict, the key is left
// `pending` locally with its notice gone, so recheckPending() verifies such keys again.
import type { KeyObject } from 'node:crypto';
import { StateError, InputError, toKdsError } from '../../shared/errors.js';
import { acceptKdcKey, runReceiverExchange } from '../../shared/keys/exchange.js';
import { MAX_KEYS_ACCEPTED_IN_ALL, MAX_KEYS_ACCEPTED_PER_SENDER } from '../../shared/keys/quotas.js';
import { MAX_KEY_TTL_MS, MIN_KEY_TTL_MS } from '../../shared/keys/lifetime.js';
import { assertMessageSeq } from '../../shared/keys/replay-window.js';
import { e2eDeliveryOf, kdcDeliveryOf, wireBytes } from '../../shared/keys/wire.js';
import { openMessage } from '../../shared/keys/message.js';
import type { Verdict } from '../../shared/keys/verdict.js';
import type { RequestBody } from '../../shared/protocol/catalog.js';
import { labOff } from '../../shared/lab-switches.js';
import type { KeyParty } from './key-party.js';
import { liveKeys, localState, newRecord, usableKey, verifyAtKdc, verifyManyAtKdc } from './key-records.js';
import { MAX_KEYS_PER_BATCH } from '../../shared/protocol/messages-keys.js';
import type { LocalKeyState, StoredKey } from './key-store.js';
import type { PrekeyStock } from './prekey-stock.js';

export type KeyEvent =
  | {
      event: 'key';
      serial: string;
      from: string;
      mode: string;
      fingerprint: string;
      verdict: Verdict;
      state: LocalKeyState;
      expiresAt: number;
    }
  | { event: 'key.rejected'; serial: string; from: string; code: string; message: string }
  | { event: 'key.verified'; serial: string; peer: string; state: LocalKeyState }
  | { event: 'key.revoked'; serial: string; state: string; reason: string; revokedAt: number }
  | { event: 'message'; serial: string; from: string; text: string; sentAt: number }
  | {
      event: 'message.rejected';
      serial: string;
      from: string;
      code: string;
      message: string;
      /**
       * true: a local failure that may pass (`io_error`, `timeout`: the key store could not be read or
       * written, its counter lock stayed held); the message was NOT acknowledged, so the KDC delivers it
       * again at this client's next session. Otherwise it is refused for good (and acknowledged).
       */
      kept?: true;
    };

export interface KeyInboxOptions {
  /** Decrypt and acknowledge `msg` pushes (listen). Other commands leave messages queued for listen. */
  acceptMessages: boolean;
  onEvent: (event: KeyEvent) => void;
}

/** A notice handler's outcome: acknowledge it (true), leave it queued (false), or already acknowledged. */
type Handled = boolean | 'acknowledged';

/**
 * Pushes that may wait to be applied, in number and in bytes (a relayed message carries up to 32 KiB).
 * A KDC that pushes faster than the client applies them (an honest one's per-sender bounds keep it
 * below these; a hostile one is bound by nothing) would otherwise grow the client without bound:
 * 5,000 pushes of 32 KiB took it from 84 to 244 MiB before the first was applied.
 */
const MAX_PENDING_PUSHES = 1_024;
const MAX_PENDING_PUSH_BYTES = 16 * 1024 * 1024;

/** key.sync rounds of one pass at most (256 notices each), and passes of one sync(). */
const MAX_SYNC_ROUNDS = 100;
const MAX_SYNC_PASSES = 4;

/** After a prune of a sender's keys found it still at the bound, refuse without re-reading for this long. */
const SENDER_RECOUNT_MS = 10_000;

export class KeyInbox {
  readonly #party: KeyParty;
  readonly #prekeys: PrekeyStock;
  readonly #acceptMessages: boolean;
  readonly #onEvent: (event: KeyEvent) => void;
  readonly #unsubscribe: (() => void)[] = [];
  #chain: Promise<void> = Promise.resolve();
  /**
   * Usable keys received from each sender (built from the store on first use), for the bound on what one
   * sender can put in our home; `recountedAt`: when a prune last found the sender still at the bound.
   */
  #fromSender: Map<string, { serials: Set<string>; recountedAt: number }> | undefined;
  /** When a recount of every sender's keys last found them still at MAX_KEYS_ACCEPTED_IN_ALL. */
  #allRecountedAt = -Infinity;
  /** Pushes waiting to be applied (and their bytes), and whether one was left out over the bound. */
  #pending = 0;
  #pendingBytes = 0;
  #missed = false;
  /** Delivery ids pushed since the current sync() began, and how many of them were new. */
  readonly #syncSeen = new Set<number>();
  #syncFresh = 0;
  #syncing = false;
  #syncRun: Promise<void> | undefined;
  /** Delivered keys stored `pending` and not verified yet (#verifyWaiting), with their delivery ids. */
  readonly #toVerify: { serial: string; from: string; d: number | undefined }[] = [];
  readonly #handleDelivered = (b: Record<string, unknown>): Promise<Handled> => this.#onDelivered(b);

  constructor(party: KeyParty, prekeys: PrekeyStock, opts: KeyInboxOptions) {
    this.#party = party;
    this.#prekeys = prekeys;
    this.#acceptMessages = opts.acceptMessages;
    this.#onEvent = opts.onEvent;
    const handlers: Record<string, (body: Record<string, unknown>) => Promise<Handled>> = {
      'key.delivered': this.#handleDelivered,
      'key.revoked': (b) => this.#onRevoked(b),
      'key.verified': (b) => this.#onVerified(b),
      msg: (b) => this.#onMessage(b),
    };
    for (const [type, handle] of Object.entries(handlers)) {
      this.#unsubscribe.push(
        party.session.onPush(type, (body) => {
          const size = pushSize(body);
          if (this.#pending >= MAX_PENDING_PUSHES || this.#pendingBytes + size > MAX_PENDING_PUSH_BYTES) {
            // Not applied, so not acknowledged: it stays queued at the KDC, and is asked for again once
            // what is waiting has been applied (or by the next round of a sync under way).
            this.#missed = true;
            return;
          }
          if (this.#syncing && typeof body.d === 'number' && !this.#syncSeen.has(body.d)) {
            this.#syncSeen.add(body.d);
            this.#syncFresh += 1;
          }
          this.#pending += 1;
          this.#pendingBytes += size;
          this.#chain = this.#chain
            .then(() => this.#process(body, handle))
            .finally(() => this.#settled(size));
        }),
      );
    }
    // Not a queued notice (no `d`): the KDC says our one-time stock runs low; refill it now, so that
    // senders keep getting one-time prekeys rather than the last-resort one.
    this.#unsubscribe.push(party.session.onPush('key.prekeys.low', () => void prekeys.onLow()));
  }

  /**
   * Ask for the queued notices until none remain, and wait until they are applied. Without messages
   * (every command but listen) only key notices are asked for: the messages stay queued for listen, and
   * a backlog of them never stands in front of a key notice. A round that brings no notice not seen in
   * this sync ends it: what it pushed is still queued (not applied yet, or a KDC repeating itself), and
   * asking again would only bring it again.
   */
  sync(): Promise<void> {
    // One at a time: a command's own and the one a dropped push starts (#settled) share their state.
    this.#syncRun ??= this.#syncPasses().finally(() => (this.#syncRun = undefined));
    return this.#syncRun;
  }

  async #syncPasses(): Promise<void> {
    // A push left out over the bound while a pass ran is still queued at the KDC: ask again, a few
    // times at most (a KDC that keeps pushing more than the bound is not waited for for ever).
    for (let pass = 0; pass < MAX_SYNC_PASSES; pass += 1) {
      this.#missed = false;
      await this.#syncOnce();
      if (!this.#missed) return;
    }
  }

  async #syncOnce(): Promise<void> {
    const body: RequestBody<'key.sync'> = this.#acceptMessages ? {} : { messages: false };
    this.#syncSeen.clear();
    this.#syncing = true;
    try {
      for (let round = 0; round < MAX_SYNC_ROUNDS; round += 1) {
        const fresh = this.#syncFresh;
        const r = await this.#party.session.request('key.sync', body);
        await this.idle();
        if (r.remaining === 0 || r.pushed === 0 || this.#syncFresh === fresh) return;
      }
    } finally {
      this.#syncing = false;
      this.#syncSeen.clear();
    }
  }

  /** One push applied: when the last one waiting is, ask for what was left out (see the constructor). */
  #settled(size: number): void {
    this.#pending -= 1;
    this.#pendingBytes -= size;
    if (this.#pending === 0 && this.#missed && this.#syncRun === undefined) {
      this.sync().catch(() => undefined);
    }
  }

  /**
   * A long session's housekeeping, between two notices (listen runs it periodically): the keys that
   * expired since the session opened are retired, so the live keys stay the usable ones (key-store.ts)
   * however many short-lived keys arrive while it runs.
   */
  retireExpired(): Promise<void> {
    const run = this.#chain.then(() => void liveKeys(this.#party));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** Resolves once every push received so far has been processed. */
  async idle(): Promise<void> {
    let current: Promise<void>;
    do {
      current = this.#chain;
      await current;
    } while (current !== this.#chain);
  }

  detach(): void {
    for (const off of this.#unsubscribe.splice(0)) off();
  }

  /**
   * Received keys still `pending` whose notice is no longer queued (see the header): ask for the
   * verdict again. A key whose notice was redelivered by sync() was verified there already.
   */
  async recheckPending(): Promise<void> {
    const serials = liveKeys(this.#party)
      .filter((rec) => rec.role === 'receiver' && rec.state === 'pending' && rec.transcriptHash !== undefined)
      .map((rec) => rec.serial);
    // MAX_KEYS_PER_BATCH at a time in key.verify.batch (docs/keys.md "Batches"): a client that stopped
    // with many keys pending verifies them in a few requests, not one each.
    for (let i = 0; i < serials.length; i += MAX_KEYS_PER_BATCH) {
      await verifyManyAtKdc(this.#party, serials.slice(i, i + MAX_KEYS_PER_BATCH)).catch(() => undefined);
    }
  }

  async #process(
    body: Record<string, unknown>,
    handle: (body: Record<string, unknown>) => Promise<Handled>,
  ): Promise<void> {
    // Delivered keys waiting for their verification go first: any other notice (a revocation of one of
    // them) applies after it, in arrival order.
    const delivery = handle === this.#handleDelivered;
    if (!delivery) await this.#verifyWaiting();
    let ack: Handled = true;
    try {
      ack = await handle(body);
    } catch {
      // A notice we cannot apply now (e.g. the session dropped mid-way) stays queued at the KDC.
      ack = false;
    }
    // The last push waiting, or a full batch: verify what was stored (#onDelivered).
    if (delivery && (this.#pending <= 1 || this.#toVerify.length >= MAX_KEYS_PER_BATCH)) {
      await this.#verifyWaiting();
    }
    if (ack === true && typeof body.d === 'number') {
      try {
        await this.#party.session.request('key.ack', { ids: [body.d] });
      } catch {
        // Not acknowledged: it comes again on the next sync, and applying it twice changes nothing.
      }
    }
  }

  async #onDelivered(b: Record<string, unknown>): Promise<Handled> {
    const { store, session } = this.#party;
    const serial = String(b.serial);
    const from = String(b.from);
    const existing = store.getKey(serial);
    if (existing !== undefined && existing.state !== 'pending') return true; // a duplicate
    let record = existing;
    if (record === undefined) {
      const refusal = this.#overBound(from) ?? refuseLifetime(b, this.#party.now());
      if (refusal !== undefined) {
        // Acknowledged, not kept: a KDC that enforces its bound never sends this (docs/keys.md "Quotas").
        this.#onEvent({ event: 'key.rejected', serial, from, code: refusal.code, message: refusal.message });
        return true;
      }
      try {
        record = await this.#accept(b);
        senderEntry(this.#senderCounts(), from).serials.add(serial);
      } catch (err) {
        const e = toKdsError(err);
        this.#onEvent({ event: 'key.rejected', serial, from, code: e.code, message: e.message });
        if (
          e.code === 'bad_signature' ||
          e.code === 'bad_mac' ||
          e.code === 'bad_dh_public' ||
          e.code === 'peer_revoked'
        ) {
          // Tell the KDC (and so the sender) this exchange failed: the key must not be used by anyone.
          await session.request('key.revoke', { serial, reason: 'keyCompromise' }).catch(() => undefined);
        }
        return true;
      }
    }
    // The key is stored (pending): its verification, which acknowledges its notice, follows once the
    // deliveries queued right behind it are stored too (#process), in one request for all of them.
    const d = typeof b.d === 'number' ? b.d : undefined;
    this.#toVerify.push({ serial, from, d });
    return 'acknowledged';
  }

  /**
   * Verify the delivered keys stored since the last verification, acknowledging their notices in the
   * same request: one key.verify as before when there is one, else one key.verify.batch (docs/keys.md
   * "Batches"), so a client that comes online to a backlog verifies it 32 keys a request. If the request
   * fails, the keys stay `pending` and their notices queued: they come again, as after a crash.
   */
  async #verifyWaiting(): Promise<void> {
    const waiting = this.#toVerify.splice(0);
    if (waiting.length === 0) return;
    const { store } = this.#party;
    let verdicts: (Verdict | undefined)[];
    try {
      if (waiting.length === 1) {
        const only = waiting[0]!;
        verdicts = [(await verifyAtKdc(this.#party, only.serial, only.d)).verdict];
      } else {
        const ack = waiting.flatMap((w) => (w.d === undefined ? [] : [w.d]));
        const results = await verifyManyAtKdc(
          this.#party,
          waiting.map((w) => w.serial),
          ack,
        );
        // An item the KDC refused (its `error`) stays pending; the next start verifies it again.
        verdicts = results.map((r) => ('verdict' in r ? r.verdict : undefined));
      }
    } catch {
      return;
    }
    let e2e = false;
    for (const [i, w] of waiting.entries()) {
      const verdict = verdicts[i];
      const stored = store.getKey(w.serial);
      if (verdict === undefined || stored === undefined) continue;
      // Two clocks judge a key: the KDC's verdict (`valid`, `revoked`, ...) is on the KDC's, and it is
      // the authority for the key's state; but this client uses the key only while its own clock is
      // before expiresAt (usableKey), so the local state, the one printed and the one `kds client keys`
      // shows as `local`, has expiry applied on the local clock. Never `active` for a key this client
      // will refuse.
      const now = localState(this.#party, stored);
      e2e ||= now.mode === 'e2e';
      this.#onEvent({
        event: 'key',
        serial: w.serial,
        from: w.from,
        mode: now.mode,
        fingerprint: now.fingerprint,
        verdict,
        state: now.state,
        expiresAt: now.expiresAt,
      });
    }
    // A long-lived listener must not run dry: replace the prekeys these senders consumed.
    if (e2e) await this.#prekeys.topUp().catch(() => undefined);
  }

  /** Check, decrypt and store a delivered key as `pending`. */
  async #accept(b: Record<string, unknown>): Promise<StoredKey> {
    const { name, certSerial, identityKey, store, now } = this.#party;
    const serial = String(b.serial);
    const me = { name, certSerial, privateKey: identityKey };
    const common = {
      serial,
      role: 'receiver' as const,
      owner: String(b.from),
      peer: name,
      createdAt: Number(b.createdAt),
      expiresAt: Number(b.expiresAt),
    };
    if (b.mode === 'kdc') {
      const r = await acceptKdcKey(me, kdcDeliveryOf(b));
      const rec = newRecord(now(), {
        ...common,
        mode: 'kdc',
        key: r.key,
        digest: r.digest,
        transcriptHash: r.transcriptHash,
      });
      store.putKey(rec);
      return rec;
    }
    const delivery = e2eDeliveryOf(b);
    return this.#prekeys.using(delivery.prekeyId, () => this.#acceptE2e(me, common, delivery));
  }

  async #acceptE2e(
    me: { name: string; certSerial: string; privateKey: KeyObject },
    common: {
      serial: string;
      role: 'receiver';
      owner: string;
      peer: string;
      createdAt: number;
      expiresAt: number;
    },
    delivery: ReturnType<typeof e2eDeliveryOf>,
  ): Promise<StoredKey> {
    const { store, ca, now, defences } = this.#party;
    const prekeyId = delivery.prekeyId;
    const prekey = store.getPrekey(prekeyId);
    if (prekey === undefined)
      throw new StateError('not_found', 'the prekey of this delivery is unknown or already used');
    let r: Awaited<ReturnType<typeof runReceiverExchange>>;
    try {
      r = await runReceiverExchange(
        me,
        delivery,
        {
          id: prekey.id,
          certSerial: prekey.certSerial,
          publicKey: Buffer.from(prekey.publicKey, 'base64'),
          privateKey: Buffer.from(prekey.privateKey, 'base64'),
        },
        { ca, now: now(), defences },
      );
    } catch (err) {
      // A one-time prekey named by a delivery was claimed at the KDC by that reservation: no other
      // exchange can use it, and this one failed (the notice is acknowledged as rejected). Kept, its
      // private would wait for the next housekeeping: one file per bad deposit, at a sender's rate.
      if (prekey.lastResort !== true) store.deletePrekey(prekeyId);
      throw err;
    }
    const rec = newRecord(now(), {
      ...common,
      mode: 'e2e',
      key: r.key,
      digest: r.digest,
      transcriptHash: r.transcriptHash,
    });
    store.putKey(rec);
    // One-time: the private half is gone once used. The last-resort one serves every exchange made while
    // the stock was empty; it goes when it is replaced and no longer held (housekeeping).
    if (prekey.lastResort !== true) store.deletePrekey(prekeyId);
    return rec;
  }

  /**
   * The bounds on what senders can put in our home: refuse a new key from `from` while we hold
   * MAX_KEYS_ACCEPTED_PER_SENDER usable (pending or active, unexpired) keys received from it, or
   * MAX_KEYS_ACCEPTED_IN_ALL from everyone (the per-sender bound goes by a name a KDC could make up for
   * every key). Counted in memory; at a bound the keys it counts are re-read once (some may have been
   * revoked or expired since), and one still at the bound is refused without re-reading for
   * SENDER_RECOUNT_MS. Nothing is recorded for a sender that is refused.
   */
  #overBound(from: string): { code: 'quota_exceeded'; message: string } | undefined {
    const counts = this.#senderCounts();
    const entry = counts.get(from);
    if (entry !== undefined && entry.serials.size >= MAX_KEYS_ACCEPTED_PER_SENDER) {
      if (!this.#recount([entry], MAX_KEYS_ACCEPTED_PER_SENDER)) {
        return {
          code: 'quota_exceeded',
          message: `${from} already gave us ${entry.serials.size} usable keys (at most ${MAX_KEYS_ACCEPTED_PER_SENDER}); this one is refused`,
        };
      }
    }
    if (totalOf(counts) >= MAX_KEYS_ACCEPTED_IN_ALL) {
      const all = { serials: new Set<string>(), recountedAt: this.#allRecountedAt };
      if (!this.#recount([...counts.values()], MAX_KEYS_ACCEPTED_IN_ALL, all)) {
        this.#allRecountedAt = all.recountedAt;
        return {
          code: 'quota_exceeded',
          message: `we already hold ${totalOf(counts)} usable keys from others (at most ${MAX_KEYS_ACCEPTED_IN_ALL}); this one is refused`,
        };
      }
      for (const [name, e] of counts) if (e.serials.size === 0) counts.delete(name);
    }
    return undefined;
  }

  /**
   * Drop the keys of `entries` no longer usable, unless `clock` (default: the one entry's own) says it
   * was done within SENDER_RECOUNT_MS; true when their total is then below `bound`.
   */
  #recount(
    entries: { serials: Set<string>; recountedAt: number }[],
    bound: number,
    clock: { recountedAt: number } = entries[0]!,
  ): boolean {
    const { store, now } = this.#party;
    const at = now();
    if (at - clock.recountedAt < SENDER_RECOUNT_MS) return false;
    for (const entry of entries) {
      for (const serial of entry.serials) {
        const k = store.getKey(serial);
        if (k === undefined || !this.#usableState(k)) entry.serials.delete(serial);
      }
    }
    if (entries.reduce((n, e) => n + e.serials.size, 0) < bound) return true;
    clock.recountedAt = at;
    return false;
  }

  #senderCounts(): Map<string, { serials: Set<string>; recountedAt: number }> {
    if (this.#fromSender === undefined) {
      const counts = new Map<string, { serials: Set<string>; recountedAt: number }>();
      for (const k of liveKeys(this.#party)) {
        if (k.role === 'receiver' && this.#usableState(k)) senderEntry(counts, k.owner).serials.add(k.serial);
      }
      this.#fromSender = counts;
    }
    return this.#fromSender;
  }

  #usableState(k: StoredKey): boolean {
    return (k.state === 'pending' || k.state === 'active') && k.expiresAt > this.#party.now();
  }

  async #onRevoked(b: Record<string, unknown>): Promise<boolean> {
    const serial = String(b.serial);
    const state = b.state === 'superseded' ? 'superseded' : 'revoked';
    const info = { reason: String(b.reason), revokedAt: Number(b.revokedAt) };
    this.#party.store.retire(serial, state, info);
    this.#onEvent({ event: 'key.revoked', serial, state, ...info });
    return true;
  }

  async #onVerified(b: Record<string, unknown>): Promise<boolean> {
    const { store, now } = this.#party;
    const serial = String(b.serial);
    const rec = store.getKey(serial);
    if (rec !== undefined && rec.state === 'pending' && rec.role === 'sender' && rec.key !== undefined) {
      store.putKey({ ...rec, state: 'active', updatedAt: now() });
    }
    const stored = store.getKey(serial);
    // Expiry on the local clock, as for a delivered key (#verifyWaiting).
    const after = stored === undefined ? undefined : localState(this.#party, stored);
    this.#onEvent({ event: 'key.verified', serial, peer: rec?.peer ?? '', state: after?.state ?? 'pending' });
    return true;
  }

  async #onMessage(b: Record<string, unknown>): Promise<boolean> {
    if (!this.#acceptMessages) return false; // left queued for `kds client listen`
    const { name, store, defences } = this.#party;
    const serial = String(b.serial);
    const from = String(b.from);
    try {
      if (b.to !== name) throw new InputError('bad_request', 'a message for someone else');
      const seq = assertMessageSeq(b.seq);
      const rec = usableKey(this.#party, serial);
      if (from !== rec.owner && from !== rec.peer) throw new StateError('not_found', 'no such key');
      const text = openMessage(
        Buffer.from(rec.key!, 'base64'),
        { serial, from, to: name, seq },
        { nonce: wireBytes(b.nonce), ciphertext: wireBytes(b.ciphertext) },
      );
      // `seq` is authentic now (it is in the AAD). Refuse it if already accepted (`replayed`), and make
      // the acceptance durable BEFORE showing the text: a crash after this line cannot show it twice.
      // (Under the window's lock: a second `listen` of this client cannot lose this update either.)
      // LAB SWITCH replay-window: a message number already accepted under this key is accepted again.
      if (!labOff(defences, 'replay-window')) store.acceptReceivedSeq(serial, seq);
      this.#onEvent({
        event: 'message',
        serial,
        from,
        text: text.toString('utf8'),
        sentAt: Number(b.sentAt),
      });
    } catch (err) {
      const e = toKdsError(err);
      // Acknowledging would drop the message at the KDC: only for what no retry can change (a forged,
      // replayed or unknown-key message). A store that could not be read or written keeps it queued.
      const kept = e.code === 'io_error' || e.code === 'timeout';
      this.#onEvent({
        event: 'message.rejected',
        serial,
        from,
        code: e.code,
        message: e.message,
        ...(kept ? { kept: true as const } : {}),
      });
      return !kept;
    }
    return true;
  }
}

/** What a push holds in memory, roughly: its byte strings (a message's ciphertext) and a fixed part. */
function pushSize(body: Record<string, unknown>): number {
  let n = 256;
  for (const v of Object.values(body)) if (Buffer.isBuffer(v) || v instanceof Uint8Array) n += v.byteLength;
  return n;
}

function totalOf(counts: Map<string, { serials: Set<string> }>): number {
  let n = 0;
  for (const e of counts.values()) n += e.serials.size;
  return n;
}

/** How far the KDC's clock may run ahead of ours before a delivered key's creation time is refused. */
const CLOCK_SKEW_MS = 24 * 60 * 60 * 1000;

/**
 * A delivered key whose lifetime is not one the KDC may give (1 s to 90 days, shared/keys/lifetime.ts),
 * or created in our future (beyond a day of clock skew): refused, as a KDC that enforces its rules
 * never sends one. A key that expires in a million years would never be retired by expiry, and a time
 * past what a Date can hold broke every listing.
 */
function refuseLifetime(
  b: Record<string, unknown>,
  now: number,
): { code: 'malformed'; message: string } | undefined {
  const createdAt = Number(b.createdAt);
  const lifetime = Number(b.expiresAt) - createdAt;
  if (!(createdAt <= now + CLOCK_SKEW_MS)) {
    return {
      code: 'malformed',
      message: `the key was created in the future (${String(createdAt)}); it is refused`,
    };
  }
  if (lifetime >= MIN_KEY_TTL_MS && lifetime <= MAX_KEY_TTL_MS) return undefined;
  return {
    code: 'malformed',
    message: `the key's lifetime (${String(lifetime)} ms) is outside ${MIN_KEY_TTL_MS} ms to ${MAX_KEY_TTL_MS} ms; it is refused`,
  };
}

function senderEntry(
  counts: Map<string, { serials: Set<string>; recountedAt: number }>,
  from: string,
): { serials: Set<string>; recountedAt: number } {
  let entry = counts.get(from);
  if (entry === undefined) {
    entry = { serials: new Set(), recountedAt: -Infinity };
    counts.set(from, entry);
  }
  return entry;
}
