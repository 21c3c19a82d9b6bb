// The Store on better-sqlite3: one file `<dataDir>/kds.sqlite` (0600), WAL journal so readers never block
// the writer, synchronous=FULL so a commit is on disk before it is acknowledged (in WAL mode FULL syncs
// the WAL on every commit; NORMAL would lose the last commits on power failure, and a revocation that
// was reported done must not come back), busy_timeout so concurrent processes wait instead of failing,
// foreign keys on (a revocation must name an issued certificate).
//
// Durability contract and the one exception to synchronous=FULL (the group commit's
// transactionUnsynced + syncCommitted): see sqlite-wal-sync.ts. The table methods live in one module per
// concern (sqlite-settings.ts, sqlite-certificates.ts, sqlite-tokens.ts, sqlite-audit.ts, sqlite-keys.ts),
// all running their SQL through one statement cache (sqlite-sql.ts); this class owns the connection, its
// transactions and its lifecycle, and delegates each Store method to the module of its table.
import Database from 'better-sqlite3';
import { closeSync, chmodSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError, KdsError, InternalError } from '../../shared/errors.js';
import { entryKind, explainFsError } from '../../io/fs-errors.js';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from '../../io/fs-atomic.js';
import { checkSchemaVersion, migrate, MIGRATIONS, userVersion } from './migrations.js';
import { SqliteAudit } from './sqlite-audit.js';
import { SqliteCertificates } from './sqlite-certificates.js';
import { SqliteKeys } from './sqlite-keys.js';
import { SqliteSettings } from './sqlite-settings.js';
import { SqliteSql, storeError } from './sqlite-sql.js';
import { SqliteTokens } from './sqlite-tokens.js';
import { WalSyncEngine, type WalSync } from './sqlite-wal-sync.js';
import type {
  ActiveCertificateSummary,
  AuditEntry,
  AuditHeadRecord,
  AuditQuery,
  AuditRecord,
  NewAuditHead,
  CertificateFilter,
  CertificateListing,
  CertificateRecord,
  CertificateStatus,
  CertificateStanding,
  RenewalInstall,
  RenewalRecord,
  CrlState,
  EnrollmentTokenRecord,
  IssuedCertificate,
  NewEnrollmentToken,
  NewRevocation,
  RevocationRecord,
  ListedRevocation,
  Store,
  DeliveryRecord,
  NewDelivery,
  NewPrekey,
  NewSymKey,
  PrekeyRecord,
  SymKeyDeposit,
  SymKeyFilter,
  SymKeyRecord,
  SymKeyState,
  SymKeyStateChange,
} from './store.js';

const STORE_FILE = 'kds.sqlite';

/** How long a writer waits for another process's transaction before giving up with store_error. */
const BUSY_TIMEOUT_MS = 10_000;

export interface StoreOptions {
  walSync?: WalSync;
  /**
   * Open for reading only: the file must exist, nothing is created, chmodded or migrated, and a schema
   * other than this kds's is refused (migrations.ts checkSchemaVersion). For the commands that only
   * read (cert list, crl show, admin audit verify): they work on a read-only copy of the data directory
   * and never upgrade a store an older KDC is running on.
   */
  readOnly?: boolean;
}

/**
 * Whether a read-only open failed only for want of the WAL index: SQLite reads a WAL-mode file through
 * its -shm file, which it must create when it is absent (the last connection to close removes it), and
 * cannot in a directory it may not write (a read-only copy of the data directory, a backup mount). With
 * no WAL content beside it, the file alone is the whole database.
 */
