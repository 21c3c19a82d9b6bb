// The asynchronous Store contract (async-store.ts) on SQLite: the synchronous SqliteStore underneath,
// each call forwarded and its result returned as an already-settled promise, so SQLite keeps its speed
// (no thread hop, no copy; bench/issue.ts and bench/keys.ts measure it against the synchronous calls).
//
// One connection, one transaction at a time: a transaction body awaits, and while it does, other
// callers' code runs on the event loop. Their calls must not land inside the open transaction, so the
// store has one lock: a transaction (or a group-commit batch) holds it from BEGIN to COMMIT, and calls
// made on the store itself meanwhile wait for it (calls made on `tx` are the transaction's). With no
// transaction open a call runs at once: the lock costs one boolean test.
// The lock is per database FILE, shared by every handle this process opens on it: a second connection
// of the same process would otherwise wait for SQLite's write lock inside a synchronous call (busy
// timeout), i.e. block the very event loop the open transaction needs to finish (a deadlock until the
// timeout). Other processes wait in SQLite as before; a transaction body must therefore only await store
// calls, never the network or a timer, or it holds every writer of the file up.
//
// The group commit (`batch`) is group-commit.ts's algorithm with awaiting bodies: queued callers run
// one after another in one transaction, each in a savepoint, the COMMIT at synchronous=NORMAL, and
// every promise settles after a WAL fsync that started after the COMMIT (sqlite-wal-sync.ts's header says
// why that is the durability of synchronous=FULL).
import { realpathSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { InternalError } from '../../shared/errors.js';
import {
  checkNotification,
  DATA_METHODS,
  type StoreListener,
  type AsyncStore,
  type AsyncStoreData,
  type AsyncStoreTx,
  type StoreData,
} from './async-store.js';
import { SqliteStore, type StoreOptions } from './sqlite-store.js';

type AnyMethod = (...args: unknown[]) => unknown;

/** Run a synchronous call and hand its outcome over as a promise (a throw becomes a rejection). */
function settled<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

class Lock {
  #held = false;
  readonly #waiters: (() => void)[] = [];

  get held(): boolean {
    return this.#held;
  }

  acquire(): Promise<void> {
    if (!this.#held) {
      this.#held = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Hand the lock to the next waiter (it stays held) or free it. */
  release(): void {
    const next = this.#waiters.shift();
    if (next !== undefined) next();
    else this.#held = false;
  }
}

/** One lock per database file for every handle of this process (see the header). */
const fileLocks = new Map<string, { lock: Lock; handles: number }>();

/**
 * Listeners per database file and channel, for every handle of this process. SQLite has no server to
 * carry a notification to another process: one SQLite file is one node (other processes on the same
 * file, such as the CLI, are seen through changeCounter()).
 */
const fileListeners = new Map<string, Map<string, Set<StoreListener>>>();

function deliver(file: string, notes: readonly { channel: string; payload: string }[]): void {
  if (notes.length === 0) return;
  // The listeners at COMMIT (as PostgreSQL: a LISTEN that starts later does not hear it), called after
  // the current turn: a listener never runs inside the committing caller's code.
  const channels = fileListeners.get(file);
  if (channels === undefined) return;
  const calls = notes.map((n) => ({ payload: n.payload, to: [...(channels.get(n.channel) ?? [])] }));
  setImmediate(() => {
    for (const c of calls) {
      for (const l of c.to) {
        try {
          l.onNotify(c.payload);
        } catch {
          // a listener's failure is its own; the others still hear
        }
      }
    }
  });
}

/** The view inside one transaction: forwards straight to the connection while the transaction is open. */
class SqliteTx {
  open = true;
  #depth = 0;
  /** Notifications to deliver once the transaction is committed (and durable). */
  readonly pending: { channel: string; payload: string }[] = [];
  constructor(readonly store: SqliteStore) {}

  async transaction<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T> {
    this.assertOpen();
    const name = `kds_sp${++this.#depth}`;
    const mark = this.pending.length;
    this.store.savepoint(name);
    try {
      const value = await fn(this as unknown as AsyncStoreTx);
      this.store.releaseSavepoint(name);
      return value;
    } catch (err) {
      this.store.rollbackToSavepoint(name);
      this.pending.length = mark;
      throw err;
    } finally {
      this.#depth -= 1;
    }
  }

  notify(channel: string, payload: string): Promise<void> {
    return settled(() => {
      this.assertOpen();
      checkNotification(channel, payload);
      this.pending.push({ channel, payload });
    });
  }

  assertOpen(): void {
    if (!this.open) throw new InternalError('internal', 'store transaction used after it ended');
  }
}

for (const name of DATA_METHODS) {
  Object.defineProperty(SqliteTx.prototype, name, {
    value: function (this: SqliteTx, ...args: unknown[]) {
      return settled(() => {
        this.assertOpen();
        return (this.store[name] as AnyMethod).apply(this.store, args);
      });
    },
  });
}

interface Pending {
  fn: (tx: AsyncStoreTx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

class SqliteAsyncStoreImpl {
  readonly engine = 'sqlite' as const;
  readonly location: string;
  readonly sync: SqliteStore;
  readonly #lock: Lock;
  readonly #lockKey: string;
  #queue: Pending[] = [];
  #scheduled = false;
  #syncing = false;
  #unsynced: ((err: Error | null) => void)[] = [];
  #observer: ((callers: number, durationMs: number) => void) | undefined;

  observeCommits(observer: ((callers: number, durationMs: number) => void) | undefined): void {
    this.#observer = observer;
  }

  constructor(store: SqliteStore) {
    this.sync = store;
    this.location = store.location;
    // The file's real path: two spellings of one directory are one database.
    this.#lockKey = realpathSync(store.location);
    const shared = fileLocks.get(this.#lockKey);
    if (shared === undefined) {
      this.#lock = new Lock();
      fileLocks.set(this.#lockKey, { lock: this.#lock, handles: 1 });
    } else {
      this.#lock = shared.lock;
      shared.handles += 1;
    }
  }

  /** A data method call: at once when no transaction is open, else after it. */
  call(name: keyof StoreData, args: unknown[]): Promise<unknown> {
    const method = this.sync[name] as AnyMethod;
    if (!this.#lock.held) return settled(() => method.apply(this.sync, args));
    return this.#lock.acquire().then(() => {
      try {
        return method.apply(this.sync, args);
      } finally {
        this.#lock.release();
      }
    });
  }

  schemaVersion(): Promise<number> {
    return settled(() => this.sync.schemaVersion());
  }

  changeCounter(): Promise<number> {
    return settled(() => this.sync.changeCounter());
  }

  /** No clock but this machine's: the nodes that share a SQLite file are the processes of one host. */
  databaseTime(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  onCertificateStatusChange(listener: (serialHex: string) => void): () => void {
    return this.sync.onCertificateStatusChange(listener);
  }

  async transaction<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T> {
    await this.#lock.acquire();
    const tx = new SqliteTx(this.sync);
    try {
      this.sync.begin();
      try {
        const value = await fn(tx as unknown as AsyncStoreTx);
        tx.open = false;
        this.sync.commit();
        deliver(this.#lockKey, tx.pending);
        return value;
      } catch (err) {
        tx.open = false;
        this.sync.rollback();
        throw err;
      }
    } finally {
      tx.open = false;
      this.#lock.release();
    }
  }

  batch<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#syncing || this.#queue.length === 0) return;
    this.#scheduled = true;
    // setImmediate: after the I/O callbacks of this loop turn, so requests that arrived together join.
    setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    if (this.#syncing) return;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;
    await this.#lock.acquire();
    const startedAt = performance.now();
    const tx = new SqliteTx(this.sync);
    const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
    try {
      this.sync.begin(true);
      for (const item of batch) {
        try {
          outcomes.push({ ok: true, value: await tx.transaction(item.fn) });
        } catch (err) {
          outcomes.push({ ok: false, err });
        }
      }
      tx.open = false;
      this.sync.commit();
    } catch (err) {
      // BEGIN or COMMIT failed: nothing of the batch was committed.
      tx.open = false;
      try {
        this.sync.rollback();
      } catch {
        // the connection reports the original failure below
      }
      for (const item of batch) item.reject(err);
      return;
    } finally {
      tx.open = false;
      this.#lock.release();
    }
    batch.forEach((item, i) => {
      const o = outcomes[i]!;
      if (!o.ok) item.reject(o.err);
    });
    if (outcomes.every((o) => !o.ok)) {
      this.#schedule();
      return;
    }
    this.#unsynced.push((syncErr) => {
      if (syncErr === null) {
        deliver(this.#lockKey, tx.pending);
        this.#observer?.(outcomes.filter((o) => o.ok).length, performance.now() - startedAt);
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

  #startSync(): void {
    if (this.#syncing || this.#unsynced.length === 0) return;
    const covered = this.#unsynced;
    this.#unsynced = [];
    this.#syncing = true;
    this.sync.syncCommitted((err) => {
      this.#syncing = false;
      for (const settle of covered) settle(err);
      this.#schedule();
    });
  }

  #closed = false;
  readonly #mine = new Set<{ channel: string; listener: StoreListener }>();

  listen(channel: string, listener: StoreListener): Promise<() => Promise<void>> {
    return settled(() => {
      checkNotification(channel);
      let channels = fileListeners.get(this.#lockKey);
      if (channels === undefined) fileListeners.set(this.#lockKey, (channels = new Map()));
      let set = channels.get(channel);
      if (set === undefined) channels.set(channel, (set = new Set()));
      set.add(listener);
      const entry = { channel, listener };
      this.#mine.add(entry);
      return () => {
        this.#unlisten(entry);
        return Promise.resolve();
      };
    });
  }

  #unlisten(entry: { channel: string; listener: StoreListener }): void {
    this.#mine.delete(entry);
    const channels = fileListeners.get(this.#lockKey);
    const set = channels?.get(entry.channel);
    set?.delete(entry.listener);
    if (set?.size === 0) channels!.delete(entry.channel);
    if (channels?.size === 0) fileListeners.delete(this.#lockKey);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of [...this.#mine]) this.#unlisten(entry);
    await this.#lock.acquire();
    try {
      this.sync.close();
    } finally {
      this.#lock.release();
      const shared = fileLocks.get(this.#lockKey);
      if (shared !== undefined && --shared.handles === 0) fileLocks.delete(this.#lockKey);
    }
  }
}

for (const name of DATA_METHODS) {
  Object.defineProperty(SqliteAsyncStoreImpl.prototype, name, {
    value: function (this: SqliteAsyncStoreImpl, ...args: unknown[]) {
      return this.call(name, args);
    },
  });
}

export type SqliteAsyncStore = AsyncStore & {
  /** The synchronous store underneath (callers not yet converted, tests). */
  readonly sync: SqliteStore;
};

/** The asynchronous contract over an open SqliteStore. */
export function asyncSqliteStore(store: SqliteStore): SqliteAsyncStore {
  return new SqliteAsyncStoreImpl(store) as unknown as SqliteAsyncStore & AsyncStoreData;
}

/** Open `<dataDir>/kds.sqlite` behind the asynchronous contract. */
export function openSqliteAsyncStore(dataDir: string, opts?: StoreOptions): SqliteAsyncStore {
  return asyncSqliteStore(SqliteStore.open(dataDir, opts));
}
