// The asynchronous Store contract (async-store.ts) on PostgreSQL, through node-postgres (`pg`) with a pool
// of connections; every KDC node of a cluster opens the same database (docs/deployment.md).
//
// - Schema: pg-migrations.ts, applied at open under an advisory lock (nodes starting together migrate
//   once), every pending migration inside one transaction (PostgreSQL's DDL is transactional), so a
//   failed upgrade changes nothing; a read-only open (the commands that only read) migrates nothing.
//   A URL parameter `schema=NAME` puts the tables in that schema (created if missing) instead of
//   `public`.
// - transaction(fn): BEGIN, then pg_advisory_xact_lock on the store's write lock, held until COMMIT or
//   ROLLBACK: the write transactions of every node run one at a time, as SQLite's BEGIN IMMEDIATE makes
//   them on one machine, so a read-check-write inside fn is still true at its COMMIT whichever node
//   runs it (a token redeemed on two nodes at once: the second sees it used). Single statements outside
//   a transaction are atomic by themselves (consumeEnrollmentToken, claimPrekey: UPDATE/DELETE ...
//   RETURNING, re-evaluated on the row's latest version under READ COMMITTED).
// - Durability: synchronous_commit is the server's (on by default: COMMIT returns once the WAL is
//   flushed). batch() is a group commit like SQLite's: the write lock serialises transactions across
//   nodes, so one lock and one COMMIT for many callers is what keeps issuance fast.
// - Errors: a lost connection or a database that refuses connections (or has no connection slot left) is
//   `unavailable` (the caller may retry later; the pool reconnects by itself), and so is a statement it did
//   not finish in time (a lock held elsewhere: notInTime), every other failure `store_error`; PostgreSQL's
//   messages name constraints, never values (DETAIL, which quotes values, is never surfaced).
// - BIGINT columns come back as numbers (times in ms and ids stay far below 2^53).
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createHash } from 'node:crypto';
import { EnvironmentError, InputError, InternalError, KdsError, PolicyError } from '../../shared/errors.js';
import { checkNotification, type AsyncStore, type AsyncStoreTx, type StoreListener } from './async-store.js';
import { PG_MIGRATIONS } from './pg-migrations.js';
import { checkSchemaVersion } from './migrations.js';
import { GENESIS_HASH } from '../../shared/audit/chain.js';
import {
  auditDetailText,
  auditHeadOf,
  auditOf,
  auditRowValues,
  certificateSummaryOf,
  certOf,
  crlStateOf,
  deliveryOf,
  prekeyOf,
  renewalOf,
  revocationOf,
  symKeyInsertValues,
  symKeyOf,
  tokenOf,
  type AuditHeadRow,
  type AuditRow,
  type CertificateSummaryRow,
  type CertRow,
  type CrlStateRow,
  type DeliveryRow,
  type PrekeyRow,
  type RenewalRow,
  type RevocationRow,
  type ListedRevocationRow,
  listedRevocationOf,
  listedRevocationsSql,
  certificateListingOf,
  newestCertificatesSql,
  statusCountsOf,
  type CertificateListingRow,
  deleteExpiredKeysSql,
  type SymKeyRow,
  type TokenRow,
} from './rows.js';
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
  CertificateStanding,
  CertificateStatus,
  CrlState,
  RenewalInstall,
  RenewalRecord,
  DeliveryRecord,
  EnrollmentTokenRecord,
  IssuedCertificate,
  NewDelivery,
  NewEnrollmentToken,
  NewPrekey,
  NewRevocation,
  NewSymKey,
  PrekeyRecord,
  RevocationRecord,
  ListedRevocation,
  SymKeyDeposit,
  SymKeyFilter,
  SymKeyRecord,
  SymKeyState,
  SymKeyStateChange,
} from './store.js';

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const INT8_OID = 20;
/** Connections per node: enough for concurrent transactions plus reads; PostgreSQL's default max is 100. */
const PG_POOL_SIZE = 10;
/** How long a new connection may take before the call fails with `unavailable`. */
const PG_CONNECT_TIMEOUT_MS = 5_000;
/**
 * How long a connection may sit inside a transaction without sending anything before PostgreSQL ends its
 * session (idle_in_transaction_session_timeout). A node frozen mid-transaction (host lost without a FIN,
 * VM paused, process stopped) holds the store's write lock, and PostgreSQL would only notice by TCP
 * keepalive (2 h by default): every write of every node waited behind it. kds transactions send their
 * statements back to back (signing and key generation happen before BEGIN), so 15 s is never reached by
 * a live node, and is well inside the 30 s a client waits for a reply.
 */
const PG_IDLE_IN_TRANSACTION_TIMEOUT_MS = 15_000;
/**
 * How long a statement may go without an answer before it fails as `unavailable` and its connection is
 * dropped (node-postgres's query_timeout). A connection that went quiet without closing (the primary
 * moved behind a virtual IP, a NAT or firewall dropped its state) otherwise held its caller until TCP gave
 * up, about 15 minutes, and a transaction on it held one of the node's few transaction slots. Below the
 * 30 s a client waits for a reply: past that nobody is waiting for the answer. The write lock is waited
 * for under it too; a holder frozen mid-transaction is ended after PG_IDLE_IN_TRANSACTION_TIMEOUT_MS.
 */
const PG_QUERY_TIMEOUT_MS = 25_000;
/**
 * Every connection's statement_timeout, as a share of its query_timeout: PostgreSQL itself ends a
 * statement that runs, or waits on a lock another session holds (LOCK TABLE, a long migration, another
 * node's write lock), for longer, before node-postgres gives up on it. The caller gets the server's answer
 * (57014) and the backend is idle when its connection is closed, so it ends with it. When the client gave
 * up first it dropped its socket while the backend went on waiting on the lock until it was released,
 * keeping its connection slot (and, in a transaction, the store's write lock) while the pool opened a
 * replacement: a node's backends grew past its pool size. 20 s of the default 25 s; the rest is time for
 * the cancellation to come back. Set per connection, it also takes precedence over a database's or role's
 * default statement_timeout, which an administrator may set far lower for other applications: 50 ms failed
 * ordinary waits for the write lock.
 */
const PG_STATEMENT_TIMEOUT_SHARE = 0.8;
/**
 * The listening connection only ever receives: when the path to PostgreSQL stops forwarding without
 * closing (a NAT or firewall that dropped its state), no statement of its own times out and no `error` or
 * `end` comes, so its loss went unnoticed and other nodes' pushes stopped reaching this node for good. It
 * is asked for a round trip (#checkListening) this often; no answer within PG_LISTEN_CHECK_TIMEOUT_MS (which bounds its LISTEN and
 * UNLISTEN too) counts as a lost connection: dropped, reconnected, caught up. A lost path is noticed
 * within about 15 s; one round trip per 5 s per node costs nothing measurable.
 */
const PG_LISTEN_CHECK_INTERVAL_MS = 5_000;
const PG_LISTEN_CHECK_TIMEOUT_MS = 10_000;
/**
 * TCP keepalive on every connection, both ways: the node's side (socket option) and the server's
 * (tcp_keepalives_*, settable by any role), so a backend whose client vanished behind a dropped path
 * is ended by PostgreSQL after about a minute instead of the system's 2 hours, and does not keep a
 * connection slot (nor, for a listening one, hold back the notification queue) meanwhile. Only a
 * backstop: node-postgres cannot shorten the kernel's probe interval, so the node relies on
 * query_timeout and the listen check to notice a dead path itself.
 */
const PG_KEEPALIVE_IDLE_S = 30;
const PG_KEEPALIVE_INTERVAL_S = 10;
const PG_KEEPALIVE_COUNT = 3;

export interface PgStoreOptions {
  poolSize?: number;
  /** The connections' application_name (pg_stat_activity); tests tell their own connections apart by it. */
  applicationName?: string;
  /** idle_in_transaction_session_timeout of every connection (default PG_IDLE_IN_TRANSACTION_TIMEOUT_MS). */
  idleInTransactionTimeoutMs?: number;
  /** The bound on each statement (default PG_QUERY_TIMEOUT_MS); the server's is a share of it (PG_STATEMENT_TIMEOUT_SHARE). */
  queryTimeoutMs?: number;
  /** How often the listening connection is checked (default PG_LISTEN_CHECK_INTERVAL_MS). */
  listenCheckIntervalMs?: number;
  /** How long a check (or a LISTEN) of the listening connection may go unanswered (default PG_LISTEN_CHECK_TIMEOUT_MS). */
  listenCheckTimeoutMs?: number;
  /**
   * For a command that only reads: nothing is created or migrated, and a schema other than this kds's
   * is refused (migrations.ts checkSchemaVersion), so reading never upgrades the store under older
   * nodes still running on it.
   */
  readOnly?: boolean;
}

/**
 * Connection settings that every connection of a store shares, the listening one included; the statement
 * bound follows the query_timeout of the connection (PG_STATEMENT_TIMEOUT_SHARE).
 */