function needsPrivateCopy(err: unknown, file: string): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (code !== 'SQLITE_READONLY_DIRECTORY' && code !== 'SQLITE_CANTOPEN') return false;
  try {
    return statSync(`${file}-wal`).size === 0;
  } catch (walErr) {
    return (walErr as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * The file read into memory and opened there, read-only. Bytes 18 and 19 of the header (the file format
 * versions, 2 for WAL) are set to 1 (rollback journal) in that copy only: SQLite refuses an in-memory
 * database in WAL mode, and the copy has no WAL to read anyway (needsPrivateCopy).
 */
function openPrivateCopy(file: string): Database.Database {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw explainFsError(err, 'read', file);
  }
  if (bytes.length >= 20 && bytes[18] === 2 && bytes[19] === 2) {
    bytes[18] = 1;
    bytes[19] = 1;
  }
  return new Database(bytes, { readonly: true });
}

export class SqliteStore implements Store {
  readonly location: string;
  readonly #db: Database.Database;
  readonly #sql: SqliteSql;
  // The tables, by concern: each runs its SQL through #sql (one connection, one statement cache).
  readonly #settings: SqliteSettings;
  readonly #certificates: SqliteCertificates;
  readonly #tokens: SqliteTokens;
  readonly #audit: SqliteAudit;
  readonly #keys: SqliteKeys;
  #closed = false;
  /** Syncs the group commit's unsynced commits (transactionUnsynced); fails the store closed if a sync fails. */
  readonly #wal: WalSyncEngine;

  private constructor(location: string, db: Database.Database, opts: StoreOptions) {
    this.location = location;
    this.#db = db;
    this.#sql = new SqliteSql(db);
    this.#settings = new SqliteSettings(this.#sql);
    this.#certificates = new SqliteCertificates(this.#sql);
    this.#tokens = new SqliteTokens(this.#sql);
    this.#audit = new SqliteAudit(this.#sql, (fn) => this.transaction(fn));
    this.#keys = new SqliteKeys(this.#sql);
    this.#wal = new WalSyncEngine(db, location, opts.walSync);
  }

  static open(dataDir: string, opts: StoreOptions = {}): SqliteStore {
    if (opts.readOnly === true) return SqliteStore.#openReadOnly(dataDir, opts);
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

  static #openReadOnly(dataDir: string, opts: StoreOptions): SqliteStore {
    const file = join(dataDir, STORE_FILE);
    if (entryKind(file) === 'missing') {
      throw new EnvironmentError('ca_missing', `no kds store in ${dataDir} (run kds server init)`, {
        dataDir,
      });
    }
    let db: Database.Database | undefined;
    try {
      try {
        db = new Database(file, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
        userVersion(db); // the first read: where a missing WAL index shows
      } catch (err) {
        db?.close();
        db = undefined;
        if (!needsPrivateCopy(err, file)) throw err;
        db = openPrivateCopy(file);
      }
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('cache_size = -32768');
      db.pragma('temp_store = MEMORY');
      checkSchemaVersion(userVersion(db), MIGRATIONS.length, { migrating: false, location: file });
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
    if (this.#wal.failure !== undefined && !this.#db.inTransaction) throw this.#wal.failure;
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
    if (this.#wal.failure !== undefined) throw this.#wal.failure;
    // db.exec, not a cached statement: SQLite applies `PRAGMA synchronous = N` when the statement is
    // PREPARED (it compiles to no instructions), so re-running a prepared one would change nothing.
    this.#db.exec('PRAGMA synchronous = NORMAL');
    let committed = false;
    try {
      const value = this.transaction(fn);
      committed = true;
      return value;
    } finally {
      if (committed) this.#wal.noteUnsyncedCommit();
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
  // store object), and better-sqlite3's own db.transaction() nests as savepoints inside
  // (SqliteSql.atomic: insertPrekeys).

  /** BEGIN IMMEDIATE; `unsynced` is transactionUnsynced's commit (synchronous=NORMAL for this one). */
  begin(unsynced = false): void {
    if (this.#db.inTransaction) throw new InternalError('internal', 'a transaction is already open');
    if (this.#wal.failure !== undefined) throw this.#wal.failure;
    if (unsynced) this.#db.exec('PRAGMA synchronous = NORMAL');
    this.#openUnsynced = unsynced;
    try {
      this.#sql.statement('BEGIN IMMEDIATE').run();
    } catch (err) {
      this.#restoreFull();
      throw storeError(err, 'store transaction failed');
    }
  }

  commit(): void {
    try {
      this.#sql.statement('COMMIT').run();
      if (this.#openUnsynced) this.#wal.noteUnsyncedCommit();
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

  /**
   * SAVEPOINT / RELEASE / ROLLBACK TO + RELEASE, by name (the caller nests them properly). SAVEPOINT,
   * RELEASE, BEGIN and COMMIT run as cached prepared statements (the names are few: one per nesting
   * depth): db.exec compiles its SQL on every call, and the group commit runs a savepoint per caller.
   */
  savepoint(name: string): void {
    this.#sql.statement(`SAVEPOINT ${name}`).run();
  }

  releaseSavepoint(name: string): void {
    this.#sql.statement(`RELEASE ${name}`).run();
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
    if (this.#closed && this.#wal.failure === undefined) {
      // close() synced whatever was unsynced (or recorded why it could not).
      process.nextTick(cb, null);
      return;
    }
    this.#wal.sync(cb);
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
    return this.#sql.get<{ data_version: number }>('PRAGMA data_version')!.data_version;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wal.close();
    this.#sql.clear();
    this.#db.close();
  }

  // settings (sqlite-settings.ts)

  getSetting<T>(key: string): T | undefined {
    return this.#settings.getSetting(key);
  }

  setSetting(key: string, value: unknown): void {
    this.#settings.setSetting(key, value);
  }

  // certificates, revocations, CRL (sqlite-certificates.ts)

  insertIssuedCertificate(c: IssuedCertificate, audit: readonly AuditEntry[] = []): void {
    if (audit.length === 0) {
      this.#certificates.insertIssuedCertificate(c);
      return;
    }
    // Atomic with its entries (a savepoint inside the caller's transaction).
    this.transaction(() => {
      this.#certificates.insertIssuedCertificate(c);
      for (const e of audit) this.#audit.appendAudit(e);
    });
  }

  setCertificateStatus(serialHex: string, status: 'revoked' | 'superseded'): void {
    this.#certificates.setCertificateStatus(serialHex, status);
  }

  onCertificateStatusChange(listener: (serialHex: string) => void): () => void {
    return this.#certificates.onCertificateStatusChange(listener);
  }

  getCertificate(serialHex: string): CertificateRecord | undefined {
    return this.#certificates.getCertificate(serialHex);
  }

  getCertificateStanding(serialHex: string): CertificateStanding | undefined {
    return this.#certificates.getCertificateStanding(serialHex);
  }

  getCertificateByFingerprint(fingerprint256: string): CertificateRecord | undefined {
    return this.#certificates.getCertificateByFingerprint(fingerprint256);
  }

  activeCertificate(name: string): CertificateRecord | undefined {
    return this.#certificates.activeCertificate(name);
  }

  activeCertificateSummary(name: string): ActiveCertificateSummary | undefined {
    return this.#certificates.activeCertificateSummary(name);
  }

  latestCertificate(name: string): CertificateRecord | undefined {
    return this.#certificates.latestCertificate(name);
  }

  listCertificates(filter: CertificateFilter = {}): CertificateRecord[] {
    return this.#certificates.listCertificates(filter);
  }

  insertRenewal(c: IssuedCertificate, replaces: string, requestedAt: number): void {
    this.#certificates.insertRenewal(c, replaces, requestedAt);
  }

  getRenewal(serialHex: string): RenewalRecord | undefined {
    return this.#certificates.getRenewal(serialHex);
  }

  latestRenewalOf(serialHex: string): RenewalRecord | undefined {
    return this.#certificates.latestRenewalOf(serialHex);
  }

  countRenewalsSince(name: string, since: number, until: number): number {
    return this.#certificates.countRenewalsSince(name, since, until);
  }

  installRenewal(serialHex: string, at: number): RenewalInstall {
    return this.#certificates.installRenewal(serialHex, at);
  }

  listNewestCertificates(limit: number): CertificateListing[] {
    return this.#certificates.listNewestCertificates(limit);
  }

  listCertificateSerials(status: CertificateStatus): string[] {
    return this.#certificates.listCertificateSerials(status);
  }

  countCertificates(): number {
    return this.#certificates.countCertificates();
  }

  countCertificatesByStatus(): Partial<Record<CertificateStatus, number>> {
    return this.#certificates.countCertificatesByStatus();
  }

  insertRevocation(r: NewRevocation): RevocationRecord {
    return this.#certificates.insertRevocation(r);
  }

  getRevocation(serialHex: string): RevocationRecord | undefined {
    return this.#certificates.getRevocation(serialHex);
  }

  listRevocations(afterId = 0): ListedRevocation[] {
    return this.#certificates.listRevocations(afterId);
  }

  countRevocations(): number {
    return this.#certificates.countRevocations();
  }

  lastRevocationId(): number {
    return this.#certificates.lastRevocationId();
  }

  getCrlState(): CrlState | undefined {
    return this.#certificates.getCrlState();
  }

  saveCrlState(s: CrlState): void {
    this.#certificates.saveCrlState(s);
  }

  // enrollment tokens (sqlite-tokens.ts)

  insertEnrollmentToken(t: NewEnrollmentToken): void {
    this.#tokens.insertEnrollmentToken(t);
  }

  consumeEnrollmentToken(
    tokenHash: string,
    name: string,
    now: number,
    certSerial: string,
  ): EnrollmentTokenRecord | undefined {
    return this.#tokens.consumeEnrollmentToken(tokenHash, name, now, certSerial);
  }

  getEnrollmentToken(tokenHash: string): EnrollmentTokenRecord | undefined {
    return this.#tokens.getEnrollmentToken(tokenHash);
  }

  listEnrollmentTokens(): EnrollmentTokenRecord[] {
    return this.#tokens.listEnrollmentTokens();
  }

  // audit log (sqlite-audit.ts)

  appendAudit(e: AuditEntry): number {
    return this.#audit.appendAudit(e);
  }

  auditTail(): { id: number; hash: string | null } | undefined {
    return this.#audit.auditTail();
  }

  listAudit(opts: AuditQuery = {}): AuditRecord[] {
    return this.#audit.listAudit(opts);
  }

  appendAuditHead(head: NewAuditHead): number {
    return this.#audit.appendAuditHead(head);
  }

  listAuditHeads(): AuditHeadRecord[] {
    return this.#audit.listAuditHeads();
  }

  lastSignedAuditEntry(): number {
    return this.#audit.lastSignedAuditEntry();
  }

  countAudit(): number {
    return this.#audit.countAudit();
  }

  // symmetric keys, prekeys and pending deliveries (docs/keys.md) (sqlite-keys.ts)

  insertSymKey(k: NewSymKey): void {
    this.#keys.insertSymKey(k);
  }

  getSymKey(serial: string): SymKeyRecord | undefined {
    return this.#keys.getSymKey(serial);
  }

  activateSymKey(serial: string, d: SymKeyDeposit): boolean {
    return this.#keys.activateSymKey(serial, d);
  }

  setSymKeyState(
    serial: string,
    from: readonly SymKeyState[],
    to: SymKeyState,
    c: SymKeyStateChange,
  ): boolean {
    return this.#keys.setSymKeyState(serial, from, to, c);
  }

  markSymKeyPeerVerified(serial: string, at: number): void {
    this.#keys.markSymKeyPeerVerified(serial, at);
  }

  listSymKeys(filter: SymKeyFilter = {}): SymKeyRecord[] {
    return this.#keys.listSymKeys(filter);
  }

  expireSymKeys(now: number): SymKeyRecord[] {
    return this.#keys.expireSymKeys(now);
  }

  deleteStaleReservations(before: number): number {
    return this.#keys.deleteStaleReservations(before);
  }

  deleteExpiredSymKeys(before: number, limit: number): number {
    return this.#keys.deleteExpiredSymKeys(before, limit);
  }

  countSymKeysByState(): Record<string, number> {
    return this.#keys.countSymKeysByState();
  }

  countPendingDeliveries(): number {
    return this.#keys.countPendingDeliveries();
  }

  countActiveKeys(owner: string, peer: string, now: number): number {
    return this.#keys.countActiveKeys(owner, peer, now);
  }

  countOpenReservations(owner: string, peer: string, since: number): number {
    return this.#keys.countOpenReservations(owner, peer, since);
  }

  insertPrekeys(owner: string, certSerial: string, prekeys: readonly NewPrekey[], at: number): void {
    this.#keys.insertPrekeys(owner, certSerial, prekeys, at);
  }

  countPrekeys(owner: string, certSerial: string): number {
    return this.#keys.countPrekeys(owner, certSerial);
  }

  claimPrekey(owner: string, certSerial: string): PrekeyRecord | undefined {
    return this.#keys.claimPrekey(owner, certSerial);
  }

  deletePrekeys(owner: string, keepCertSerial?: string): number {
    return this.#keys.deletePrekeys(owner, keepCertSerial);
  }

  putLastResortPrekey(owner: string, certSerial: string, p: NewPrekey, at: number): void {
    this.#keys.putLastResortPrekey(owner, certSerial, p, at);
  }

  getLastResortPrekey(owner: string, certSerial: string): PrekeyRecord | undefined {
    return this.#keys.getLastResortPrekey(owner, certSerial);
  }

  enqueueDelivery(d: NewDelivery): number {
    return this.#keys.enqueueDelivery(d);
  }

  countQueuedFrom(recipient: string, sender: string, kind: 'msg' | 'key'): number {
    return this.#keys.countQueuedFrom(recipient, sender, kind);
  }

  deleteQueuedKeyNotices(recipient: string, keySerial: string): number {
    return this.#keys.deleteQueuedKeyNotices(recipient, keySerial);
  }

  deleteQueueOf(recipient: string): number {
    return this.#keys.deleteQueueOf(recipient);
  }

  listDeliveries(recipient: string, limit = -1, keyNoticesOnly = false): DeliveryRecord[] {
    return this.#keys.listDeliveries(recipient, limit, keyNoticesOnly);
  }

  getDelivery(recipient: string, id: number): DeliveryRecord | undefined {
    return this.#keys.getDelivery(recipient, id);
  }

  deleteDeliveries(recipient: string, ids: readonly number[]): number {
    return this.#keys.deleteDeliveries(recipient, ids);
  }

  countDeliveries(recipient?: string, keyNoticesOnly = false): number {
    return this.#keys.countDeliveries(recipient, keyNoticesOnly);
  }

  heldPrekeyIds(owner: string, certSerial: string, reservedSince: number, limit: number): string[] {
    return this.#keys.heldPrekeyIds(owner, certSerial, reservedSince, limit);
  }
}
