// Group commit for the store: short write transactions submitted by concurrent async operations (many
// enrollments at once) are run together in ONE store transaction, each in its own savepoint, and each
// caller's promise settles only after that transaction has committed. Durability is unchanged (nothing
// is reported before its commit, and synchronous = FULL still syncs the WAL at every commit), but a burst
// of N issuances pays one WAL sync instead of N; bench/issue.ts measured the per-commit fsync (5-10 ms on
// the benchmark machines, blocking the event loop) as the largest part of an issuance.
//
// Isolation per caller is kept by the savepoints: a function that throws rolls back only its own
// writes and rejects only its own promise. Every function runs under the one write lock, in submission
// order, so the re-checks each makes are as true as in a transaction of its own.
import type { Store } from './store.js';

interface Pending {
  fn: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit {
  readonly #store: Store;
  #queue: Pending[] = [];
  #scheduled = false;

  constructor(store: Store) {
    this.#store = store;
  }

  /** Run `fn` (synchronous, like Store.transaction) in the next group transaction. */
  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // setImmediate: after the I/O callbacks of this loop turn, so requests that arrived together join.
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
    try {
      this.#store.transaction(() => {
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
      if (o.ok) item.resolve(o.value);
      else item.reject(o.err);
    });
  }
}

const perStore = new WeakMap<Store, GroupCommit>();

/** The group committer of `store` (one per Store object, so every caller shares the same batches). */
export function groupCommit(store: Store): GroupCommit {
  let g = perStore.get(store);
  if (g === undefined) {
    g = new GroupCommit(store);
    perStore.set(store, g);
  }
  return g;
}