function connectionOptions(
  schema: string,
  idleInTransactionTimeoutMs: number,
  queryTimeoutMs: number,
): string {
  return [
    `-c search_path=${schema}`,
    `-c idle_in_transaction_session_timeout=${Math.ceil(idleInTransactionTimeoutMs)}`,
    `-c statement_timeout=${Math.ceil(queryTimeoutMs * PG_STATEMENT_TIMEOUT_SHARE)}`,
    // Lock waits are bounded by statement_timeout alone: a database's or role's default lock_timeout
    // would fail ordinary waits for the write lock as a low default statement_timeout did.
    '-c lock_timeout=0',
    // Not client_connection_check_interval (a backend whose client left mid-statement ends itself):
    // PostgreSQL before 14 refuses the name, and a server on a platform that cannot report a closed
    // socket refuses any value but 0, i.e. every connection. statement_timeout already ends a statement
    // before its client leaves it.
    `-c tcp_keepalives_idle=${PG_KEEPALIVE_IDLE_S}`,
    `-c tcp_keepalives_interval=${PG_KEEPALIVE_INTERVAL_S}`,
    `-c tcp_keepalives_count=${PG_KEEPALIVE_COUNT}`,
    // Keepalive probes wait while sent data is unacknowledged (a listening backend pushing notifications
    // into the dead path): this bounds that case the same way.
    `-c tcp_user_timeout=${(PG_KEEPALIVE_IDLE_S + PG_KEEPALIVE_INTERVAL_S * PG_KEEPALIVE_COUNT) * 1000}`,
  ].join(' ');
}

const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format ?? 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

type Exec = (sql: string, params: unknown[]) => Promise<pg.QueryResult>;

const statementNames = new Map<string, string | null>();
/** A statement whose result columns are a table's `*`: its row type changes when a migration adds a column. */
const RETURNS_STAR = /\b(SELECT|RETURNING)\s+\*/i;
/**
 * Statements as named (prepared) ones: node-postgres parses a name once per connection, then only binds
 * and executes it, so PostgreSQL no longer parses and plans the statement on every call, the ones run
 * under the write lock included (docs/performance.md "cluster": about a third less PostgreSQL CPU per
 * enrollment). The name is derived from the text (kds's statements are a fixed set; values are always
 * parameters). Not those that return `*`: PostgreSQL refuses to run a prepared statement whose result
 * columns changed ("cached plan must not change result type"), which is what a migration adding a
 * column, run by a newer node, would do to a running one.
 */
