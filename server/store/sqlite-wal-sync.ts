// The WAL-sync engine of the SQLite store (sqlite-store.ts): fsyncs the WAL after the group commit's
// unsynced commits, on a dedicated thread (wal-sync-thread.ts), and fails closed when a sync fails.
//
// Durability contract: every commit is durable when the call that made it returns, as
// before, with ONE exception that only the group commit uses: `transactionUnsynced(fn)` commits with
// synchronous=NORMAL for that one commit and `syncCommitted(cb)` then fsyncs the WAL on a dedicated
// thread (wal-sync-thread.ts); the group commit settles its callers only in that callback
// (server/store/group-commit.ts).
// Why this is the same durability, from sqlite.org/pragma.html#pragma_synchronous and wal.html:
// - "In WAL mode when synchronous is NORMAL (1), the WAL file is synchronized before each checkpoint
//   and the database file is synchronized after each completed checkpoint and the WAL file header is
//   synchronized when a WAL file begins to be reused after a checkpoint, but no sync operations occur
//   during most transactions." FULL differs only by syncing the WAL after the commit's frames; the
//   fsync of the same WAL file we do afterwards is that sync (fsync covers the file, whichever fd
//   wrote it). Consistency never depends on it ("WAL mode is always consistent with
//   synchronous=NORMAL"): a power loss before our fsync loses the unsynced commits, nothing else.
// - "Transactions are durable across application crashes regardless of the synchronous setting": a
//   SIGKILL between the commit and the fsync loses nothing (the frames are in the OS page cache).
// - The WAL is append-only and its frame checksums are cumulative, so recovery keeps a PREFIX of the
//   commits: a later commit (a revocation at FULL, or the next batch) can never survive while an
//   earlier unsynced one is lost; whatever depends durably on unsynced data is synced with it.
// Every other path (Store.transaction, single-statement writes outside a transaction, migrations, other
// processes) keeps synchronous=FULL, i.e. SQLite's own sync inside COMMIT, byte for byte as before: the
// connection is switched to NORMAL only around the group commit's one transaction and back to FULL in
// a finally (a failure to switch back closes the store). This is deliberately narrower than switching
// the whole connection to NORMAL and fsyncing after every `transaction()`: that would also need a sync
// after every autocommit write (setSetting, prekeys, deliveries, ...), one forgotten path being a
// silent loss of durability.
// A failed WAL fsync fails closed for good (until the store is reopened): the batch it covered is
// rejected, and the connection becomes read-only (PRAGMA query_only) so no later commit, at NORMAL or
// FULL, is acknowledged. A later successful fsync would prove nothing: Linux may drop the dirty pages
// of a failed writeback and report success afterwards, and every later commit is appended after the
// frames that may be lost (recovery would then stop before them). SQLite at FULL is immune because
// a commit whose sync failed is not committed; here it already is (visible, maybe not durable), so the
// callers it covered get store_error with details.stage 'sync' and an unknown outcome, like a
// connection lost during a commit. Reopening (restarting the KDC) runs SQLite's WAL recovery, which
// keeps exactly the commits that reached the disk intact.
// Reads of committed but not yet synced rows (the next request, another process) are possible; only a
// power loss/OS crash in the few milliseconds before the fsync makes them disappear, and then (prefix
// property above) nothing durable refers to them and their writer was never told they succeeded. What
// a reader may have seen: a certificate row in a listing (its subject never received it), a consumed
// token (a retry fails with token_invalid: fail closed), a key row a peer fetched (the KDC then no
// longer knows the key: its verify fails, fail closed).
import type Database from 'better-sqlite3';
import { closeSync, fstatSync, fsyncSync, openSync, statSync } from 'node:fs';
import { EnvironmentError, type KdsError } from '../../shared/errors.js';
import { fsyncOnSyncThread } from './wal-sync-thread.js';

/** How the WAL file is synced: fsync(2) on the WAL sync thread by default; tests inject failures and counts. */
export type WalSync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void;

export class WalSyncEngine {
  readonly #db: Database.Database;
  /** The database file; the WAL is `${location}-wal`. */
  readonly #location: string;
  readonly #walPath: string;
  readonly #fsync: WalSync;
  /** The file sync fsyncs: the WAL (the database file if the WAL does not exist). */
  #syncFile: { path: string; fd: number; ino: number } | undefined;
  #syncsInFlight = 0;
  /** Descriptors replaced while a sync used them: closed when no sync is in flight. */
  readonly #retiredFds: number[] = [];
  /** Commits made by transactionUnsynced, and how many of them a completed sync covers. */
  #unsyncedCommits = 0;
  #syncedCommits = 0;
  /** Set by the first failed WAL sync: the store is read-only from then on (see the header). */
  #syncFailure: KdsError | undefined;

