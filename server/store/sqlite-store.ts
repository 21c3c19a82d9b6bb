// The Store on better-sqlite3: one file `<dataDir>/kds.sqlite` (0600), WAL journal so readers never block
// the writer, synchronous=FULL so a commit is on disk before it is acknowledged (in WAL mode FULL syncs
// the WAL on every commit; NORMAL would lose the last commits on power failure, and a revocation that
// was reported done must not come back), busy_timeout so concurrent processes wait instead of failing,
// foreign keys on (a revocation must name an issued certificate).
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
import { auditEntryHash, GENESIS_HASH } from '../../shared/audit/chain.js';
import Database from 'better-sqlite3';
import { closeSync, chmodSync, fstatSync, fsyncSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError, KdsError, PolicyError, InternalError } from '../../shared/errors.js';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from '../../io/fs-atomic.js';
import { migrate, userVersion } from './migrations.js';
import { fsyncOnSyncThread } from './wal-sync-thread.js';
import type {
  AuditEntry,
  AuditHeadRecord,
  AuditQuery,
  AuditRecord,
  NewAuditHead,
  CertificateFilter,
  CertificateRecord,
  CertificateStanding,
  CertificateStatus,
  RenewalInstall,
  RenewalRecord,
  CrlState,
  EnrollmentTokenRecord,
  IssuedCertificate,
  NewEnrollmentToken,
  NewRevocation,
  RevocationRecord,
  Store,
  DeliveryKind,
  DeliveryRecord,
  NewDelivery,
  NewPrekey,
  NewSymKey,
  PrekeyRecord,
  SymKeyDeposit,
  SymKeyFilter,
  SymKeyMode,
  SymKeyRecord,
  SymKeyState,
  SymKeyStateChange,
} from './store.js';

const STORE_FILE = 'kds.sqlite';
/** How long a writer waits for another process's transaction before giving up with store_error. */
const BUSY_TIMEOUT_MS = 10_000;

/** Audit details must never carry secrets: refuse keys that name one (a cheap, explicit tripwire). */
const SECRET_KEY = /^(pass(word|phrase)?|secret|token|key|private_?key(_?pem)?|key_?pem)$/i;

interface CertRow {
  id: number;
  serial: string;
  name: string;
  role: CertificateRecord['role'];
  not_before: number;
  not_after: number;
  pem: string | null;
  fingerprint: string | null;
  status: CertificateStatus;
  issued_at: number;
}

interface RenewalRow {
  serial: string;
  replaces: string;
  name: string;
  requested_at: number;
  installed_at: number | null;
}

function renewalOf(row: RenewalRow | undefined): RenewalRecord | undefined {
  return row === undefined
    ? undefined
    : {
        serialHex: row.serial,
        replaces: row.replaces,
        name: row.name,
        requestedAt: row.requested_at,
        installedAt: row.installed_at,
      };
}

interface RevocationRow {
  id: number;
  serial: string;
  revoked_at: number;
  reason: string;
}

interface TokenRow {
  id: number;
  token_hash: string;
  name: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  created_by: string;
}

/** How the WAL file is synced: fsync(2) on the WAL sync thread by default; tests inject failures and counts. */
export type WalSync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void;

export interface StoreOptions {
  walSync?: WalSync;
}

export class SqliteStore implements Store {
  readonly location: string;
  readonly #db: Database.Database;
  readonly #stmts = new Map<string, Database.Statement>();
  #closed = false;
  readonly #walPath: string;
  readonly #walSync: WalSync;
  /** The file syncCommitted fsyncs: the WAL (the database file if the WAL does not exist). */
  #syncFile: { path: string; fd: number; ino: number } | undefined;
  #syncsInFlight = 0;
  /** Descriptors replaced while a sync used them: closed when no sync is in flight. */
  readonly #retiredFds: number[] = [];
  /** Commits made by transactionUnsynced, and how many of them a completed sync covers. */
  #unsyncedCommits = 0;
  #syncedCommits = 0;
  /** Set by the first failed WAL sync: the store is read-only from then on (see the header). */
  #syncFailure: KdsError | undefined;

  private constructor(location: string, db: Database.Database, opts: StoreOptions) {
    this.location = location;
    this.#db = db;
    this.#walPath = `${location}-wal`;
    this.#walSync = opts.walSync ?? fsyncOnSyncThread;
  }

  static open(dataDir: string, opts: StoreOptions = {}): SqliteStore {
    ensurePrivateDir(dataDir);
    const file = join(dataDir, STORE_FILE);
    let db: Database.Database | undefined;
    try {
      // Create the file ourselves with 0600 before SQLite does (it would use 0644 minus the umask);
      // SQLite then gives the -wal and -shm files the same permissions as the database file.
      closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
      if ((statSync(file).mode & 0o777) !== PRIVATE_FILE_MODE) chmodSync(file, PRIVATE_FILE_MODE);
      db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      // 32 MiB page cache (default 2 MiB), used only as the database grows: the CRL row of a 100k-entry CA
      // is ~6.6 MB, and with the default cache every revocation re-read the old row's overflow pages from
      // disk to free them and spilled the new ones mid-statement (bench/revocation.ts).
      db.pragma('cache_size = -32768');
      // Statement journals in memory. Each savepoint (the group commit runs every caller in one, and
      // issuance nests another for the token) records the original of every page it first modifies in
      // the transaction's statement journal, a temporary FILE once it passes 64 KiB: a batch of 16
      // issuances (~640 KB) spilled to disk, ~20 pwrite calls and ~300-500 us of system CPU per
      // certificate (measured with strace and process.cpuUsage; 230-340 us of CPU per certificate for
      // the whole store part with this pragma, 550-830 us without). Nothing durable lives there: a
      // statement journal only undoes a statement or savepoint inside an open transaction and is
      // discarded at COMMIT; crash recovery uses the WAL (sqlite.org/tempfiles.html).
      db.pragma('temp_store = MEMORY');
      db.pragma('foreign_keys = ON');
      migrate(db);
      return new SqliteStore(file, db, opts);
    } catch (err) {
      db?.close();
      if (err instanceof KdsError) throw err;
      throw storeError(err, `cannot open the store ${file}`);
    }
  }