function prepared(text: string, values: unknown[]): pg.QueryConfig {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = RETURNS_STAR.test(text)
      ? null
      : `kds_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name === null ? { text, values } : { name, text, values };
}

/**
 * The columns of the rows the issuance path reads, named rather than `*` so that their statements can
 * be prepared (see prepared()).
 */
/** The database's clock in ms since the epoch, as SQL (the start of the statement's transaction). */
const DATABASE_NOW_MS = '(extract(epoch FROM now()) * 1000)::bigint';
const CERT_COLUMNS = 'id, serial, name, role, not_before, not_after, pem, fingerprint, status, issued_at';
const TOKEN_COLUMNS = 'id, token_hash, name, created_at, expires_at, used_at, created_by, cert_serial';
const LISTED_REVOCATIONS_SQL = listedRevocationsSql('$1');
const NEWEST_CERTIFICATES_SQL = newestCertificatesSql('$1');

/** The data methods, on whatever runs the SQL: the pool (one statement, autocommit) or a transaction's client. */
abstract class PgData {
  protected abstract exec: Exec;
  protected abstract statusChanged(serialHex: string): void;

  protected async rows<T>(sql: string, params: unknown[], what = 'store read failed'): Promise<T[]> {
    try {
      return (await this.exec(sql, params)).rows as T[];
    } catch (err) {
      throw pgError(err, what);
    }
  }

  protected async row<T>(sql: string, params: unknown[], what?: string): Promise<T | undefined> {
    return (await this.rows<T>(sql, params, what))[0];
  }

  protected async count(sql: string, params: unknown[], what = 'store write failed'): Promise<number> {
    try {
      return (await this.exec(sql, params)).rowCount ?? 0;
    } catch (err) {
      throw pgError(err, what);
    }
  }

  protected async n(sql: string, params: unknown[]): Promise<number> {
    return (await this.row<{ n: number }>(sql, params))!.n;
  }

  // settings

  async getSetting<T>(key: string): Promise<T | undefined> {
    const row = await this.row<{ value: string }>('SELECT value FROM settings WHERE key = $1', [key]);
    return row === undefined ? undefined : (JSON.parse(row.value) as T);
  }

  async setSetting(key: string, value: unknown): Promise<void> {
    await this.count(
      'INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      [key, JSON.stringify(value)],
    );
  }

  // certificates

  abstract insertIssuedCertificate(c: IssuedCertificate, audit?: readonly AuditEntry[]): Promise<void>;

  /**
   * The certificate's INSERT, then `then` (SQL after it: the audit entries' CTEs and INSERT) with its
   * parameters numbered from $9, in one statement.
   */
  protected async insertCertificate(
    c: IssuedCertificate,
    then?: { sql: (first: number) => string; params: unknown[] },
  ): Promise<void> {
    const insert = `INSERT INTO certificates (serial, name, role, not_before, not_after, pem, fingerprint, status, issued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8)`;
    const params = certificateParams(c);
    try {
      await this.exec(
        then === undefined ? insert : `WITH cert AS (${insert} RETURNING 1), ${then.sql(params.length + 1)}`,
        then === undefined ? params : [...params, ...then.params],
      );
    } catch (err) {
      if (isUniqueViolation(err, 'certificates_one_active_per_name')) {
        throw new PolicyError('already_active', 'this name already has an active certificate (use renew)');
      }
      throw pgError(err, 'cannot store the certificate');
    }
  }

  async setCertificateStatus(serialHex: string, status: 'revoked' | 'superseded'): Promise<void> {
    const changes = await this.count(
      `UPDATE certificates SET status = $1 WHERE serial = $2 AND status <> 'pending'`,
      [status, serialHex],
    );
    if (changes !== 1) throw new EnvironmentError('store_error', `no issued certificate ${serialHex}`);
    this.statusChanged(serialHex);
  }

  async getCertificate(serialHex: string): Promise<CertificateRecord | undefined> {
    return certOf(
      await this.row<CertRow>(`SELECT ${CERT_COLUMNS} FROM certificates WHERE serial = $1`, [serialHex]),
    );
  }

  async getCertificateStanding(serialHex: string): Promise<CertificateStanding | undefined> {
    const row = await this.row<{ status: CertificateStatus; not_before: number; not_after: number }>(
      'SELECT status, not_before, not_after FROM certificates WHERE serial = $1',
      [serialHex],
    );
    return row === undefined
      ? undefined
      : { status: row.status, notBefore: row.not_before, notAfter: row.not_after };
  }

  async getCertificateByFingerprint(fingerprint256: string): Promise<CertificateRecord | undefined> {
    return certOf(
      await this.row<CertRow>(`SELECT ${CERT_COLUMNS} FROM certificates WHERE fingerprint = $1`, [
        fingerprint256,
      ]),
    );
  }

  async activeCertificate(name: string): Promise<CertificateRecord | undefined> {
    return certOf(
      await this.row<CertRow>(
        `SELECT ${CERT_COLUMNS} FROM certificates WHERE name = $1 AND status = 'active'`,
        [name],
      ),
    );
  }

  async activeCertificateSummary(name: string): Promise<ActiveCertificateSummary | undefined> {
    return certificateSummaryOf(
      await this.row<CertificateSummaryRow>(
        `SELECT serial, role, not_before, not_after FROM certificates WHERE name = $1 AND status = 'active'`,
        [name],
      ),
    );
  }

  async latestCertificate(name: string): Promise<CertificateRecord | undefined> {
    return certOf(
      await this.row<CertRow>(
        `SELECT ${CERT_COLUMNS} FROM certificates WHERE name = $1 AND status <> 'pending' ORDER BY id DESC LIMIT 1`,
        [name],
      ),
    );
  }

  async listCertificates(filter: CertificateFilter = {}): Promise<CertificateRecord[]> {
    const rows = await this.rows<CertRow>(
      `SELECT ${CERT_COLUMNS} FROM certificates
       WHERE ($1::text IS NULL OR name = $1) AND ($2::text IS NULL OR status = $2)
         AND ($3::text IS NULL OR role = $3)
       ORDER BY id`,
      [filter.name ?? null, filter.status ?? null, filter.role ?? null],
    );
    return rows.map((r) => certOf(r)!);
  }

  // renewals

  async insertRenewal(c: IssuedCertificate, replaces: string, requestedAt: number): Promise<void> {
    // One statement, both rows (the renewals row's foreign key is checked at the statement's end).
    await this.count(
      `WITH cert AS (
         INSERT INTO certificates (serial, name, role, not_before, not_after, pem, fingerprint, status, issued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8) RETURNING serial
       )
       INSERT INTO renewals (serial, replaces, name, requested_at) SELECT serial, $9, $2, $10 FROM cert`,
      [...certificateParams(c), replaces, requestedAt],
      'cannot store the renewal',
    );
  }

  async getRenewal(serialHex: string): Promise<RenewalRecord | undefined> {
    return renewalOf(await this.row<RenewalRow>('SELECT * FROM renewals WHERE serial = $1', [serialHex]));
  }

  async latestRenewalOf(serialHex: string): Promise<RenewalRecord | undefined> {
    return renewalOf(
      await this.row<RenewalRow>(
        'SELECT * FROM renewals WHERE replaces = $1 ORDER BY requested_at DESC, seq DESC LIMIT 1',
        [serialHex],
      ),
    );
  }

  async countRenewalsSince(name: string, since: number, until: number): Promise<number> {
    return this.n(
      'SELECT count(*) AS n FROM renewals WHERE name = $1 AND requested_at >= $2 AND requested_at <= $3',
      [name, since, until],
    );
  }

  async installRenewal(serialHex: string, at: number): Promise<RenewalInstall> {
    // Several statements: the caller runs this inside its transaction (Store.installRenewal).
    const renewal = await this.getRenewal(serialHex);
    if (renewal === undefined || renewal.installedAt !== null) {
      throw new EnvironmentError('store_error', `no renewal ${serialHex} waiting to be installed`);
    }
    // The old one first: the partial unique index allows one active certificate per name.
    await this.setCertificateStatus(renewal.replaces, 'superseded');
    if (
      (await this.count(
        `UPDATE certificates SET status = 'active' WHERE serial = $1 AND status = 'pending'`,
        [serialHex],
      )) !== 1
    ) {
      throw new EnvironmentError('store_error', `renewal ${serialHex} is not pending`);
    }
    await this.count('UPDATE renewals SET installed_at = $1 WHERE serial = $2', [at, serialHex]);
    const abandoned = (
      await this.rows<{ serial: string }>(
        `UPDATE certificates SET status = 'superseded'
         WHERE status = 'pending' AND serial IN (
           SELECT serial FROM renewals WHERE replaces = $1 AND installed_at IS NULL
         ) RETURNING serial`,
        [renewal.replaces],
        'store write failed',
      )
    )
      .map((r) => r.serial)
      .sort();
    for (const serial of [serialHex, ...abandoned]) this.statusChanged(serial);
    return { superseded: renewal.replaces, abandoned };
  }

  async listNewestCertificates(limit: number): Promise<CertificateListing[]> {
    return certificateListingOf(await this.rows<CertificateListingRow>(NEWEST_CERTIFICATES_SQL, [limit]));
  }

  async listCertificateSerials(status: CertificateStatus): Promise<string[]> {
    return (
      await this.rows<{ serial: string }>('SELECT serial FROM certificates WHERE status = $1 ORDER BY id', [
        status,
      ])
    ).map((r) => r.serial);
  }

  async countCertificates(): Promise<number> {
    return this.n('SELECT count(*) AS n FROM certificates', []);
  }

  async countCertificatesByStatus(): Promise<Partial<Record<CertificateStatus, number>>> {
    return statusCountsOf(
      await this.rows<{ status: CertificateStatus; n: string }>(
        'SELECT status, count(*) AS n FROM certificates GROUP BY status',
        [],
      ),
    );
  }

  // revocations

  async insertRevocation(r: NewRevocation): Promise<RevocationRecord> {
    const row = await this.row<{ id: number }>(
      'INSERT INTO revocations (serial, revoked_at, reason) VALUES ($1, $2, $3) RETURNING id',
      [r.serialHex, r.revokedAt, r.reason],
      'store write failed',
    );
    return { id: row!.id, serialHex: r.serialHex, revokedAt: r.revokedAt, reason: r.reason };
  }

  async getRevocation(serialHex: string): Promise<RevocationRecord | undefined> {
    return revocationOf(
      await this.row<RevocationRow>('SELECT * FROM revocations WHERE serial = $1', [serialHex]),
    );
  }

  async listRevocations(afterId = 0): Promise<ListedRevocation[]> {
    return (await this.rows<ListedRevocationRow>(LISTED_REVOCATIONS_SQL, [afterId])).map(listedRevocationOf);
  }

  async countRevocations(): Promise<number> {
    return this.n('SELECT count(*) AS n FROM revocations', []);
  }

  async lastRevocationId(): Promise<number> {
    return (await this.row<{ id: number | null }>('SELECT max(id) AS id FROM revocations', []))!.id ?? 0;
  }

  // CRL

  async getCrlState(): Promise<CrlState | undefined> {
    return crlStateOf(await this.row<CrlStateRow>('SELECT * FROM crl_state WHERE id = 1', []));
  }

  async saveCrlState(s: CrlState): Promise<void> {
    await this.count(
      `INSERT INTO crl_state (id, crl_number, pem, this_update, next_update, last_revocation_id)
       VALUES (1, $1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET crl_number = excluded.crl_number, pem = excluded.pem,
         this_update = excluded.this_update, next_update = excluded.next_update,
         last_revocation_id = excluded.last_revocation_id`,
      [s.crlNumber, s.pem, s.thisUpdate, s.nextUpdate, s.lastRevocationId],
    );
  }

  // enrollment tokens

  async insertEnrollmentToken(t: NewEnrollmentToken): Promise<void> {
    await this.count(
      `INSERT INTO enrollment_tokens (token_hash, name, created_at, expires_at, used_at, created_by)
       VALUES ($1, $2, $3, $4, NULL, $5)`,
      [t.tokenHash, t.name, t.createdAt, t.expiresAt, t.createdBy],
    );
  }

  async consumeEnrollmentToken(
    tokenHash: string,
    name: string,
    now: number,
    certSerial: string,
  ): Promise<EnrollmentTokenRecord | undefined> {
    // One statement: under READ COMMITTED a concurrent UPDATE of the same row waits for the first to
    // commit, then re-evaluates `used_at IS NULL` on the row's new version and matches nothing.
    return tokenOf(
      await this.row<TokenRow>(
        `UPDATE enrollment_tokens SET used_at = $1, cert_serial = $4
         WHERE token_hash = $2 AND name = $3 AND used_at IS NULL AND expires_at > $1
         RETURNING ${TOKEN_COLUMNS}`,
        [now, tokenHash, name, certSerial],
        'store write failed',
      ),
    );
  }

  async getEnrollmentToken(tokenHash: string): Promise<EnrollmentTokenRecord | undefined> {
    return tokenOf(
      await this.row<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM enrollment_tokens WHERE token_hash = $1`, [
        tokenHash,
      ]),
    );
  }

  async listEnrollmentTokens(): Promise<EnrollmentTokenRecord[]> {
    return (await this.rows<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM enrollment_tokens ORDER BY id`, [])).map(
      (r) => tokenOf(r)!,
    );
  }

  // audit log

  /**
   * The chain (shared/audit/chain.ts): each entry's hash covers its id and the previous hash, so an entry
   * is written under the write lock, whichever node appends: in the caller's transaction, or in one of
   * its own (PgTx.appendAudit).
   */
  abstract appendAudit(e: AuditEntry): Promise<number>;

  async auditTail(): Promise<{ id: number; hash: string | null } | undefined> {
    return this.row<{ id: number; hash: string | null }>(
      'SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1',
      [],
    );
  }

  async listAudit(opts: AuditQuery = {}): Promise<AuditRecord[]> {
    const rows = await this.rows<AuditRow>(
      `SELECT * FROM audit_log WHERE id > $1 AND ($2::text IS NULL OR action = $2)
         AND ($3::bigint IS NULL OR at >= $3)
       ORDER BY id LIMIT $4`,
      [
        opts.afterId ?? 0,
        opts.action ?? null,
        opts.since ?? null,
        opts.limit === undefined || opts.limit < 0 ? null : opts.limit,
      ],
    );
    return rows.map(auditOf);
  }

  async appendAuditHead(head: NewAuditHead): Promise<number> {
    return (await this.row<{ id: number }>(
      `INSERT INTO audit_heads (entry_id, hash, signed_at, cert_serial, signature) VALUES ($1, $2, $3, $4, $5)
       RETURNING id`,
      [head.entryId, head.hash, head.signedAt, head.certSerial, head.signature],
      'store write failed',
    ))!.id;
  }

  async listAuditHeads(): Promise<AuditHeadRecord[]> {
    return (await this.rows<AuditHeadRow>('SELECT * FROM audit_heads ORDER BY id', [])).map(auditHeadOf);
  }

  async lastSignedAuditEntry(): Promise<number> {
    return (await this.row<{ n: number | null }>('SELECT max(entry_id) AS n FROM audit_heads', []))!.n ?? 0;
  }

  async countAudit(): Promise<number> {
    return this.n('SELECT count(*) AS n FROM audit_log', []);
  }

  // symmetric keys, prekeys and pending deliveries

  async insertSymKey(k: NewSymKey): Promise<void> {
    await this.count(
      `INSERT INTO sym_keys (serial, mode, owner, owner_cert, peer, peer_cert, created_at, expires_at, state,
         replaces, digest, prekey_id, prekey_public, wrapped_key, kek_version)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
      symKeyInsertValues(k),
    );
  }

  async getSymKey(serial: string): Promise<SymKeyRecord | undefined> {
    return symKeyOf(await this.row<SymKeyRow>('SELECT * FROM sym_keys WHERE serial = $1', [serial]));
  }

  async activateSymKey(serial: string, d: SymKeyDeposit): Promise<boolean> {
    return (
      (await this.count(
        `UPDATE sym_keys SET state = 'active', ephemeral = $1, sender_signature = $2, ciphertext = $3, digest = $4
         WHERE serial = $5 AND state = 'reserved'`,
        [d.ephemeral, d.senderSignature, d.ciphertext, d.digest, serial],
      )) === 1
    );
  }

  async setSymKeyState(
    serial: string,
    from: readonly SymKeyState[],
    to: SymKeyState,
    c: SymKeyStateChange,
  ): Promise<boolean> {
    if (from.length === 0) return false;
    return (
      (await this.count(
        `UPDATE sym_keys SET state = $1, state_changed_at = $2, revoked_reason = $3, revoked_by = $4,
           superseded_by = $5
         WHERE serial = $6 AND state = ANY($7::text[])`,
        [to, c.at, c.reason ?? null, c.by ?? null, c.supersededBy ?? null, serial, [...from]],
      )) === 1
    );
  }

  async markSymKeyPeerVerified(serial: string, at: number): Promise<void> {
    await this.count(
      'UPDATE sym_keys SET peer_verified_at = coalesce(peer_verified_at, $1) WHERE serial = $2',
      [at, serial],
    );
  }

  async listSymKeys(filter: SymKeyFilter = {}): Promise<SymKeyRecord[]> {
    if (filter.newest !== undefined) return this.#newestSymKeys(filter, filter.newest);
    const rows = await this.rows<SymKeyRow>(
      `SELECT * FROM sym_keys
       WHERE ($1::text IS NULL OR owner = $1 OR peer = $1)
         AND ($2::text[] IS NULL OR state = ANY($2::text[]))
         AND ($3 OR state <> 'reserved')
       ORDER BY created_at, seq`,
      [
        filter.party ?? null,
        filter.states === undefined ? null : [...filter.states],
        filter.includeReserved === true,
      ],
    );
    return rows.map((r) => symKeyOf(r)!);
  }

  /** As the SQLite store's: each index (sym_keys_by_owner, sym_keys_by_peer) read backwards to `limit`. */
  async #newestSymKeys(filter: SymKeyFilter, limit: number): Promise<SymKeyRecord[]> {
    const where = `($2::text[] IS NULL OR state = ANY($2::text[])) AND ($3 OR state <> 'reserved')`;
    const states = filter.states === undefined ? null : [...filter.states];
    const reserved = filter.includeReserved === true;
    const rows =
      filter.party === undefined
        ? await this.rows<SymKeyRow>(
            `SELECT * FROM sym_keys WHERE $1::text IS NULL AND ${where}
             ORDER BY created_at DESC, seq DESC LIMIT $4`,
            [null, states, reserved, limit],
          )
        : await this.rows<SymKeyRow>(
            `(SELECT * FROM sym_keys WHERE owner = $1 AND ${where} ORDER BY created_at DESC, seq DESC LIMIT $4)
             UNION ALL
             (SELECT * FROM sym_keys WHERE peer = $1 AND owner <> $1 AND ${where}
              ORDER BY created_at DESC, seq DESC LIMIT $4)
             ORDER BY created_at DESC, seq DESC LIMIT $4`,
            [filter.party, states, reserved, limit],
          );
    return rows.reverse().map((r) => symKeyOf(r)!);
  }

  async expireSymKeys(now: number): Promise<SymKeyRecord[]> {
    // Never later than the database's clock, which every node shares: a node whose clock runs ahead
    // would otherwise expire, for every node and for good, keys that are still valid (docs/deployment.md
    // "Clocks"). A node whose clock is behind expires late, and the others expire on time.
    return (
      await this.rows<SymKeyRow>(
        `UPDATE sym_keys SET state = 'expired', state_changed_at = $1
         WHERE state = 'active' AND expires_at <= LEAST($1::bigint, ${DATABASE_NOW_MS}) RETURNING *`,
        [now],
        'store write failed',
      )
    ).map((r) => symKeyOf(r)!);
  }

  async deleteStaleReservations(before: number): Promise<number> {
    return this.count(`DELETE FROM sym_keys WHERE state = 'reserved' AND created_at < $1`, [before]);
  }

  async deleteExpiredSymKeys(before: number, limit: number): Promise<number> {
    return this.count(deleteExpiredKeysSql('$1', '$2'), [before, limit]);
  }

  async countSymKeysByState(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const row of await this.rows<{ state: string; n: number }>(
      'SELECT state, count(*) AS n FROM sym_keys GROUP BY state',
      [],
    )) {
      out[row.state] = row.n;
    }
    return out;
  }

  async countPendingDeliveries(): Promise<number> {
    return this.n('SELECT count(*) AS n FROM pending_deliveries', []);
  }

  async countActiveKeys(owner: string, peer: string, now: number): Promise<number> {
    return this.n(
      `SELECT count(*) AS n FROM sym_keys
       WHERE owner = $1 AND peer = $2 AND state = 'active' AND expires_at > $3`,
      [owner, peer, now],
    );
  }

  async countOpenReservations(owner: string, peer: string, since: number): Promise<number> {
    return this.n(
      `SELECT count(*) AS n FROM sym_keys
       WHERE owner = $1 AND peer = $2 AND state = 'reserved' AND created_at >= $3`,
      [owner, peer, since],
    );
  }

  async insertPrekeys(
    owner: string,
    certSerial: string,
    prekeys: readonly NewPrekey[],
    at: number,
  ): Promise<void> {
    if (prekeys.length === 0) return;
    // One statement: all of them or none.
    await this.count(
      `INSERT INTO prekeys (owner, cert_serial, prekey_id, public_key, signature, created_at)
       SELECT $1, $2, p.id, p.pub, p.sig, $6
       FROM unnest($3::text[], $4::bytea[], $5::bytea[]) WITH ORDINALITY AS p (id, pub, sig, ord)
       ORDER BY p.ord`,
      [
        owner,
        certSerial,
        prekeys.map((p) => p.prekeyId),
        prekeys.map((p) => p.publicKey),
        prekeys.map((p) => p.signature),
        at,
      ],
      'cannot store prekeys',
    );
  }

  async countPrekeys(owner: string, certSerial: string): Promise<number> {
    return this.n('SELECT count(*) AS n FROM prekeys WHERE owner = $1 AND cert_serial = $2', [
      owner,
      certSerial,
    ]);
  }

  async claimPrekey(owner: string, certSerial: string): Promise<PrekeyRecord | undefined> {
    // SKIP LOCKED: a concurrent claim on another node takes the next prekey instead of waiting for this
    // one and then finding it gone (which would report an empty stock that is not empty).
    const row = await this.row<PrekeyRow>(
      `DELETE FROM prekeys WHERE id = (
         SELECT id FROM prekeys WHERE owner = $1 AND cert_serial = $2 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
       ) RETURNING *`,
      [owner, certSerial],
      'store write failed',
    );
    return row === undefined ? undefined : prekeyOf(row);
  }

  async deletePrekeys(owner: string, keepCertSerial?: string): Promise<number> {
    // One statement, both tables.
    return this.count(
      `WITH last_resort AS (
         DELETE FROM last_resort_prekeys WHERE owner = $1 AND ($2::text IS NULL OR cert_serial <> $2)
       )
       DELETE FROM prekeys WHERE owner = $1 AND ($2::text IS NULL OR cert_serial <> $2)`,
      [owner, keepCertSerial ?? null],
    );
  }

  async putLastResortPrekey(owner: string, certSerial: string, p: NewPrekey, at: number): Promise<void> {
    await this.count(
      `INSERT INTO last_resort_prekeys (owner, cert_serial, prekey_id, public_key, signature, created_at)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (owner) DO UPDATE SET cert_serial = excluded.cert_serial, prekey_id = excluded.prekey_id,
         public_key = excluded.public_key, signature = excluded.signature, created_at = excluded.created_at`,
      [owner, certSerial, p.prekeyId, p.publicKey, p.signature, at],
    );
  }

  async getLastResortPrekey(owner: string, certSerial: string): Promise<PrekeyRecord | undefined> {
    const row = await this.row<PrekeyRow>(
      'SELECT * FROM last_resort_prekeys WHERE owner = $1 AND cert_serial = $2',
      [owner, certSerial],
    );
    return row === undefined ? undefined : prekeyOf(row);
  }

  async enqueueDelivery(d: NewDelivery): Promise<number> {
    const row = await this.row<{ id: number }>(
      `INSERT INTO pending_deliveries (recipient, kind, key_serial, payload, sender, created_at)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
      [d.recipient, d.kind, d.keySerial, d.payload ?? null, d.sender ?? null, d.createdAt],
      'cannot queue a delivery',
    );
    return row!.id;
  }

  async countQueuedFrom(recipient: string, sender: string, kind: 'msg' | 'key'): Promise<number> {
    return this.n(
      kind === 'msg'
        ? `SELECT count(*) AS n FROM pending_deliveries WHERE recipient = $1 AND sender = $2 AND kind = 'msg'`
        : `SELECT count(*) AS n FROM pending_deliveries WHERE recipient = $1 AND sender = $2 AND kind <> 'msg'`,
      [recipient, sender],
    );
  }

  async deleteQueuedKeyNotices(recipient: string, keySerial: string): Promise<number> {
    return this.count(
      `DELETE FROM pending_deliveries WHERE recipient = $1 AND key_serial = $2 AND kind <> 'msg'`,
      [recipient, keySerial],
    );
  }

  async deleteQueueOf(recipient: string): Promise<number> {
    return this.count('DELETE FROM pending_deliveries WHERE recipient = $1', [recipient]);
  }

  async listDeliveries(recipient: string, limit = -1, keyNoticesOnly = false): Promise<DeliveryRecord[]> {
    return (
      await this.rows<DeliveryRow>(
        keyNoticesOnly
          ? `SELECT * FROM pending_deliveries WHERE recipient = $1 AND kind <> 'msg' ORDER BY id LIMIT $2`
          : 'SELECT * FROM pending_deliveries WHERE recipient = $1 ORDER BY id LIMIT $2',
        [recipient, limit < 0 ? null : limit],
      )
    ).map(deliveryOf);
  }

  async getDelivery(recipient: string, id: number): Promise<DeliveryRecord | undefined> {
    const row = (
      await this.rows<DeliveryRow>('SELECT * FROM pending_deliveries WHERE recipient = $1 AND id = $2', [
        recipient,
        id,
      ])
    )[0];
    return row === undefined ? undefined : deliveryOf(row);
  }

  async deleteDeliveries(recipient: string, ids: readonly number[]): Promise<number> {
    if (ids.length === 0) return 0;
    return this.count('DELETE FROM pending_deliveries WHERE recipient = $1 AND id = ANY($2::bigint[])', [
      recipient,
      [...ids],
    ]);
  }

  async countDeliveries(recipient?: string, keyNoticesOnly = false): Promise<number> {
    // As the SQLite store's: one statement per form, so the recipient's count reads its index range.
    if (recipient === undefined) return this.n('SELECT count(*) AS n FROM pending_deliveries', []);
    return this.n(
      keyNoticesOnly
        ? `SELECT count(*) AS n FROM pending_deliveries WHERE recipient = $1 AND kind <> 'msg'`
        : 'SELECT count(*) AS n FROM pending_deliveries WHERE recipient = $1',
      [recipient],
    );
  }

  async heldPrekeyIds(
    owner: string,
    certSerial: string,
    reservedSince: number,
    limit: number,
  ): Promise<string[]> {
    // One statement, one snapshot: a prekey moving between the stock, a reservation and a queued
    // delivery is seen in exactly one branch (sqlite-keys.ts).
    return (
      await this.rows<{ prekey_id: string }>(
        `SELECT prekey_id FROM prekeys WHERE owner = $1 AND cert_serial = $2
         UNION
         SELECT prekey_id FROM sym_keys
           WHERE peer = $1 AND state = 'reserved' AND created_at >= $3 AND prekey_id IS NOT NULL
         UNION
         SELECT s.prekey_id FROM pending_deliveries d JOIN sym_keys s ON s.serial = d.key_serial
           WHERE d.recipient = $1 AND d.kind = 'key.delivered' AND s.mode = 'e2e' AND s.prekey_id IS NOT NULL
         UNION
         SELECT prekey_id FROM last_resort_prekeys WHERE owner = $1 AND cert_serial = $2
         LIMIT $4`,
        [owner, certSerial, reservedSince, limit],
      )
    ).map((r) => r.prekey_id);
  }
}

/** The audit chain's last entry (null: the log is empty). */
type AuditTail = { id: number; hash: string | null } | null;

class PgTx extends PgData {
  open = true;
  #depth = 0;
  readonly #client: pg.PoolClient;
  readonly #owner: PgStore;
  /**
   * The audit chain's tail as this transaction sees it: read right after the write lock was taken (in
   * BEGIN's round trip) and moved by each append of this transaction. No other writer can append while
   * the lock is held, so an append needs no read of its own: it is one INSERT, one round trip under the
   * lock instead of two.
   */
  #auditTail: AuditTail;
  constructor(client: pg.PoolClient, owner: PgStore, auditTail: AuditTail) {
    super();
    this.#client = client;
    this.#owner = owner;
    this.#auditTail = auditTail;
  }

  /**
   * `entries` chained onto this transaction's audit tail: the SQL that inserts them (a CTE list and an
   * INSERT that ends a statement, its parameters numbered from `first`), its parameters, and the tail
   * once they are written (set by the caller after the statement succeeded).
   *
   * An entry's id is the tail's plus one, not the identity sequence's next value: a sequence is not rolled
   * back with a savepoint, so an append rolled back with its savepoint (a refused issuance in a group
   * commit) left a gap in the ids, which the chain's verification reports as deleted entries. The sequence
   * is still moved along (setval, in the same statement) for any writer that takes its ids from it.
   */
  #chainAudit(entries: readonly AuditEntry[]): {
    sql: (first: number) => string;
    params: unknown[];
    ids: number[];
    tail: AuditTail;
  } {
    let id = this.#auditTail?.id ?? 0;
    let prevHash = this.#auditTail?.hash ?? GENESIS_HASH;
    const columns: unknown[][] = [[], [], [], [], [], [], [], []];
    const ids: number[] = [];
    for (const e of entries) {
      id += 1;
      const values = auditRowValues(e, id, prevHash, auditDetailText(e));
      values.forEach((v, i) => columns[i]!.push(v));
      ids.push(id);
      prevHash = values[7] as string;
    }
    return {
      sql: (n) => `seq AS (SELECT setval(pg_get_serial_sequence('audit_log', 'id'), $${n}::bigint))
        INSERT INTO audit_log (id, at, actor, action, subject, detail, prev_hash, hash) OVERRIDING SYSTEM VALUE
        SELECT a.* FROM unnest($${n + 1}::bigint[], $${n + 2}::bigint[], $${n + 3}::text[], $${n + 4}::text[],
          $${n + 5}::text[], $${n + 6}::text[], $${n + 7}::text[], $${n + 8}::text[]) AS a, seq`,
      params: [id, ...columns],
      ids,
      tail: { id, hash: prevHash },
    };
  }

  async appendAudit(e: AuditEntry): Promise<number> {
    const chained = this.#chainAudit([e]);
    await this.count(`WITH ${chained.sql(1)}`, chained.params);
    this.#auditTail = chained.tail;
    return chained.ids[0]!;
  }

  async insertIssuedCertificate(c: IssuedCertificate, audit: readonly AuditEntry[] = []): Promise<void> {
    if (audit.length === 0) return this.insertCertificate(c);
    // One statement: the certificate, then its entries (a failed INSERT writes none of them).
    const chained = this.#chainAudit(audit);
    await this.insertCertificate(c, chained);
    this.#auditTail = chained.tail;
  }

  protected exec: Exec = (sql, params) => {
    if (!this.open)
      return Promise.reject(new InternalError('internal', 'store transaction used after it ended'));
    return this.#client.query(prepared(sql, params));
  };

  protected statusChanged(serialHex: string): void {
    this.#owner.notifyStatusChange(serialHex);
  }

  /** Notifications made in this transaction, in order (a savepoint's rollback truncates it). */
  readonly #notes: { channel: string; payload: string }[] = [];

  notify(channel: string, payload: string): Promise<void> {
    try {
      checkNotification(channel, payload);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    // NOTIFY is transactional: PostgreSQL delivers it at COMMIT, drops it with a rollback, to every
    // connection LISTENing on the channel, on every node. Held here and sent with the COMMIT itself
    // (commitStatement): a round trip per notification, or one for all of them, would be spent under the
    // write lock, which every node's writers wait for, and every queued key notice makes one
    // (bench/cluster.ts).
    this.#notes.push({ channel: this.#owner.pgChannel(channel), payload });
    return Promise.resolve();
  }

  /**
   * The COMMIT of this transaction, preceded by the notifications it kept (in the order they were made)
   * in the same simple query: one round trip. A simple query takes no parameters, so the channels (our
   * own names, checkNotification) and payloads are quoted as literals (node-postgres's escapeLiteral).
   * If the notifications fail, PostgreSQL skips the COMMIT and the transaction ends rolled back.
   */
  commitStatement(): string {
    if (this.#notes.length === 0) return 'COMMIT';
    const array = (values: string[]): string =>
      `ARRAY[${values.map((v) => pg.escapeLiteral(v)).join(',')}]::text[]`;
    // unnest returns the rows in array order: the notifications are queued in the order they were made.
    return `SELECT pg_notify(c, p) FROM unnest(${array(this.#notes.map((n) => n.channel))}, ${array(
      this.#notes.map((n) => n.payload),
    )}) AS n(c, p); COMMIT`;
  }

  transaction<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T> {
    return this.savepoint(fn, true);
  }

  /**
   * fn in a savepoint. `release: false` leaves it in place when fn succeeds (one round trip fewer): the
   * group commit's callers, siblings under the transaction itself, each get one. PostgreSQL keeps an
   * unreleased savepoint until COMMIT, and ROLLBACK TO a name goes to the most recent savepoint of that
   * name, i.e. the failing caller's own, so the callers before it keep their writes as with RELEASE.
   */
  async savepoint<T>(fn: (tx: AsyncStoreTx) => Promise<T>, release: boolean): Promise<T> {
    const name = `kds_sp${++this.#depth}`;
    // Savepoints nest: every notification made after this point is this savepoint's (or a child's).
    const notesBefore = this.#notes.length;
    const auditTailBefore = this.#auditTail;
    try {
      await this.count(`SAVEPOINT ${name}`, [], 'store transaction failed');
      let value: T;
      try {
        value = await fn(this as unknown as AsyncStoreTx);
      } catch (err) {
        // What fn threw is the caller's error; the rollback's own failure (a lost connection) surfaces
        // at the outer COMMIT.
        await this.exec(`ROLLBACK TO SAVEPOINT ${name}`, []).catch(() => undefined);
        // What the savepoint (and the ones inside it) notified is rolled back with it; what an earlier,
        // released sibling notified stays. So are its audit entries: the next append takes their ids.
        this.#notes.length = notesBefore;
        this.#auditTail = auditTailBefore;
        throw err;
      }
      if (release) await this.count(`RELEASE SAVEPOINT ${name}`, [], 'store transaction failed');
      return value;
    } finally {
      this.#depth -= 1;
    }
  }
}

/** $1-$8 of a certificate row's INSERT (serial, name, role, not_before, not_after, pem, fingerprint, issued_at). */
function certificateParams(c: IssuedCertificate): unknown[] {
  return [c.serialHex, c.name, c.role, c.notBefore, c.notAfter, c.pem, c.fingerprint256, c.issuedAt];
}

export class PgStore extends PgData implements AsyncStore {
  readonly engine = 'postgres' as const;
  readonly location: string;
  readonly schema: string;
  readonly #pool: pg.Pool;
  readonly #writeLockKey: string;
  readonly #statusListeners = new Set<(serialHex: string) => void>();
  #closed = false;

  readonly #channelPrefix: string;
  /** What the listening connection connects with: the pool's settings, without the pool. */
  readonly #listenConfig: pg.ClientConfig;
  readonly #listenCheckIntervalMs: number;

  private constructor(
    location: string,
    schema: string,
    pool: pg.Pool,
    listenConfig: pg.ClientConfig,
    listenCheckIntervalMs: number,
  ) {
    super();
    this.#listenConfig = listenConfig;
    this.#listenCheckIntervalMs = listenCheckIntervalMs;
    this.location = location;
    this.schema = schema;
    this.#pool = pool;
    this.#writeLockKey = lockKey(`kds:write:${schema}`);
    this.#channelPrefix = createHash('sha256').update(schema).digest('hex').slice(0, 12);
  }

  /** Open (creating the schema and migrating if needed) the store at a postgres:// URL. */
  static async open(url: string, opts: PgStoreOptions = {}): Promise<PgStore> {
    const { connectionString, schema, location } = parseStoreUrl(url);
    const queryTimeoutMs = Math.ceil(opts.queryTimeoutMs ?? PG_QUERY_TIMEOUT_MS);
    const listenCheckTimeoutMs = Math.ceil(opts.listenCheckTimeoutMs ?? PG_LISTEN_CHECK_TIMEOUT_MS);
    // Every connection works in the store's schema (created by the migration before first use), a session
    // frozen inside a transaction is ended by the server (PG_IDLE_IN_TRANSACTION_TIMEOUT_MS), and so is a
    // statement before its client gives up on it (PG_STATEMENT_TIMEOUT_SHARE).
    const options = (timeoutMs: number): string =>
      connectionOptions(
        schema,
        opts.idleInTransactionTimeoutMs ?? PG_IDLE_IN_TRANSACTION_TIMEOUT_MS,
        timeoutMs,
      );
    const base: pg.ClientConfig = {
      connectionString,
      connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
      types,
      application_name: opts.applicationName ?? 'kds',
      keepAlive: true,
      keepAliveInitialDelayMillis: PG_KEEPALIVE_IDLE_S * 1000,
      options: options(queryTimeoutMs),
    };
    const pool = new pg.Pool({
      ...base,
      max: opts.poolSize ?? PG_POOL_SIZE,
      // A statement with no answer in time fails (`unavailable`) and its connection is dropped.
      query_timeout: queryTimeoutMs,
    });
    // An idle connection the server closed (restart, admin shutdown) must not crash the process: the
    // pool drops it and the next call opens a new one (or fails with `unavailable`).
    pool.on('error', () => undefined);
    // The same for a connection while the pool hands it over: pg-pool drops its idle listener and gives
    // the client to a waiter synchronously, but the waiter's continuation (which adds its own listener,
    // see #transaction) runs a tick later. A FATAL the server sends in that window (pg_terminate_backend,
    // a fast shutdown: 57P01) would be an 'error' with no listener, i.e. a crashed node. The failure
    // still reaches the caller through the next statement on that connection.
    pool.on('connect', (client) => client.on('error', () => undefined));
    const store = new PgStore(
      location,
      schema,
      pool,
      { ...base, query_timeout: listenCheckTimeoutMs, options: options(listenCheckTimeoutMs) },
      opts.listenCheckIntervalMs ?? PG_LISTEN_CHECK_INTERVAL_MS,
    );
    try {
      if (opts.readOnly === true) await store.#checkSchema(base);
      else await store.#migrate(base);
      return store;
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw pgError(err, `cannot open the store ${location}`);
    }
  }

  protected exec: Exec = (sql, params) => this.#pool.query(prepared(sql, params));

  protected statusChanged(serialHex: string): void {
    this.notifyStatusChange(serialHex);
  }

  /** @internal for transactions of this store */
  notifyStatusChange(serialHex: string): void {
    for (const listener of this.#statusListeners) listener(serialHex);
  }

  onCertificateStatusChange(listener: (serialHex: string) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  /** The read-only open's check: the store's schema is this kds's, and nothing is written. */
  async #checkSchema(config: pg.ClientConfig): Promise<void> {
    const client = new pg.Client(config);
    client.on('error', () => undefined);
    await client.connect();
    try {
      const found = await client.query<{ version: string | null }>(
        'SELECT to_regclass($1)::text AS version',
        [`${this.schema}.kds_schema_version`],
      );
      const version =
        found.rows[0]?.version === null || found.rows[0]?.version === undefined
          ? 0
          : ((await client.query<{ version: number }>('SELECT version FROM kds_schema_version')).rows[0]
              ?.version ?? 0);
      checkSchemaVersion(version, PG_MIGRATIONS.length, { migrating: false, location: this.location });
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async #migrate(config: pg.ClientConfig): Promise<void> {
    // A connection of its own, without the pool's bound on each statement: a migration takes as long as
    // the data it rewrites, and a node starting while another migrates waits for it here.
    const client = new pg.Client(config);
    client.on('error', () => undefined); // as in transaction(): the failing query reports it
    await client.connect();
    try {
      await client.query('BEGIN');
      // A migration may compute between statements for as long as the data takes (the audit chain's
      // hashes): it is not a frozen node, and no other write runs until it is done anyway. Nor is its
      // statements' time bounded (a rewrite of a large table; the wait below while another node migrates),
      // whatever the connection's or the database's default statement_timeout.
      await client.query(
        'SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL statement_timeout = 0',
      );
      // Nodes starting at once: one migrates, the others wait here and then find nothing to do.
      await client.query('SELECT pg_advisory_xact_lock($1)', [lockKey(`kds:migrate:${this.schema}`)]);
      // Looked up before any DDL: a store already at this version (every open but the first and an
      // upgrade's) creates and writes nothing, so a node may run as a role without CREATE (PostgreSQL
      // checks that privilege before IF NOT EXISTS; docs/deployment.md "Database roles").
      // A schema made beforehand by a database administrator is used as it is (CREATE SCHEMA wants CREATE
      // on the database even when the schema exists).
      const found = await client.query<{ schema: boolean; version: string | null }>(
        `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema,
                to_regclass($2)::text AS version`,
        [this.schema, `${this.schema}.kds_schema_version`],
      );
      let before = 0;
      if (found.rows[0]?.schema !== true) await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
      if (found.rows[0]?.version === null || found.rows[0]?.version === undefined) {
        await client.query(
          `CREATE TABLE IF NOT EXISTS kds_schema_version (id BIGINT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)`,
        );
      } else {
        before =
          (await client.query<{ version: number }>('SELECT version FROM kds_schema_version')).rows[0]
            ?.version ?? 0;
      }
      checkSchemaVersion(before, PG_MIGRATIONS.length, { migrating: true });
      // Every pending migration and the version bump in this one transaction (PostgreSQL's DDL is
      // transactional): an upgrade that fails at any step leaves the store exactly as it was, at the
      // version the older nodes still open.
      if (before < PG_MIGRATIONS.length) {
        for (const m of PG_MIGRATIONS) {
          if (m.version <= before) continue;
          if (typeof m.up === 'string') await client.query(m.up);
          else await m.up(client);
        }
        await client.query(
          `INSERT INTO kds_schema_version (id, version) VALUES (1, $1)
           ON CONFLICT (id) DO UPDATE SET version = excluded.version`,
          [PG_MIGRATIONS.length],
        );
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async schemaVersion(): Promise<number> {
    const row = await this.row<{ version: number }>('SELECT version FROM kds_schema_version', []);
    return row?.version ?? 0;
  }

  async transaction<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T> {
    // Transactions wait for a slot HERE, not in the pool: the pool's connect timeout must measure the
    // database (a slow or refused connection is `unavailable`), not the queue of a busy node. They run
    // one at a time across nodes anyway (the write lock), so a few slots keep the lock busy and leave
    // the other connections to reads.
    await this.#txSlots.acquire();
    try {
      return await this.#transaction(fn);
    } finally {
      this.#txSlots.release();
    }
  }

  async #transaction<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw pgError(err, 'store transaction failed');
    }
    let tx: PgTx | undefined;
    let broken = false;
    // A checked-out connection the server terminates between two statements emits 'error' on the client
    // (the pool listens only on idle ones): without a listener that is an uncaught exception, i.e. a
    // crashed node. The next statement then fails with the same error, which is what the caller sees.
    const onError = (): void => {
      broken = true;
    };
    client.on('error', onError);
    try {
      try {
        // One round trip (the simple query protocol runs the three statements in order): the write lock
        // is waited for here, and the audit chain's tail is read after it was taken, by a statement of
        // its own, i.e. on a snapshot that sees every transaction that held the lock before (PgTx).
        // READ COMMITTED whatever the server's default: a snapshot per statement is what makes a read
        // after the lock see the previous holder's writes (a REPEATABLE READ snapshot would be taken by
        // the lock's statement, before the wait).
        const results = (await client.query(
          `BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock('${this.#writeLockKey}'::bigint);
           SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1`,
        )) as unknown as pg.QueryResult<{ id: number; hash: string | null }>[];
        tx = new PgTx(client, this, results[2]?.rows[0] ?? null);
      } catch (err) {
        broken = true;
        throw pgError(err, 'store transaction failed');
      }
      let value: T;
      try {
        value = await fn(tx as unknown as AsyncStoreTx);
      } catch (err) {
        tx.open = false;
        if (err instanceof KdsError && err.code === 'unavailable') {
          // The connection is lost or has gone quiet: a ROLLBACK would wait on it too. Dropped instead;
          // the server rolls back when the session ends (or is ended, PG_IDLE_IN_TRANSACTION_TIMEOUT_MS).
          broken = true;
        } else {
          await client.query('ROLLBACK').catch(() => {
            broken = true;
          });
        }
        throw err;
      }
      tx.open = false;
      try {
        await client.query(tx.commitStatement());
      } catch (err) {
        broken = true;
        // A COMMIT whose connection was lost has an unknown outcome: say so.
        throw pgError(err, 'store commit failed (outcome unknown if the connection was lost)');
      }
      return value;
    } finally {
      if (tx !== undefined) tx.open = false;
      client.off('error', onError);
      // A connection in an unknown state is destroyed, not returned to the pool.
      client.release(broken ? true : undefined);
    }
  }

  /**
   * The group commit: callers queued while a batch runs form the next one, one transaction (one write
   * lock acquisition, one COMMIT and its WAL flush) for all of them, each in its own savepoint. Every
   * caller's promise settles after that COMMIT; a caller whose fn throws is rolled back alone.
   */
  batch<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  #queue: BatchItem[] = [];
  #flushing = false;
  #observer: ((callers: number, durationMs: number) => void) | undefined;

  observeCommits(observer: ((callers: number, durationMs: number) => void) | undefined): void {
    this.#observer = observer;
  }
  readonly #txSlots = new Slots(TX_SLOTS);

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        if (batch.length === 1) {
          await this.#runAlone(batch[0]!);
          continue;
        }
        let outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[];
        const startedAt = performance.now();
        try {
          outcomes = await this.transaction(async (tx) => {
            const out: typeof outcomes = [];
            // Once a caller failed as `unavailable` (the database did not answer in time, most often a
            // lock held by another session; or the connection is gone), the callers after it fail with
            // the same error without running: each would wait on that lock in turn, for the statement
            // bound, with the store's write lock held, past the 30 s its client waits.
            let unanswered: KdsError | undefined;
            for (const item of batch) {
              if (unanswered !== undefined) {
                out.push({ ok: false, err: unanswered });
                continue;
              }
              try {
                out.push({ ok: true, value: await (tx as unknown as PgTx).savepoint(item.fn, false) });
              } catch (err) {
                out.push({ ok: false, err });
                if (err instanceof KdsError && err.code === 'unavailable') unanswered = err;
              }
            }
            return out;
          });
        } catch (err) {
          for (const item of batch) item.reject(err);
          continue;
        }
        this.#observer?.(outcomes.filter((o) => o.ok).length, performance.now() - startedAt);
        batch.forEach((item, i) => {
          const o = outcomes[i]!;
          if (o.ok) item.resolve(o.value);
          else item.reject(o.err);
        });
      }
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * A batch of one (a write at light load): its own transaction, without the savepoint that isolates it
   * from other callers. That is two round trips fewer (SAVEPOINT, RELEASE) under the write lock; a throw
   * rolls the whole transaction back, which is exactly what the savepoint's rollback left committed.
   */
  async #runAlone(item: BatchItem): Promise<void> {
    const startedAt = performance.now();
    let value: unknown;
    try {
      value = await this.transaction(item.fn);
    } catch (err) {
      item.reject(err);
      return;
    }
    this.#observer?.(1, performance.now() - startedAt);
    item.resolve(value);
  }

  async changeCounter(): Promise<number> {
    // The position of the server's WAL: it moves with every commit of any connection (including ours and
    // other databases': caches are emptied more often than needed, never less), read without touching a
    // table.
    // Through row(): a lost database is `unavailable` here too. This runs before every handshake's
    // certificate check, where node-postgres's own error would have become `internal`.
    const row = (await this.row<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn', []))!;
    const [hi, lo] = row.lsn.split('/').map((h) => parseInt(h, 16));
    return hi! * 2 ** 32 + lo!;
  }

  async databaseTime(): Promise<number> {
    // clock_timestamp(), not now(): now() is the start of the transaction, which a pooled statement
    // outside one makes the same thing, but the reading must be the moment the server answered.
    const row = (await this.row<{ ms: string }>(
      'SELECT (extract(epoch FROM clock_timestamp()) * 1000)::text AS ms',
      [],
    ))!;
    return Number(row.ms);
  }

  appendAudit(e: AuditEntry): Promise<number> {
    return this.transaction((tx) => tx.appendAudit(e));
  }

  insertIssuedCertificate(c: IssuedCertificate, audit: readonly AuditEntry[] = []): Promise<void> {
    // Entries need the write lock (the chain): then a transaction of its own.
    if (audit.length === 0) return this.insertCertificate(c);
    return this.transaction((tx) => tx.insertIssuedCertificate(c, audit));
  }

  /** The PostgreSQL channel of a store channel: per schema, so two stores in one database stay apart. */
  pgChannel(channel: string): string {
    return `kds_${this.#channelPrefix}_${channel}`;
  }

  readonly #listeners = new Map<string, Set<StoreListener>>();
  #listenClient: pg.Client | undefined;
  #listenReady: Promise<pg.Client> | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  /** The listening connection was lost and is not back yet (attempts are scheduled). */
  #reconnecting = false;

  async listen(channel: string, listener: StoreListener): Promise<() => Promise<void>> {
    checkNotification(channel);
    const name = this.pgChannel(channel);
    let set = this.#listeners.get(name);
    const first = set === undefined;
    if (set === undefined) this.#listeners.set(name, (set = new Set()));
    set.add(listener);
    try {
      const client = await this.#listenConnection();
      if (first) await client.query(`LISTEN ${name}`);
    } catch (err) {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(name);
      throw pgError(err, 'cannot listen');
    }
    return async () => {
      const current = this.#listeners.get(name);
      if (current === undefined || !current.delete(listener) || current.size > 0) return;
      this.#listeners.delete(name);
      await this.#listenClient?.query(`UNLISTEN ${name}`).catch(() => undefined);
    };
  }

  /** The one connection of this store that LISTENs (never a pooled one: LISTEN belongs to a session). */
  #listenConnection(): Promise<pg.Client> {
    this.#listenReady ??= (async () => {
      const client = new pg.Client(this.#listenConfig);
      client.on('notification', (msg) => {
        if (msg.payload === undefined) return;
        for (const l of this.#listeners.get(msg.channel) ?? []) {
          try {
            l.onNotify(msg.payload);
          } catch {
            // a listener's failure is its own; the others still hear
          }
        }
      });
      client.on('error', (err: Error) => this.#listenLost(client, err.message));
      client.on('end', () => this.#listenLost(client, 'the connection closed'));
      try {
        await client.connect();
      } catch (err) {
        this.#listenReady = undefined;
        throw err;
      }
      this.#listenClient = client;
      this.#checkListening(client);
      return client;
    })();
    return this.#listenReady;
  }

  /**
   * Ask the listening connection for a round trip every #listenCheckIntervalMs while it is the current
   * one: a path that stopped forwarding without closing never gives an `error` or `end`
   * (PG_LISTEN_CHECK_*). No answer in time (the client's query_timeout) or any failure is a lost
   * connection. The round trip is a LISTEN on a channel nobody notifies rather than a SELECT 1: the
   * connection's last statement stays a LISTEN, which is how operators find it in pg_stat_activity
   * (docs/deployment.md), and a repeated LISTEN is a no-op for the server.
   */
  #checkListening(client: pg.Client): void {
    const check = `LISTEN ${this.pgChannel('listen_check')}`;
    let checking = false;
    const timer = setInterval(() => {
      if (this.#listenClient !== client) {
        clearInterval(timer);
        return;
      }
      if (checking) return;
      checking = true;
      client.query(check).then(
        () => {
          checking = false;
        },
        (err: Error) => {
          clearInterval(timer);
          const timeout = this.#listenConfig.query_timeout;
          this.#listenLost(
            client,
            /read timeout/i.test(err.message)
              ? `the connection went quiet: no answer within ${timeout} ms`
              : err.message,
          );
          // Its socket too: ending it politely would wait on the same dead path (the server ends its
          // backend by TCP keepalive, PG_KEEPALIVE_*).
          client.connection.stream.destroy();
        },
      );
    }, this.#listenCheckIntervalMs);
    timer.unref();
    client.once('end', () => clearInterval(timer));
  }

  /**
   * The listening connection is gone (PostgreSQL restarted, the connection was killed, or it stopped
   * answering: #checkListening): reconnect,
   * LISTEN again on every channel, then tell every listener it may have missed notifications (onGap).
   */
  #listenLost(client: pg.Client, reason: string): void {
    if (this.#listenClient !== client) return;
    this.#listenClient = undefined;
    this.#listenReady = undefined;
    client.end().catch(() => undefined);
    // A connection lost while reconnecting (killed between its connect and its LISTEN): the attempt in
    // progress fails and schedules the next one; one chain of attempts, one onLost per loss.
    if (this.#closed || this.#reconnecting) return;
    this.#reconnecting = true;
    for (const set of this.#listeners.values()) {
      for (const l of set) {
        try {
          l.onLost?.(reason);
        } catch {
          // a listener's failure is its own
        }
      }
    }
    const attempt = (delay: number): void => {
      this.#reconnectTimer = setTimeout(() => {
        this.#reconnectTimer = undefined;
        if (this.#closed || this.#listeners.size === 0) {
          this.#reconnecting = false;
          return;
        }
        void (async () => {
          let c: pg.Client | undefined;
          try {
            c = await this.#listenConnection();
            for (const name of this.#listeners.keys()) await c.query(`LISTEN ${name}`);
          } catch {
            // A connection that came up but could not LISTEN is not kept (nor leaked): the next attempt
            // opens a fresh one.
            if (c !== undefined && this.#listenClient === c) {
              this.#listenClient = undefined;
              c.end().catch(() => undefined);
            }
            this.#listenReady = undefined;
            attempt(Math.min(delay * 2, LISTEN_RETRY_MAX_MS));
            return;
          }
          this.#reconnecting = false;
          for (const set of this.#listeners.values()) {
            for (const l of set) {
              try {
                l.onGap?.();
              } catch {
                // as above
              }
            }
          }
        })();
      }, delay);
      this.#reconnectTimer.unref();
    };
    attempt(LISTEN_RETRY_MIN_MS);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    const listening = this.#listenClient;
    this.#listenClient = undefined;
    await listening?.end().catch(() => undefined);
    await this.#pool.end();
  }
}

/** Reconnection of the listening connection: from 100 ms, doubling, at most 2 s apart. */
const LISTEN_RETRY_MIN_MS = 100;
const LISTEN_RETRY_MAX_MS = 2_000;

/** Concurrent transactions per node (each holds a connection; they queue for the write lock anyway). */
const TX_SLOTS = 3;

interface BatchItem {
  fn: (tx: AsyncStoreTx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** A counting semaphore (FIFO). */
class Slots {
  #free: number;
  readonly #waiters: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }

  acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next !== undefined) next();
    else this.#free += 1;
  }
}

/** A 64-bit advisory lock key (as a decimal string) derived from a name. */
function lockKey(name: string): string {
  return createHash('sha256').update(name).digest().readBigInt64BE(0).toString();
}

/**
 * Split a store URL into what pg connects to and the schema (`?schema=NAME`, default `public`); the
 * location shown to users has no password.
 */
function parseStoreUrl(url: string): { connectionString: string; schema: string; location: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InputError('bad_request', 'the store URL is not a URL (expected postgres://user@host/db)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new InputError('bad_request', `the store URL must start with postgres:// (got ${u.protocol}//)`);
  }
  const schema = u.searchParams.get('schema') ?? 'public';
  if (!SCHEMA_NAME.test(schema)) {
    throw new InputError('bad_request', 'the store URL schema must be a lower-case SQL identifier');
  }
  u.searchParams.delete('schema');
  const connectionString = u.toString();
  const shown = new URL(connectionString);
  if (shown.password !== '') shown.password = '***';
  if (schema !== 'public') shown.searchParams.set('schema', schema);
  return { connectionString, schema, location: shown.toString() };
}

/**
 * A statement the database did not finish in time, though it answers: PostgreSQL ended it (57014
 * query_canceled: the connection's statement_timeout, PG_STATEMENT_TIMEOUT_SHARE, or an administrator's
 * pg_cancel_backend; 55P03 lock_not_available: a lock_timeout) or node-postgres stopped waiting for its
 * answer (query_timeout). Most often another session holds a lock it needs. Transient like an outage
 * (`unavailable`: the caller may retry later, clients go on to another node), not a fault to alert on,
 * and said as what it is: the database is up. Undefined for any other failure.
 */
function notInTime(err: unknown): string | undefined {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const message = typeof e?.message === 'string' ? e.message : '';
  if (e?.code === '57014') {
    return /statement timeout/i.test(message)
      ? 'the database did not answer in time (statement timeout: a lock held by another session?)'
      : `the database cancelled the statement (${message})`;
  }
  if (e?.code === '55P03')
    return 'the database did not answer in time (lock timeout: a lock held by another session?)';
  if (err instanceof Error && e?.code === undefined && /Query read timeout/i.test(message)) {
    return 'the database did not answer in time (no reply on the connection)';
  }
  return undefined;
}

/**
 * Connection-level failures (SQLSTATE classes 08 and 57P, socket errors): the database is unreachable.
 * So is 53300 too_many_connections (max_connections or the role's CONNECTION LIMIT reached: every slot is
 * taken, the call may succeed once one frees, as for a database that refuses connections). The rest of
 * class 53 (disk full, out of memory, a configuration limit) is not: it needs an operator, so it stays
 * `store_error`, which is alerted on (docs/operations.md).
 */
function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') {
    // node-postgres's own errors for a connection that died or could not be had.
    return (
      err instanceof Error &&
      /Connection terminated|connection error and is not queryable|Client was closed|timeout exceeded when trying to connect/i.test(
        err.message,
      )
    );
  }
  return (
    code.startsWith('08') ||
    code === '53300' ||
    code === '57P01' ||
    code === '57P02' ||
    code === '57P03' ||
    // idle_session_timeout (PostgreSQL 14+, a database or role default an administrator may set): the
    // server closed an idle pooled connection; the pool opens another. Not overridden per connection,
    // because a server before 14 refuses a connection that names the setting.
    code === '57P05' ||
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'ETIMEDOUT' ||
    code === 'ENOTFOUND' ||
    code === 'EPIPE'
  );
}

function isUniqueViolation(err: unknown, constraint: string): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | undefined;
  return e?.code === '23505' && e.constraint === constraint;
}

export function pgError(err: unknown, what: string): KdsError {
  if (err instanceof KdsError) return err;
  const late = notInTime(err);
  if (late !== undefined) {
    return new EnvironmentError('unavailable', `${late}: ${what}`, undefined, { cause: err });
  }
  if (isUnavailable(err)) {
    return new EnvironmentError('unavailable', `the database is unavailable: ${what}`, undefined, {
      cause: err,
    });
  }
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const detail = typeof e?.code === 'string' ? `${e.code}: ${String(e.message)}` : String(err);
  return new EnvironmentError('store_error', `${what} (${detail})`, undefined, { cause: err });
}
