// Group commit for the store: short write transactions submitted by concurrent async operations (many
// enrollments at once) are run together in ONE store transaction, each in its own savepoint, and each
// caller's promise settles only after that transaction is DURABLE. A burst of N issuances pays one WAL
// sync instead of N; bench/issue.ts measured the per-commit fsync (5-10 ms on the benchmark machines)
// as the largest part of an issuance.
//
// The sync is off the event loop. A batch commits with `store.transactionUnsynced`
// (synchronous=NORMAL for that one commit: the frames are written to the WAL, not yet synced), then
// `store.syncCommitted` fsyncs the WAL on a dedicated thread, and the batch's promises settle only
// in that callback, so the promises of a batch never settle before a sync that STARTED after its
// COMMIT. One sync at a time: requests arriving during it queue up (the event loop keeps serving the
// network and the signing meanwhile) and are committed as the next batch when it completes. Committing
// them at once instead (pipelining: commit while the previous sync runs, wait for the next one) gives
// the same latency but batches 2-3x smaller (7 vs 14-19 certificates per commit measured in-process
// under 32 concurrent enrollments), i.e. more WAL pages written and synced per certificate: slower
// where the CPU is the limit. Why NORMAL plus that fsync is the durability FULL gives, and what a
// failed sync does (the whole covered batch is rejected with store_error, details.stage 'sync', and
// the store accepts no write until reopened): server/store/sqlite-store.ts's header.
//
// Isolation per caller is kept by the savepoints: a function that throws rolls back only its own
// writes and rejects only its own promise (with its own error, at once: nothing of it was written).
// Every function runs under the one write lock, in submission order, so the re-checks each makes are
// as true as in a transaction of its own.
import { performance } from 'node:perf_hooks';
import type { Store } from './store.js';

interface Pending {
  fn: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** A committed batch waiting for its sync: settle(null) resolves it, settle(err) rejects it. */
type Settle = (err: Error | null) => void;

export class GroupCommit {
  readonly #store: Store;
  #queue: Pending[] = [];
  #scheduled = false;
  /** Committed batches no sync in flight covers yet (their commits came after it started). */
  #unsynced: Settle[] = [];
  #syncing = false;
  /** Told of each durable batch: its committed callers and the time from BEGIN to the end of its sync. */
  #observer: ((callers: number, durationMs: number) => void) | undefined;

  constructor(store: Store) {
    this.#store = store;
  }

  /** Report each durable batch (the KDC's store.commit event; one observer, the last one set). */
  observe(observer: ((callers: number, durationMs: number) => void) | undefined): void {
    this.#observer = observer;
  }

  /** Run `fn` (synchronous, like Store.transaction) in the next group transaction. */
  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /**
   * Flush at the next turn of the loop, unless a sync is in flight: then the queue waits for it and
   * is flushed from its callback. Requests keep joining the queue during the sync (the event loop runs),
   * so batches stay as large as when the sync blocked the loop.
   */
  #schedule(): void {
    if (this.#scheduled || this.#syncing || this.#queue.length === 0) return;
    this.#scheduled = true;
    // setImmediate: after the I/O callbacks of this loop turn, so requests that arrived together join.
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#syncing) return; // the sync's callback schedules the next flush
    const batch = this.#queue;
    this.#queue = [];
    const began = this.#observer === undefined ? 0 : performance.now();
    const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
    try {
      this.#store.transactionUnsynced(() => {
        for (const item of batch) {
          try {
            // A nested store transaction is a savepoint: a throw rolls back this item only.
            outcomes.push({ ok: true, value: this.#store.transaction(item.fn) });
          } catch (err) {
            outcomes.push({ ok: false, err });
          }
        }
      });
    } catch (err) {
      // BEGIN or COMMIT failed (e.g. the lock could not be had): nothing of the batch was committed.
      for (const item of batch) item.reject(err);
      return;
    }
    batch.forEach((item, i) => {
      const o = outcomes[i]!;
      if (!o.ok) item.reject(o.err);
    });
    // Every item rolled back: the commit wrote nothing, so there is nothing to wait for.
    if (outcomes.every((o) => !o.ok)) return;
    this.#unsynced.push((syncErr) => {
      if (syncErr === null && this.#observer !== undefined && began !== 0) {
        this.#observer(outcomes.filter((o) => o.ok).length, performance.now() - began);
      }
      batch.forEach((item, i) => {
        const o = outcomes[i]!;
        if (!o.ok) return;
        if (syncErr === null) item.resolve(o.value);
        else item.reject(syncErr);
      });
    });
    this.#startSync();
  }

  /** Start a sync for every batch committed so far (one at a time: its callback flushes the next). */
  #startSync(): void {
    if (this.#syncing || this.#unsynced.length === 0) return;
    const covered = this.#unsynced;
    this.#unsynced = [];
    this.#syncing = true;
    this.#store.syncCommitted((err) => {
      this.#syncing = false;
      for (const settle of covered) settle(err);
      this.#schedule();
    });
  }
}