  schemaVersion(): number {
    return userVersion(this.#db);
  }

  transaction<T>(fn: () => T): T {
    if (this.#syncFailure !== undefined && !this.#db.inTransaction) throw this.#syncFailure;
    try {
      // .immediate(): BEGIN IMMEDIATE takes the write lock first, so the re-checks fn makes are still
      // true when it writes (a deferred transaction could not upgrade its read lock under WAL and would
      // fail with SQLITE_BUSY instead of waiting).
      return this.#db.transaction(fn).immediate();
    } catch (err) {
      if (err instanceof KdsError) throw err;
      throw storeError(err, 'store transaction failed');
    }
  }

  transactionUnsynced<T>(fn: () => T): T {
    if (this.#db.inTransaction) {
      // Inside another transaction this would be a savepoint of a commit that syncs anyway; refusing
      // keeps the NORMAL window exactly one top-level commit wide.
      throw new InternalError('internal', 'transactionUnsynced cannot be nested');
    }
    if (this.#syncFailure !== undefined) throw this.#syncFailure;
    // db.exec, not a cached statement: SQLite applies `PRAGMA synchronous = N` when the statement is
    // PREPARED (it compiles to no instructions), so re-running a prepared one would change nothing.
    this.#db.exec('PRAGMA synchronous = NORMAL');
    let committed = false;
    try {
      const value = this.transaction(fn);
      committed = true;
      return value;
    } finally {
      if (committed) this.#unsyncedCommits += 1;
      try {
        this.#db.exec('PRAGMA synchronous = FULL');
      } catch (err) {
        // Never leave the connection at NORMAL for the ordinary paths: close it (fail closed).
        this.close();
        // eslint-disable-next-line no-unsafe-finally
        throw storeError(err, 'cannot restore synchronous = FULL; the store was closed');
      }
    }
  }

  // Explicit transaction control for the asynchronous contract (sqlite-async-store.ts): its transaction
  // bodies await, so they cannot run inside better-sqlite3's synchronous db.transaction(fn). The caller
  // guarantees that nothing else uses this connection between begin and commit/rollback (one lock per
  // store object), and better-sqlite3's own db.transaction() nests as savepoints inside (insertPrekeys).

  /** BEGIN IMMEDIATE; `unsynced` is transactionUnsynced's commit (synchronous=NORMAL for this one). */
  begin(unsynced = false): void {
    if (this.#db.inTransaction) throw new InternalError('internal', 'a transaction is already open');
    if (this.#syncFailure !== undefined) throw this.#syncFailure;
    if (unsynced) this.#db.exec('PRAGMA synchronous = NORMAL');
    this.#openUnsynced = unsynced;
    try {
      this.#db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      this.#restoreFull();
      throw storeError(err, 'store transaction failed');
    }
  }

  commit(): void {
    try {
      this.#db.exec('COMMIT');
      if (this.#openUnsynced) this.#unsyncedCommits += 1;
    } catch (err) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      throw storeError(err, 'store transaction failed');
    } finally {
      this.#restoreFull();
    }
  }

  rollback(): void {
    try {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
    } finally {
      this.#restoreFull();
    }
  }

  /** SAVEPOINT / RELEASE / ROLLBACK TO + RELEASE, by name (the caller nests them properly). */
  savepoint(name: string): void {
    this.#db.exec(`SAVEPOINT ${name}`);
  }

  releaseSavepoint(name: string): void {
    this.#db.exec(`RELEASE ${name}`);
  }

  rollbackToSavepoint(name: string): void {
    // A failed statement may already have ended the transaction (SQLITE_FULL...): nothing to undo then.
    if (!this.#db.inTransaction) return;
    this.#db.exec(`ROLLBACK TO ${name}`);
    this.#db.exec(`RELEASE ${name}`);
  }

  get inTransaction(): boolean {
    return this.#db.inTransaction;
  }

  #openUnsynced = false;

  #restoreFull(): void {
    if (!this.#openUnsynced) return;
    this.#openUnsynced = false;
    try {
      this.#db.exec('PRAGMA synchronous = FULL');
    } catch (err) {
      // Never leave the connection at NORMAL for the ordinary paths: close it (fail closed).
      this.close();
      throw storeError(err, 'cannot restore synchronous = FULL; the store was closed');
    }
  }

  syncCommitted(cb: (err: Error | null) => void): void {
    if (this.#syncFailure !== undefined) {
      process.nextTick(cb, this.#syncFailure);
      return;
    }
    if (this.#closed) {
      // close() synced whatever was unsynced (or recorded why it could not).
      process.nextTick(cb, null);
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
    this.#walSync(fd, (err) => {
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
    for (const path of [this.#walPath, this.location]) {
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
    throw new EnvironmentError('store_error', `cannot find the store file ${this.location}`);
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

  /** PRAGMA synchronous of this connection (2 = FULL, 1 = NORMAL): tests check it is FULL between batches. */
  synchronousLevel(): number {
    return this.#db.pragma('synchronous', { simple: true }) as number;
  }

  /** Where SQLite keeps temporary tables and savepoint journals (PRAGMA temp_store; 2 = MEMORY). */
  tempStoreLevel(): number {
    return this.#db.pragma('temp_store', { simple: true }) as number;
  }

  changeCounter(): number {
    // "The integer values returned by two invocations of PRAGMA data_version from the same connection
    // will be different if changes were committed to the database by any other connection in the
    // interim." (sqlite.org/pragma.html#pragma_data_version)
    // A cached prepared statement: db.pragma() compiles the statement on every call (~18 us vs ~8 us),
    // and the KDC asks on every handshake (revocation lookups keep their cache fresh with it).
    return this.#get<{ data_version: number }>('PRAGMA data_version')!.data_version;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Commits of transactionUnsynced not yet covered by a completed sync (one may be in flight): sync
    // them here, synchronously, so nothing committed is left unsynced by closing. A failure is
    // recorded for the syncCommitted callers still waiting.
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
    this.#stmts.clear();
    this.#db.close();
  }

  // settings

  getSetting<T>(key: string): T | undefined {
    const row = this.#get<{ value: string }>('SELECT value FROM settings WHERE key = ?', key);
    return row === undefined ? undefined : (JSON.parse(row.value) as T);
  }

  setSetting(key: string, value: unknown): void {
    this.#run(
      'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      key,
      JSON.stringify(value),
    );
  }

  // certificates

  insertIssuedCertificate(c: IssuedCertificate): void {
    try {
      this.#statement(
        `INSERT INTO certificates (serial, name, role, not_before, not_after, pem, fingerprint, status, issued_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?)`,
      ).run(c.serialHex, c.name, c.role, c.notBefore, c.notAfter, c.pem, c.fingerprint256, c.issuedAt);
    } catch (err) {
      // certificates_one_active_per_name (a partial UNIQUE index on name) reports "certificates.name".
      if (isConstraint(err, 'certificates.name')) {
        throw new PolicyError('already_active', 'this name already has an active certificate (use renew)');
      }
      throw storeError(err, 'cannot store the certificate');
    }
  }

  setCertificateStatus(serialHex: string, status: 'revoked' | 'superseded'): void {
    const changes = this.#run(
      `UPDATE certificates SET status = ? WHERE serial = ? AND status <> 'pending'`,
      status,
      serialHex,
    );
    if (changes !== 1) throw new EnvironmentError('store_error', `no issued certificate ${serialHex}`);
    for (const listener of this.#statusListeners) listener(serialHex);
  }

  readonly #statusListeners = new Set<(serialHex: string) => void>();

  onCertificateStatusChange(listener: (serialHex: string) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  getCertificate(serialHex: string): CertificateRecord | undefined {
    return certOf(this.#get<CertRow>('SELECT * FROM certificates WHERE serial = ?', serialHex));
  }

  getCertificateStanding(serialHex: string): CertificateStanding | undefined {
    const row = this.#get<{ status: CertificateStatus; not_before: number; not_after: number }>(
      'SELECT status, not_before, not_after FROM certificates WHERE serial = ?',
      serialHex,
    );
    return row === undefined
      ? undefined
      : { status: row.status, notBefore: row.not_before, notAfter: row.not_after };
  }

  getCertificateByFingerprint(fingerprint256: string): CertificateRecord | undefined {
    return certOf(this.#get<CertRow>('SELECT * FROM certificates WHERE fingerprint = ?', fingerprint256));
  }

  activeCertificate(name: string): CertificateRecord | undefined {
    return certOf(
      this.#get<CertRow>(`SELECT * FROM certificates WHERE name = ? AND status = 'active'`, name),
    );
  }

  latestCertificate(name: string): CertificateRecord | undefined {
    return certOf(
      this.#get<CertRow>(
        `SELECT * FROM certificates WHERE name = ? AND status <> 'pending' ORDER BY id DESC LIMIT 1`,
        name,
      ),
    );
  }

  listCertificates(filter: CertificateFilter = {}): CertificateRecord[] {
    const rows = this.#all<CertRow>(
      `SELECT * FROM certificates
       WHERE (@name IS NULL OR name = @name) AND (@status IS NULL OR status = @status)
         AND (@role IS NULL OR role = @role)
       ORDER BY id`,
      { name: filter.name ?? null, status: filter.status ?? null, role: filter.role ?? null },
    );
    return rows.map((r) => certOf(r)!);
  }

  insertRenewal(c: IssuedCertificate, replaces: string, requestedAt: number): void {
    try {
      this.#statement(
        `INSERT INTO certificates (serial, name, role, not_before, not_after, pem, fingerprint, status, issued_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)`,
      ).run(c.serialHex, c.name, c.role, c.notBefore, c.notAfter, c.pem, c.fingerprint256, c.issuedAt);
      this.#statement('INSERT INTO renewals (serial, replaces, name, requested_at) VALUES (?, ?, ?, ?)').run(
        c.serialHex,
        replaces,
        c.name,
        requestedAt,
      );
    } catch (err) {
      throw storeError(err, 'cannot store the renewal');
    }
  }

  getRenewal(serialHex: string): RenewalRecord | undefined {
    return renewalOf(this.#get<RenewalRow>('SELECT * FROM renewals WHERE serial = ?', serialHex));
  }

  latestRenewalOf(serialHex: string): RenewalRecord | undefined {
    return renewalOf(
      this.#get<RenewalRow>(
        'SELECT * FROM renewals WHERE replaces = ? ORDER BY requested_at DESC, rowid DESC LIMIT 1',
        serialHex,
      ),
    );
  }

  countRenewalsSince(name: string, since: number): number {
    return this.#get<{ n: number }>(
      'SELECT count(*) AS n FROM renewals WHERE name = ? AND requested_at >= ?',
      name,
      since,
    )!.n;
  }

  installRenewal(serialHex: string, at: number): RenewalInstall {
    const renewal = this.getRenewal(serialHex);
    if (renewal === undefined || renewal.installedAt !== null) {
      throw new EnvironmentError('store_error', `no renewal ${serialHex} waiting to be installed`);
    }
    // The old one first: the partial unique index allows one active certificate per name.
    this.setCertificateStatus(renewal.replaces, 'superseded');
    if (
      this.#run(
        `UPDATE certificates SET status = 'active' WHERE serial = ? AND status = 'pending'`,
        serialHex,
      ) !== 1
    ) {
      throw new EnvironmentError('store_error', `renewal ${serialHex} is not pending`);
    }
    this.#run('UPDATE renewals SET installed_at = ? WHERE serial = ?', at, serialHex);
    const abandoned = this.#all<{ serial: string }>(
      `SELECT r.serial FROM renewals r JOIN certificates c ON c.serial = r.serial
       WHERE r.replaces = ? AND r.installed_at IS NULL AND c.status = 'pending'`,
      renewal.replaces,
    ).map((r) => r.serial);
    for (const serial of abandoned) {
      this.#run(
        `UPDATE certificates SET status = 'superseded' WHERE serial = ? AND status = 'pending'`,
        serial,
      );
    }
    for (const serial of [serialHex, ...abandoned])
      for (const listener of this.#statusListeners) listener(serial);
    return { superseded: renewal.replaces, abandoned };
  }

  countCertificates(): number {
    return this.#get<{ n: number }>('SELECT count(*) AS n FROM certificates')!.n;
  }

  // revocations

  insertRevocation(r: NewRevocation): RevocationRecord {
    const id = this.#insert(
      'INSERT INTO revocations (serial, revoked_at, reason) VALUES (?, ?, ?)',
      r.serialHex,
      r.revokedAt,
      r.reason,
    );
    return { id, serialHex: r.serialHex, revokedAt: r.revokedAt, reason: r.reason };
  }

  getRevocation(serialHex: string): RevocationRecord | undefined {
    return revocationOf(this.#get<RevocationRow>('SELECT * FROM revocations WHERE serial = ?', serialHex));
  }

  listRevocations(afterId = 0): RevocationRecord[] {
    return this.#all<RevocationRow>('SELECT * FROM revocations WHERE id > ? ORDER BY id', afterId).map(
      (r) => revocationOf(r)!,
    );
  }

  countRevocations(): number {
    return this.#get<{ n: number }>('SELECT count(*) AS n FROM revocations')!.n;
  }

  lastRevocationId(): number {
    return this.#get<{ id: number | null }>('SELECT max(id) AS id FROM revocations')!.id ?? 0;
  }

  // CRL

  getCrlState(): CrlState | undefined {
    const row = this.#get<{
      crl_number: number;
      pem: string;
      this_update: number;
      next_update: number;
      last_revocation_id: number;
    }>('SELECT * FROM crl_state WHERE id = 1');
    return row === undefined
      ? undefined
      : {
          crlNumber: row.crl_number,
          pem: row.pem,
          thisUpdate: row.this_update,
          nextUpdate: row.next_update,
          lastRevocationId: row.last_revocation_id,
        };
  }

  saveCrlState(s: CrlState): void {
    this.#run(
      `INSERT INTO crl_state (id, crl_number, pem, this_update, next_update, last_revocation_id)
       VALUES (1, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET crl_number = excluded.crl_number, pem = excluded.pem,
         this_update = excluded.this_update, next_update = excluded.next_update,
         last_revocation_id = excluded.last_revocation_id`,
      s.crlNumber,
      s.pem,
      s.thisUpdate,
      s.nextUpdate,
      s.lastRevocationId,
    );
  }

  // enrollment tokens

  insertEnrollmentToken(t: NewEnrollmentToken): void {
    this.#run(
      `INSERT INTO enrollment_tokens (token_hash, name, created_at, expires_at, used_at, created_by)
       VALUES (?, ?, ?, ?, NULL, ?)`,
      t.tokenHash,
      t.name,
      t.createdAt,
      t.expiresAt,
      t.createdBy,
    );
  }