  constructor(db: Database.Database, location: string, fsync: WalSync = fsyncOnSyncThread) {
    this.#db = db;
    this.#location = location;
    this.#walPath = `${location}-wal`;
    this.#fsync = fsync;
  }

  /** The first failed sync's error: the store is read-only from then on (see the header). */
  get failure(): KdsError | undefined {
    return this.#syncFailure;
  }

  /** A commit of transactionUnsynced: the next sync (or close) covers it. */
  noteUnsyncedCommit(): void {
    this.#unsyncedCommits += 1;
  }

  /** Syncs every unsynced commit made so far; cb(null) once they are durable, cb(store_error) if not. */
  sync(cb: (err: Error | null) => void): void {
    if (this.#syncFailure !== undefined) {
      process.nextTick(cb, this.#syncFailure);
      return;
    }
    const covers = this.#unsyncedCommits;
    let fd: number;
    try {
      fd = this.#syncTarget();
    } catch (err) {
      process.nextTick(cb, this.#failSync(err));
      return;
    }
    this.#syncsInFlight += 1;
    this.#fsync(fd, (err) => {
      this.#syncsInFlight -= 1;
      if (this.#syncsInFlight === 0) this.#closeRetiredFds();
      if (err !== null) {
        cb(this.#failSync(err));
        return;
      }
      if (this.#syncFailure !== undefined) {
        // An earlier sync failed while this one was in flight: its success proves nothing (header).
        cb(this.#syncFailure);
        return;
      }
      this.#syncedCommits = Math.max(this.#syncedCommits, covers);
      cb(null);
    });
  }

  /**
   * The descriptor to fsync: the WAL as it is NOW (SQLite deletes it when the last connection closes
   * and creates a new one later; a checkpoint that completed before it was deleted synced the
   * database file, so the commits it held are durable there); the database file when there is no WAL.
   */
  #syncTarget(): number {
    for (const path of [this.#walPath, this.#location]) {
      let ino: number;
      try {
        ino = statSync(path).ino;
      } catch (err) {
        if (path === this.#walPath && (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      const cur = this.#syncFile;
      if (cur !== undefined && cur.path === path && cur.ino === ino) return cur.fd;
      this.#retireSyncFile();
      const fd = openSync(path, 'r');
      // Replaced between the stat and the open? Remember the inode of what was opened.
      this.#syncFile = { path, fd, ino: fstatSync(fd).ino };
      return fd;
    }
    throw new EnvironmentError('store_error', `cannot find the store file ${this.#location}`);
  }

  #retireSyncFile(): void {
    if (this.#syncFile === undefined) return;
    this.#retiredFds.push(this.#syncFile.fd);
    this.#syncFile = undefined;
    if (this.#syncsInFlight === 0) this.#closeRetiredFds();
  }

  #closeRetiredFds(): void {
    for (const fd of this.#retiredFds.splice(0)) {
      try {
        closeSync(fd);
      } catch {
        // already closed: nothing to release
      }
    }
  }

  #failSync(err: unknown): KdsError {
    if (this.#syncFailure === undefined) {
      const errno = (err as NodeJS.ErrnoException | undefined)?.code;
      this.#syncFailure = new EnvironmentError(
        'store_error',
        'store sync failed: recent commits may not be durable; the store is read-only until reopened',
        { stage: 'sync', ...(typeof errno === 'string' ? { errno } : {}) },
        { cause: err },
      );
      // Every later write on this connection fails (SQLITE_READONLY -> store_error): see the header.
      try {
        this.#db.exec('PRAGMA query_only = ON');
      } catch {
        // transaction() and syncCommitted() refuse on syncFailure anyway
      }
    }
    return this.#syncFailure;
  }

  /**
   * The store is closing: commits of transactionUnsynced not yet covered by a completed sync (one may
   * be in flight) are synced here, synchronously, so nothing committed is left unsynced by closing. A
   * failure is recorded for the sync callers still waiting.
   */
  close(): void {
    if (this.#syncFailure === undefined && this.#syncedCommits < this.#unsyncedCommits) {
      try {
        fsyncSync(this.#syncTarget());
        this.#syncedCommits = this.#unsyncedCommits;
      } catch (err) {
        this.#failSync(err);
      }
    }
    // A sync still in flight on the sync thread keeps its descriptor until its callback.
    this.#retireSyncFile();
  }
}
