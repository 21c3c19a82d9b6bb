// The Store on better-sqlite3: one file `<dataDir>/kds.sqlite` (0600), WAL journal so readers never block
// the writer, synchronous=FULL so a commit is on disk before it is acknowledged (in WAL mode FULL syncs
// the WAL on every commit; NORMAL would lose the last commits on power failure, and a revocation that
// was reported done must not come back), busy_timeout so concurrent processes wait instead of failing,
// foreign keys on (a revocation must name an issued certificate).
import Database from 'better-sqlite3';
import { closeSync, chmodSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError, KdsError, PolicyError } from '../../shared/errors.js';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from '../fs-atomic.js';
import { migrate, userVersion } from './migrations.js';
import type {
  AuditEntry,
  AuditRecord,
  CertificateFilter,
  CertificateRecord,
  CertificateStatus,
  CrlState,
  EnrollmentTokenRecord,
  NewCertificate,
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

export const STORE_FILE = 'kds.sqlite';
/** How long a writer waits for another process's transaction before giving up with store_error. */
export const BUSY_TIMEOUT_MS = 10_000;

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

export class SqliteStore implements Store {
  readonly location: string;
  private readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();
  private closed = false;

  private constructor(location: string, db: Database.Database) {
    this.location = location;
    this.db = db;
  }

  static open(dataDir: string): SqliteStore {
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
      db.pragma('foreign_keys = ON');
      migrate(db);
      return new SqliteStore(file, db);
    } catch (err) {
      db?.close();
      if (err instanceof KdsError) throw err;
      throw storeError(err, `cannot open the store ${file}`);
    }
  }

  schemaVersion(): number {
    return userVersion(this.db);
  }

  transaction<T>(fn: () => T): T {
    try {
      // .immediate(): BEGIN IMMEDIATE takes the write lock first, so the re-checks fn makes are still
      // true when it writes (a deferred transaction could not upgrade its read lock under WAL and would
      // fail with SQLITE_BUSY instead of waiting).
      return this.db.transaction(fn).immediate();
    } catch (err) {
      if (err instanceof KdsError) throw err;
      throw storeError(err, 'store transaction failed');
    }
  }

  changeCounter(): number {
    // "The integer values returned by two invocations of PRAGMA data_version from the same connection
    // will be different if changes were committed to the database by any other connection in the
    // interim." (sqlite.org/pragma.html#pragma_data_version)
    // A cached prepared statement: db.pragma() compiles the statement on every call (~18 us vs ~8 us),
    // and the KDC asks on every handshake (revocation lookups keep their cache fresh with it).
    return this.get<{ data_version: number }>('PRAGMA data_version')!.data_version;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stmts.clear();
    this.db.close();
  }

  // settings

  getSetting<T>(key: string): T | undefined {
    const row = this.get<{ value: string }>('SELECT value FROM settings WHERE key = ?', key);
    return row === undefined ? undefined : (JSON.parse(row.value) as T);
  }

  setSetting(key: string, value: unknown): void {
    this.run(
      'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      key,
      JSON.stringify(value),
    );
  }

  // certificates

  reserveCertificate(c: NewCertificate): void {
    this.run(
      `INSERT INTO certificates (serial, name, role, not_before, not_after, pem, fingerprint, status, issued_at)
       VALUES (?, ?, ?, ?, ?, NULL, NULL, 'pending', ?)`,
      c.serialHex,
      c.name,
      c.role,
      c.notBefore,
      c.notAfter,
      c.issuedAt,
    );
  }

  activateCertificate(serialHex: string, pem: string, fingerprint256: string): void {
    let changes: number;
    try {
      changes = this.statement(
        `UPDATE certificates SET pem = ?, fingerprint = ?, status = 'active' WHERE serial = ? AND status = 'pending'`,
      ).run(pem, fingerprint256, serialHex).changes;
    } catch (err) {
      if (isConstraint(err, 'certificates.name')) {
        throw new PolicyError('already_active', 'this name already has an active certificate (use renew)');
      }
      throw storeError(err, 'cannot store the certificate');
    }
    if (changes !== 1) throw new EnvironmentError('store_error', `no pending certificate ${serialHex}`);
  }

  discardPendingCertificate(serialHex: string): void {
    this.run(`DELETE FROM certificates WHERE serial = ? AND status = 'pending'`, serialHex);
  }

  setCertificateStatus(serialHex: string, status: 'revoked' | 'superseded'): void {
    const changes = this.run(
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
    return certOf(this.get<CertRow>('SELECT * FROM certificates WHERE serial = ?', serialHex));
  }

  getCertificateByFingerprint(fingerprint256: string): CertificateRecord | undefined {
    return certOf(this.get<CertRow>('SELECT * FROM certificates WHERE fingerprint = ?', fingerprint256));
  }

  activeCertificate(name: string): CertificateRecord | undefined {
    return certOf(this.get<CertRow>(`SELECT * FROM certificates WHERE name = ? AND status = 'active'`, name));
  }

  latestCertificate(name: string): CertificateRecord | undefined {
    return certOf(
      this.get<CertRow>(
        `SELECT * FROM certificates WHERE name = ? AND status <> 'pending' ORDER BY id DESC LIMIT 1`,
        name,
      ),
    );
  }

  listCertificates(filter: CertificateFilter = {}): CertificateRecord[] {
    const rows = this.all<CertRow>(
      `SELECT * FROM certificates
       WHERE (@name IS NULL OR name = @name) AND (@status IS NULL OR status = @status)
         AND (@role IS NULL OR role = @role)
       ORDER BY id`,
      { name: filter.name ?? null, status: filter.status ?? null, role: filter.role ?? null },
    );
    return rows.map((r) => certOf(r)!);
  }

  countCertificates(): number {
    return this.get<{ n: number }>('SELECT count(*) AS n FROM certificates')!.n;
  }

  // revocations

  insertRevocation(r: NewRevocation): RevocationRecord {
    const id = this.insert(
      'INSERT INTO revocations (serial, revoked_at, reason) VALUES (?, ?, ?)',
      r.serialHex,
      r.revokedAt,
      r.reason,
    );
    return { id, serialHex: r.serialHex, revokedAt: r.revokedAt, reason: r.reason };
  }

  getRevocation(serialHex: string): RevocationRecord | undefined {
    return revocationOf(this.get<RevocationRow>('SELECT * FROM revocations WHERE serial = ?', serialHex));
  }

  listRevocations(afterId = 0): RevocationRecord[] {
    return this.all<RevocationRow>('SELECT * FROM revocations WHERE id > ? ORDER BY id', afterId).map(
      (r) => revocationOf(r)!,
    );
  }

  countRevocations(): number {
    return this.get<{ n: number }>('SELECT count(*) AS n FROM revocations')!.n;
  }

  lastRevocationId(): number {
    return this.get<{ id: number | null }>('SELECT max(id) AS id FROM revocations')!.id ?? 0;
  }

  // CRL

  getCrlState(): CrlState | undefined {
    const row = this.get<{
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
    this.run(
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
    this.run(
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
    const row = this.get<TokenRow>(
      `UPDATE enrollment_tokens SET used_at = @now
       WHERE token_hash = @tokenHash AND name = @name AND used_at IS NULL AND expires_at > @now
       RETURNING *`,
      { now, tokenHash, name },
    );
    return tokenOf(row);
  }

  getEnrollmentToken(tokenHash: string): EnrollmentTokenRecord | undefined {
    return tokenOf(this.get<TokenRow>('SELECT * FROM enrollment_tokens WHERE token_hash = ?', tokenHash));
  }

  listEnrollmentTokens(): EnrollmentTokenRecord[] {
    return this.all<TokenRow>('SELECT * FROM enrollment_tokens ORDER BY id').map((r) => tokenOf(r)!);
  }

  // audit log

  appendAudit(e: AuditEntry): number {
    const detail = e.detail ?? {};
    for (const key of Object.keys(detail)) {
      if (SECRET_KEY.test(key)) throw new Error(`audit detail key "${key}" looks like a secret`);
    }
    return this.insert(
      'INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)',
      e.at,
      e.actor,
      e.action,
      e.subject ?? null,
      JSON.stringify(detail),
    );
  }

  listAudit(opts: { afterId?: number; limit?: number; action?: string } = {}): AuditRecord[] {
    const rows = this.all<{
      id: number;
      at: number;
      actor: string;
      action: string;
      subject: string | null;
      detail: string;
    }>(
      `SELECT * FROM audit_log WHERE id > @afterId AND (@action IS NULL OR action = @action)
       ORDER BY id LIMIT @limit`,
      { afterId: opts.afterId ?? 0, action: opts.action ?? null, limit: opts.limit ?? -1 },
    );
    return rows.map((r) => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> }));
  }

  countAudit(): number {
    return this.get<{ n: number }>('SELECT count(*) AS n FROM audit_log')!.n;
  }

  // symmetric keys, prekeys and pending deliveries (issue 4)

  insertSymKey(k: NewSymKey): void {
    this.run(
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
    return symKeyOf(this.get<SymKeyRow>('SELECT * FROM sym_keys WHERE serial = ?', serial));
  }

  activateSymKey(serial: string, d: SymKeyDeposit): boolean {
    return (
      this.run(
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
      this.run(
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
    this.run(
      'UPDATE sym_keys SET peer_verified_at = coalesce(peer_verified_at, ?) WHERE serial = ?',
      at,
      serial,
    );
  }

  listSymKeys(filter: SymKeyFilter = {}): SymKeyRecord[] {
    const states = filter.states ?? null;
    const rows = this.all<SymKeyRow>(
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
    return this.all<SymKeyRow>(
      `UPDATE sym_keys SET state = 'expired', state_changed_at = ?
       WHERE state = 'active' AND expires_at <= ? RETURNING *`,
      now,
      now,
    ).map((r) => symKeyOf(r)!);
  }

  deleteStaleReservations(before: number): number {
    return this.run(`DELETE FROM sym_keys WHERE state = 'reserved' AND created_at < ?`, before);
  }

  insertPrekeys(owner: string, certSerial: string, prekeys: readonly NewPrekey[], at: number): void {
    const insert = this.statement(
      `INSERT INTO prekeys (owner, cert_serial, prekey_id, public_key, signature, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
    );
    try {
      this.db.transaction(() => {
        for (const p of prekeys) insert.run(owner, certSerial, p.prekeyId, p.publicKey, p.signature, at);
      })();
    } catch (err) {
      throw storeError(err, 'cannot store prekeys');
    }
  }

  countPrekeys(owner: string, certSerial: string): number {
    return this.get<{ n: number }>(
      'SELECT count(*) AS n FROM prekeys WHERE owner = ? AND cert_serial = ?',
      owner,
      certSerial,
    )!.n;
  }

  claimPrekey(owner: string, certSerial: string): PrekeyRecord | undefined {
    // One statement: the row is chosen and deleted under the write lock, so two senders can never
    // claim the same one-time prekey.
    const row = this.get<PrekeyRow>(
      `DELETE FROM prekeys WHERE id = (
         SELECT id FROM prekeys WHERE owner = ? AND cert_serial = ? ORDER BY id LIMIT 1
       ) RETURNING *`,
      owner,
      certSerial,
    );
    return row === undefined
      ? undefined
      : {
          owner: row.owner,
          certSerial: row.cert_serial,
          prekeyId: row.prekey_id,
          publicKey: row.public_key,
          signature: row.signature,
          createdAt: row.created_at,
        };
  }

  deletePrekeys(owner: string, keepCertSerial?: string): number {
    return this.run(
      'DELETE FROM prekeys WHERE owner = ? AND (? IS NULL OR cert_serial <> ?)',
      owner,
      ...repeat(keepCertSerial ?? null, 2),
    );
  }

  enqueueDelivery(d: NewDelivery): number {
    try {
      const info = this.statement(
        'INSERT INTO pending_deliveries (recipient, kind, key_serial, payload, created_at) VALUES (?, ?, ?, ?, ?)',
      ).run(d.recipient, d.kind, d.keySerial, d.payload ?? null, d.createdAt);
      return Number(info.lastInsertRowid);
    } catch (err) {
      throw storeError(err, 'cannot queue a delivery');
    }
  }

  listDeliveries(recipient: string, limit = -1): DeliveryRecord[] {
    return this.all<DeliveryRow>(
      'SELECT * FROM pending_deliveries WHERE recipient = ? ORDER BY id LIMIT ?',
      recipient,
      limit,
    ).map((r) => ({
      id: r.id,
      recipient: r.recipient,
      kind: r.kind,
      keySerial: r.key_serial,
      payload: r.payload,
      createdAt: r.created_at,
    }));
  }

  deleteDeliveries(recipient: string, ids: readonly number[]): number {
    if (ids.length === 0) return 0;
    return this.run(
      'DELETE FROM pending_deliveries WHERE recipient = ? AND id IN (SELECT value FROM json_each(?))',
      recipient,
      JSON.stringify(ids),
    );
  }

  countDeliveries(recipient?: string): number {
    return this.get<{ n: number }>(
      'SELECT count(*) AS n FROM pending_deliveries WHERE (? IS NULL OR recipient = ?)',
      ...repeat(recipient ?? null, 2),
    )!.n;
  }

  // statement helpers: prepared once per connection, errors mapped to store_error

  private statement(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  private run(sql: string, ...params: unknown[]): number {
    try {
      return this.statement(sql).run(...params).changes;
    } catch (err) {
      throw storeError(err, 'store write failed');
    }
  }

  private insert(sql: string, ...params: unknown[]): number {
    try {
      return Number(this.statement(sql).run(...params).lastInsertRowid);
    } catch (err) {
      throw storeError(err, 'store write failed');
    }
  }

  private get<T>(sql: string, ...params: unknown[]): T | undefined {
    try {
      return this.statement(sql).get(...params) as T | undefined;
    } catch (err) {
      throw storeError(err, 'store read failed');
    }
  }

  private all<T>(sql: string, ...params: unknown[]): T[] {
    try {
      return this.statement(sql).all(...params) as T[];
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

interface DeliveryRow {
  id: number;
  recipient: string;
  kind: DeliveryKind;
  key_serial: string;
  payload: Buffer | null;
  created_at: number;
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
