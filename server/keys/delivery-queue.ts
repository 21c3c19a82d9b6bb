// The durable delivery queue as its recipients see it (docs/keys.md "Delivery queue"): key.sync pushes
// the caller's queued notices, key.ack forgets them, and on PostgreSQL the notices other nodes queued
// (announced on DELIVERY_CHANNEL, deliveries.ts) or missed are pushed to this node's live sessions.
// Delivery is at-least-once: a notice stays queued until its recipient acknowledges it.
import { assertCallerCurrent } from '../kdc/caller-status.js';
import type { AsyncStoreTx } from '../store/async-store.js';
import { buildPush, decodeAnnouncement } from './deliveries.js';
import type { Caller, KeyContext } from './key-context.js';
import { expireDue } from './key-sweep.js';

/**
 * Reads of announced deliveries in flight at once: enough to overlap their round trips, few enough that a
 * burst of announcements (a revocation cascading to many keys) leaves the pool's connections to requests.
 */
const ANNOUNCED_READS = 4;

export class DeliveryQueue {
  readonly #ctx: KeyContext;
  /** Announced deliveries being pushed, one after the other (in commit order). */
  #announced: Promise<void> = Promise.resolve();
  /** Reads of announced deliveries in flight (at most ANNOUNCED_READS; the others wait, in order). */
  #reading = 0;
  readonly #readWaiters: (() => void)[] = [];

  constructor(ctx: KeyContext) {
    this.#ctx = ctx;
  }

  /**
   * Push the caller's queued notices (oldest first) to `push`, then say how many remain. The pushes
   * precede the reply on the ordered channel, so when the client sees the reply it has them all.
   */
  async sync(
    caller: Caller,
    push: (type: string, body: Record<string, unknown>) => void,
    opts: { messages?: boolean } = {},
  ): Promise<{ pushed: number; remaining: number }> {
    const ctx = this.#ctx;
    await expireDue(ctx);
    // A session that does not take messages asks for key notices only: otherwise a backlog of messages
    // it leaves queued (more than one batch) would fill every batch, and the notices queued behind them
    // would never reach it.
    const keyNoticesOnly = opts.messages === false;
    const rows = await ctx.store.listDeliveries(caller.name, ctx.syncBatch, keyNoticesOnly);
    if (rows.some((r) => r.kind === 'key.delivered')) await ctx.kekIfKdcKeys(rows.map((r) => r.keySerial));
    let pushed = 0;
    const obsolete: number[] = [];
    for (const row of rows) {
      const p = await buildPush(row, ctx.store, () => ctx.kekReady());
      if (p === undefined) {
        obsolete.push(row.id);
        continue;
      }
      push(p.type, p.body);
      pushed += 1;
    }
    if (obsolete.length > 0) await ctx.store.deleteDeliveries(caller.name, obsolete);
    const queued = await ctx.store.countDeliveries(caller.name, keyNoticesOnly);
    return { pushed, remaining: Math.max(0, queued - pushed) };
  }

  /**
   * Forget acknowledged deliveries (only the caller's own), through the store's group commit: what the
   * `key.ack` handler uses (two acks per key).
   */
  async ack(caller: Caller, ids: readonly number[]): Promise<{ acknowledged: number }> {
    return this.#ctx.store.batch((tx) => this.#ackWrite(tx, caller, ids));
  }

  async #ackWrite(
    tx: AsyncStoreTx,
    caller: Caller,
    ids: readonly number[],
  ): Promise<{ acknowledged: number }> {
    await assertCallerCurrent(tx, caller.serialHex, this.#ctx.now());
    return { acknowledged: await tx.deleteDeliveries(caller.name, ids) };
  }

  /**
   * Another node queued a notice (a DELIVERY_CHANNEL payload): push it to the recipient's sessions on
   * this node, read from the store. That node pushed it to its own sessions; this node's are reached
   * only here, so each session gets it once. Pushes are sent one at a time, in the order announced; the
   * reads behind them start at once (a few at a time): a notice announced while the previous one is
   * still being read no longer waits for that read's round trips before its own begin.
   */
  pushAnnounced(payload: string): Promise<void> {
    const ctx = this.#ctx;
    const a = decodeAnnouncement(payload);
    // Ours (already pushed after the commit), or nobody to push to here: not even a read.
    if (a === undefined || a.node === ctx.node || !ctx.hasLiveSession(a.recipient)) return this.#announced;
    const read = this.#read(async () => {
      const delivery = await ctx.store.getDelivery(a.recipient, a.id);
      // Acknowledged already (through another node), or replaced by a newer notice about its key.
      if (delivery === undefined) return undefined;
      // The KEK ring is opened once per process: after that, no look at the key's mode first.
      if (delivery.kind === 'key.delivered' && ctx.kekReady() === undefined)
        await ctx.kekIfKdcKeys([delivery.keySerial]);
      return buildPush(delivery, ctx.store, () => ctx.kekReady());
    });
    // Unhandled until the chain below reaches it: a rejection is handled there.
    read.catch(() => undefined);
    this.#announced = this.#announced.then(async () => {
      const push = await read;
      if (push !== undefined) await ctx.pushAll([push]);
    });
    // A failed read leaves the notice to the queue (key.sync at the next connect); later ones still go.
    this.#announced = this.#announced.catch(() => undefined);
    return this.#announced;
  }

  /** Run `fn` once fewer than ANNOUNCED_READS reads are in flight (FIFO). */
  async #read<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#reading >= ANNOUNCED_READS) await new Promise<void>((r) => this.#readWaiters.push(r));
    else this.#reading += 1;
    try {
      return await fn();
    } finally {
      const next = this.#readWaiters.shift();
      if (next !== undefined) next();
      else this.#reading -= 1;
    }
  }

  /**
   * Announcements may have been missed (the store's listening connection was lost): push the backlog of
   * every identity with a session on this node. Notices pushed before are pushed again; clients take a
   * notice twice as once (docs/keys.md "Requirements": at-least-once).
   */
  async pushBacklogs(names: Iterable<string>): Promise<void> {
    const ctx = this.#ctx;
    for (const name of names) {
      if (!ctx.hasLiveSession(name)) continue;
      const rows = await ctx.store.listDeliveries(name, ctx.syncBatch);
      if (rows.some((r) => r.kind === 'key.delivered')) await ctx.kekIfKdcKeys(rows.map((r) => r.keySerial));
      await ctx.pushAll(rows);
    }
  }
}