  consumeEnrollmentToken(tokenHash: string, name: string, now: number): EnrollmentTokenRecord | undefined {
    // One statement: SQLite executes it under the write lock, so "unused" is checked and set atomically.
    const row = this.#get<TokenRow>(
      `UPDATE enrollment_tokens SET used_at = @now
       WHERE token_hash = @tokenHash AND name = @name AND used_at IS NULL AND expires_at > @now
       RETURNING *`,
      { now, tokenHash, name },
    );
    return tokenOf(row);
  }

  getEnrollmentToken(tokenHash: string): EnrollmentTokenRecord | undefined {
    return tokenOf(this.#get<TokenRow>('SELECT * FROM enrollment_tokens WHERE token_hash = ?', tokenHash));
  }

  listEnrollmentTokens(): EnrollmentTokenRecord[] {
    return this.#all<TokenRow>('SELECT * FROM enrollment_tokens ORDER BY id').map((r) => tokenOf(r)!);
  }

  // audit log

  appendAudit(e: AuditEntry): number {
    const detail = e.detail ?? {};
    for (const key of Object.keys(detail)) {
      if (SECRET_KEY.test(key)) throw new Error(`audit detail key "${key}" looks like a secret`);
    }
    // Round-tripped through JSON so that the hash covers exactly what a reader parses back.
    const detailText = JSON.stringify(detail);
    return this.transaction(() => {
      const tail = this.auditTail();
      // AUTOINCREMENT's counter, not max(id) + 1: the id is part of the hash and must be the one the
      // INSERT gets, and an id once used is never given again.
      const seq =
        this.#get<{ seq: number }>(`SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'`)?.seq ?? 0;
      const id = Math.max(seq, tail?.id ?? 0) + 1;
      const prevHash = tail === undefined ? GENESIS_HASH : (tail.hash ?? GENESIS_HASH);
      const hash = auditEntryHash(prevHash, {
        id,
        at: e.at,
        actor: e.actor,
        action: e.action,
        subject: e.subject ?? null,
        detail: JSON.parse(detailText) as Record<string, unknown>,
      });
      return this.#insert(
        'INSERT INTO audit_log (id, at, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        id,
        e.at,
        e.actor,
        e.action,
        e.subject ?? null,
        detailText,
        prevHash,
        hash,
      );
    });
  }

  auditTail(): { id: number; hash: string | null } | undefined {
    return this.#get<{ id: number; hash: string | null }>(
      'SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1',
    );
  }

  listAudit(opts: AuditQuery = {}): AuditRecord[] {
    const rows = this.#all<{
      id: number;
      at: number;
      actor: string;
      action: string;
      subject: string | null;
      detail: string;
      prev_hash: string | null;
      hash: string | null;
    }>(
      `SELECT * FROM audit_log WHERE id > @afterId AND (@action IS NULL OR action = @action)
         AND (@since IS NULL OR at >= @since)
       ORDER BY id LIMIT @limit`,
      {
        afterId: opts.afterId ?? 0,
        action: opts.action ?? null,
        since: opts.since ?? null,
        limit: opts.limit ?? -1,
      },
    );
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      actor: r.actor,
      action: r.action,
      subject: r.subject,
      detail: JSON.parse(r.detail) as Record<string, unknown>,
      prevHash: r.prev_hash,
      hash: r.hash,
    }));
  }

  appendAuditHead(head: NewAuditHead): number {
    return this.#insert(
      'INSERT INTO audit_heads (entry_id, hash, signed_at, cert_serial, signature) VALUES (?, ?, ?, ?, ?)',
      head.entryId,
      head.hash,
      head.signedAt,
      head.certSerial,
      head.signature,
    );
  }

  listAuditHeads(): AuditHeadRecord[] {
    return this.#all<{
      id: number;
      entry_id: number;
      hash: string;
      signed_at: number;
      cert_serial: string;
      signature: Buffer;
    }>('SELECT * FROM audit_heads ORDER BY id').map((r) => ({
      id: r.id,
      entryId: r.entry_id,
      hash: r.hash,
      signedAt: r.signed_at,
      certSerial: r.cert_serial,
      signature: r.signature,
    }));
  }

  countAudit(): number {
    return this.#get<{ n: number }>('SELECT count(*) AS n FROM audit_log')!.n;
  }

  // symmetric keys, prekeys and pending deliveries (docs/keys.md)

  insertSymKey(k: NewSymKey): void {
    this.#run(
      `INSERT INTO sym_keys (serial, mode, owner, owner_cert, peer, peer_cert, created_at, expires_at, state,
         replaces, digest, prekey_id, prekey_public, wrapped_key, kek_version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      k.serial,
      k.mode,
      k.owner,
      k.ownerCert,
      k.peer,
      k.peerCert,
      k.createdAt,
      k.expiresAt,
      k.state,
      k.replaces ?? null,
      k.digest ?? null,
      k.prekeyId ?? null,
      k.prekeyPublic ?? null,
      k.wrappedKey ?? null,
      k.kekVersion ?? null,
    );
  }

  getSymKey(serial: string): SymKeyRecord | undefined {
    return symKeyOf(this.#get<SymKeyRow>('SELECT * FROM sym_keys WHERE serial = ?', serial));
  }

  activateSymKey(serial: string, d: SymKeyDeposit): boolean {
    return (
      this.#run(
        `UPDATE sym_keys SET state = 'active', ephemeral = ?, sender_signature = ?, ciphertext = ?, digest = ?
         WHERE serial = ? AND state = 'reserved'`,
        d.ephemeral,
        d.senderSignature,
        d.ciphertext,
        d.digest,
        serial,
      ) === 1
    );
  }

  setSymKeyState(
    serial: string,
    from: readonly SymKeyState[],
    to: SymKeyState,
    c: SymKeyStateChange,
  ): boolean {
    if (from.length === 0) return false;
    const placeholders = from.map(() => '?').join(', ');
    return (
      this.#run(
        `UPDATE sym_keys SET state = ?, state_changed_at = ?, revoked_reason = ?, revoked_by = ?, superseded_by = ?
         WHERE serial = ? AND state IN (${placeholders})`,
        to,
        c.at,
        c.reason ?? null,
        c.by ?? null,
        c.supersededBy ?? null,
        serial,
        ...from,
      ) === 1
    );
  }

  markSymKeyPeerVerified(serial: string, at: number): void {
    this.#run(
      'UPDATE sym_keys SET peer_verified_at = coalesce(peer_verified_at, ?) WHERE serial = ?',
      at,
      serial,
    );
  }

  listSymKeys(filter: SymKeyFilter = {}): SymKeyRecord[] {
    const states = filter.states ?? null;
    const rows = this.#all<SymKeyRow>(
      `SELECT * FROM sym_keys
       WHERE (? IS NULL OR owner = ? OR peer = ?)
         AND (? IS NULL OR state IN (SELECT value FROM json_each(?)))
         AND (? = 1 OR state <> 'reserved')
       ORDER BY created_at, rowid`,
      ...repeat(filter.party ?? null, 3),
      ...repeat(states === null ? null : JSON.stringify(states), 2),
      filter.includeReserved === true ? 1 : 0,
    );
    return rows.map((r) => symKeyOf(r)!);
  }

  expireSymKeys(now: number): SymKeyRecord[] {
    return this.#all<SymKeyRow>(
      `UPDATE sym_keys SET state = 'expired', state_changed_at = ?
       WHERE state = 'active' AND expires_at <= ? RETURNING *`,
      now,
      now,
    ).map((r) => symKeyOf(r)!);
  }

  deleteStaleReservations(before: number): number {
    return this.#run(`DELETE FROM sym_keys WHERE state = 'reserved' AND created_at < ?`, before);
  }

  countSymKeysByState(): Record<string, number> {
    // The covering index sym_keys_by_state (state, expires_at): no table row is read.
    const out: Record<string, number> = {};
    for (const row of this.#all<{ state: string; n: number }>(
      'SELECT state, count(*) AS n FROM sym_keys INDEXED BY sym_keys_by_state GROUP BY state',
    )) {
      out[row.state] = row.n;
    }
    return out;
  }

  countPendingDeliveries(): number {
    return this.#get<{ n: number }>('SELECT count(*) AS n FROM pending_deliveries')!.n;
  }

  countActiveKeys(owner: string, peer: string, now: number): number {
    // One range of the covering index sym_keys_by_pair (owner, peer, state, expires_at): at most the
    // pair's bound of entries (~5 us at 84 keys).
    return this.#get<{ n: number }>(
      `SELECT count(*) AS n FROM sym_keys INDEXED BY sym_keys_by_pair
       WHERE owner = ? AND peer = ? AND state = 'active' AND expires_at > ?`,
      owner,
      peer,
      now,
    )!.n;
  }

  countOpenReservations(owner: string, peer: string, since: number): number {
    // INDEXED BY: on its own the planner takes sym_keys_by_peer (peer, created_at), i.e. every key the
    // peer received in the last five minutes, read row by row; the (owner, peer, 'reserved') range of
    // sym_keys_by_pair is a few rows (stale reservations are deleted by every reservation).
    return this.#get<{ n: number }>(
      `SELECT count(*) AS n FROM sym_keys INDEXED BY sym_keys_by_pair
       WHERE owner = ? AND peer = ? AND state = 'reserved' AND created_at >= ?`,
      owner,
      peer,
      since,
    )!.n;
  }

  insertPrekeys(owner: string, certSerial: string, prekeys: readonly NewPrekey[], at: number): void {
    const insert = this.#statement(
      `INSERT INTO prekeys (owner, cert_serial, prekey_id, public_key, signature, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
    );
    try {
      this.#db.transaction(() => {
        for (const p of prekeys) insert.run(owner, certSerial, p.prekeyId, p.publicKey, p.signature, at);
      })();
    } catch (err) {
      throw storeError(err, 'cannot store prekeys');
    }
  }

  countPrekeys(owner: string, certSerial: string): number {
    return this.#get<{ n: number }>(
      'SELECT count(*) AS n FROM prekeys WHERE owner = ? AND cert_serial = ?',
      owner,
      certSerial,
    )!.n;
  }

  claimPrekey(owner: string, certSerial: string): PrekeyRecord | undefined {
    // One statement: the row is chosen and deleted under the write lock, so two senders can never
    // claim the same one-time prekey.
    const row = this.#get<PrekeyRow>(
      `DELETE FROM prekeys WHERE id = (
         SELECT id FROM prekeys WHERE owner = ? AND cert_serial = ? ORDER BY id LIMIT 1
       ) RETURNING *`,
      owner,
      certSerial,
    );
    return row === undefined ? undefined : prekeyOf(row);
  }

  deletePrekeys(owner: string, keepCertSerial?: string): number {
    const keep = repeat(keepCertSerial ?? null, 2);
    this.#run(
      'DELETE FROM last_resort_prekeys WHERE owner = ? AND (? IS NULL OR cert_serial <> ?)',
      owner,
      ...keep,
    );
    return this.#run(
      'DELETE FROM prekeys WHERE owner = ? AND (? IS NULL OR cert_serial <> ?)',
      owner,
      ...keep,
    );
  }

  putLastResortPrekey(owner: string, certSerial: string, p: NewPrekey, at: number): void {
    this.#run(
      `INSERT INTO last_resort_prekeys (owner, cert_serial, prekey_id, public_key, signature, created_at)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (owner) DO UPDATE SET cert_serial = excluded.cert_serial, prekey_id = excluded.prekey_id,
         public_key = excluded.public_key, signature = excluded.signature, created_at = excluded.created_at`,
      owner,
      certSerial,
      p.prekeyId,
      p.publicKey,
      p.signature,
      at,
    );
  }

  getLastResortPrekey(owner: string, certSerial: string): PrekeyRecord | undefined {
    const row = this.#get<PrekeyRow>(
      'SELECT * FROM last_resort_prekeys WHERE owner = ? AND cert_serial = ?',
      owner,
      certSerial,
    );
    return row === undefined ? undefined : prekeyOf(row);
  }

  enqueueDelivery(d: NewDelivery): number {
    try {
      const info = this.#statement(
        `INSERT INTO pending_deliveries (recipient, kind, key_serial, payload, sender, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(d.recipient, d.kind, d.keySerial, d.payload ?? null, d.sender ?? null, d.createdAt);
      return Number(info.lastInsertRowid);
    } catch (err) {
      throw storeError(err, 'cannot queue a delivery');
    }
  }

  countQueuedFrom(recipient: string, sender: string, kind: 'msg' | 'key'): number {
    // pending_deliveries_by_sender (recipient, sender, kind): one index range either way.
    return this.#get<{ n: number }>(
      kind === 'msg'
        ? `SELECT count(*) AS n FROM pending_deliveries WHERE recipient = ? AND sender = ? AND kind = 'msg'`
        : `SELECT count(*) AS n FROM pending_deliveries WHERE recipient = ? AND sender = ? AND kind <> 'msg'`,
      recipient,
      sender,
    )!.n;
  }

  deleteQueuedKeyNotices(recipient: string, keySerial: string): number {
    // Scans the recipient's queue (bounded by the per-pair quotas), on revocations only: an index on
    // key_serial would cost every notice queued and acknowledged two more b-tree writes instead.
    return this.#run(
      `DELETE FROM pending_deliveries WHERE recipient = ? AND key_serial = ? AND kind <> 'msg'`,
      recipient,
      keySerial,
    );
  }

  listDeliveries(recipient: string, limit = -1): DeliveryRecord[] {
    return this.#all<DeliveryRow>(
      'SELECT * FROM pending_deliveries WHERE recipient = ? ORDER BY id LIMIT ?',
      recipient,
      limit,
    ).map(deliveryOf);
  }

  getDelivery(recipient: string, id: number): DeliveryRecord | undefined {
    const row = this.#get<DeliveryRow>(
      'SELECT * FROM pending_deliveries WHERE recipient = ? AND id = ?',
      recipient,
      id,
    );
    return row === undefined ? undefined : deliveryOf(row);
  }

  deleteDeliveries(recipient: string, ids: readonly number[]): number {
    if (ids.length === 0) return 0;
    return this.#run(
      'DELETE FROM pending_deliveries WHERE recipient = ? AND id IN (SELECT value FROM json_each(?))',
      recipient,
      JSON.stringify(ids),
    );
  }

  countDeliveries(recipient?: string): number {
    return this.#get<{ n: number }>(
      'SELECT count(*) AS n FROM pending_deliveries WHERE (? IS NULL OR recipient = ?)',
      ...repeat(recipient ?? null, 2),
    )!.n;
  }

  heldPrekeyIds(owner: string, certSerial: string, reservedSince: number, limit: number): string[] {
    // One compound SELECT: a prekey moving from the stock to a reservation (claimPrekey) or from a
    // reservation to a queued delivery (deposit) is seen in exactly one branch, never in none.
    return this.#all<{ prekey_id: string }>(
      `SELECT prekey_id FROM prekeys WHERE owner = ? AND cert_serial = ?
       UNION
       SELECT prekey_id FROM sym_keys
         WHERE peer = ? AND state = 'reserved' AND created_at >= ? AND prekey_id IS NOT NULL
       UNION
       SELECT s.prekey_id FROM pending_deliveries d JOIN sym_keys s ON s.serial = d.key_serial
         WHERE d.recipient = ? AND d.kind = 'key.delivered' AND s.mode = 'e2e' AND s.prekey_id IS NOT NULL
       UNION
       SELECT prekey_id FROM last_resort_prekeys WHERE owner = ? AND cert_serial = ?
       LIMIT ?`,
      owner,
      certSerial,
      owner,
      reservedSince,
      owner,
      owner,
      certSerial,
      limit,
    ).map((r) => r.prekey_id);
  }

  // statement helpers: prepared once per connection, errors mapped to store_error

  #statement(sql: string): Database.Statement {
    let s = this.#stmts.get(sql);
    if (s === undefined) {
      s = this.#db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  #run(sql: string, ...params: unknown[]): number {
    try {
      return this.#statement(sql).run(...params).changes;
    } catch (err) {
      throw storeError(err, 'store write failed');
    }
  }

  #insert(sql: string, ...params: unknown[]): number {
    try {
      return Number(this.#statement(sql).run(...params).lastInsertRowid);
    } catch (err) {
      throw storeError(err, 'store write failed');
    }
  }

  #get<T>(sql: string, ...params: unknown[]): T | undefined {
    try {
      return this.#statement(sql).get(...params) as T | undefined;
    } catch (err) {
      throw storeError(err, 'store read failed');
    }
  }

  #all<T>(sql: string, ...params: unknown[]): T[] {
    try {
      return this.#statement(sql).all(...params) as T[];
    } catch (err) {
      throw storeError(err, 'store read failed');
    }
  }
}

interface SymKeyRow {
  serial: string;
  mode: SymKeyMode;
  owner: string;
  owner_cert: string;
  peer: string;
  peer_cert: string;
  created_at: number;
  expires_at: number;
  state: SymKeyState;
  state_changed_at: number | null;
  revoked_reason: string | null;
  revoked_by: string | null;
  replaces: string | null;
  superseded_by: string | null;
  digest: Buffer | null;
  prekey_id: string | null;
  prekey_public: Buffer | null;
  ephemeral: Buffer | null;
  sender_signature: Buffer | null;
  ciphertext: Buffer | null;
  wrapped_key: Buffer | null;
  kek_version: number | null;
  peer_verified_at: number | null;
}

interface PrekeyRow {
  owner: string;
  cert_serial: string;
  prekey_id: string;
  public_key: Buffer;
  signature: Buffer;
  created_at: number;
}

function deliveryOf(r: DeliveryRow): DeliveryRecord {
  return {
    id: r.id,
    recipient: r.recipient,
    kind: r.kind,
    keySerial: r.key_serial,
    payload: r.payload,
    sender: r.sender,
    createdAt: r.created_at,
  };
}

interface DeliveryRow {
  id: number;
  recipient: string;
  kind: DeliveryKind;
  key_serial: string;
  payload: Buffer | null;
  sender: string | null;
  created_at: number;
}

function prekeyOf(row: PrekeyRow): PrekeyRecord {
  return {
    owner: row.owner,
    certSerial: row.cert_serial,
    prekeyId: row.prekey_id,
    publicKey: row.public_key,
    signature: row.signature,
    createdAt: row.created_at,
  };
}

/** The same bound value for each repeated anonymous parameter (better-sqlite3 refuses ?NNN reuse). */
function repeat<T>(value: T, times: number): T[] {
  return Array.from({ length: times }, () => value);
}

function symKeyOf(r: SymKeyRow | undefined): SymKeyRecord | undefined {
  if (r === undefined) return undefined;
  return {
    serial: r.serial,
    mode: r.mode,
    owner: r.owner,
    ownerCert: r.owner_cert,
    peer: r.peer,
    peerCert: r.peer_cert,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    state: r.state,
    stateChangedAt: r.state_changed_at,
    revokedReason: r.revoked_reason,
    revokedBy: r.revoked_by,
    replaces: r.replaces,
    supersededBy: r.superseded_by,
    digest: r.digest,
    prekeyId: r.prekey_id,
    prekeyPublic: r.prekey_public,
    ephemeral: r.ephemeral,
    senderSignature: r.sender_signature,
    ciphertext: r.ciphertext,
    wrappedKey: r.wrapped_key,
    kekVersion: r.kek_version,
    peerVerifiedAt: r.peer_verified_at,
  };
}

function certOf(r: CertRow | undefined): CertificateRecord | undefined {
  if (r === undefined) return undefined;
  return {
    id: r.id,
    serialHex: r.serial,
    name: r.name,
    role: r.role,
    notBefore: r.not_before,
    notAfter: r.not_after,
    pem: r.pem,
    fingerprint256: r.fingerprint,
    status: r.status,
    issuedAt: r.issued_at,
  };
}

function revocationOf(r: RevocationRow | undefined): RevocationRecord | undefined {
  return r === undefined
    ? undefined
    : { id: r.id, serialHex: r.serial, revokedAt: r.revoked_at, reason: r.reason };
}

function tokenOf(r: TokenRow | undefined): EnrollmentTokenRecord | undefined {
  return r === undefined
    ? undefined
    : {
        id: r.id,
        tokenHash: r.token_hash,
        name: r.name,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        usedAt: r.used_at,
        createdBy: r.created_by,
      };
}

function isConstraint(err: unknown, column: string): boolean {
  return (
    err instanceof Database.SqliteError &&
    err.code.startsWith('SQLITE_CONSTRAINT') &&
    err.message.includes(column)
  );
}

/** SQLite's messages name tables and constraints, never values: safe to surface. */
function storeError(err: unknown, what: string): KdsError {
  if (err instanceof KdsError) return err;
  const detail = err instanceof Database.SqliteError ? `${err.code}: ${err.message}` : String(err);
  return new EnvironmentError('store_error', `${what} (${detail})`, undefined, { cause: err });
}
