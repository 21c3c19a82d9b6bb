// Certificates, renewals, revocations and the CRL state on SQLite: the CA's tables (docs/ca.md).
// The status listeners live here because only these methods change a certificate's status.
import { EnvironmentError, PolicyError } from '../../shared/errors.js';
import {
  certificateListingOf,
  certificateSummaryOf,
  certOf,
  newestCertificatesSql,
  statusCountsOf,
  type CertificateListingRow,
  crlStateOf,
  renewalOf,
  revocationOf,
  type CertificateSummaryRow,
  type CertRow,
  type CrlStateRow,
  type RenewalRow,
  type RevocationRow,
  type ListedRevocationRow,
  listedRevocationOf,
  listedRevocationsSql,
} from './rows.js';
import { isConstraint, storeError, type SqliteSql } from './sqlite-sql.js';
import type {
  ActiveCertificateSummary,
  CertificateFilter,
  CertificateListing,
  CertificateRecord,
  CertificateStanding,
  CertificateStatus,
  RenewalInstall,
  RenewalRecord,
  CrlState,
  IssuedCertificate,
  NewRevocation,
  RevocationRecord,
  ListedRevocation,
} from './store.js';

const LISTED_REVOCATIONS_SQL = listedRevocationsSql('?');
const NEWEST_CERTIFICATES_SQL = newestCertificatesSql('?');
/** Entries of certificates_by_status (status, rowid) are in rowid order within a status: no sort. */
export const CERTIFICATE_SERIALS_SQL =
  'SELECT serial FROM certificates INDEXED BY certificates_by_status WHERE status = ? ORDER BY id';
/** The covering index certificates_by_status (migration 10): no certificate row (nor its PEM) is read. */
export const CERTIFICATE_STATUS_COUNTS_SQL =
  'SELECT status, count(*) AS n FROM certificates INDEXED BY certificates_by_status GROUP BY status';

export class SqliteCertificates {
  readonly #sql: SqliteSql;

  constructor(sql: SqliteSql) {
    this.#sql = sql;
  }

  // certificates

  insertIssuedCertificate(c: IssuedCertificate): void {
    try {
      this.#sql
        .statement(
          `INSERT INTO certificates (serial, name, role, not_before, not_after, pem, fingerprint, status, issued_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?)`,
        )
        .run(c.serialHex, c.name, c.role, c.notBefore, c.notAfter, c.pem, c.fingerprint256, c.issuedAt);
    } catch (err) {
      // certificates_one_active_per_name (a partial UNIQUE index on name) reports "certificates.name".
      if (isConstraint(err, 'certificates.name')) {
        throw new PolicyError('already_active', 'this name already has an active certificate (use renew)');
      }
      throw storeError(err, 'cannot store the certificate');
    }
  }

  setCertificateStatus(serialHex: string, status: 'revoked' | 'superseded'): void {
    const changes = this.#sql.run(
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
    return certOf(this.#sql.get<CertRow>('SELECT * FROM certificates WHERE serial = ?', serialHex));
  }

  getCertificateStanding(serialHex: string): CertificateStanding | undefined {
    const row = this.#sql.get<{ status: CertificateStatus; not_before: number; not_after: number }>(
      'SELECT status, not_before, not_after FROM certificates WHERE serial = ?',
      serialHex,
    );
    return row === undefined
      ? undefined
      : { status: row.status, notBefore: row.not_before, notAfter: row.not_after };
  }

  getCertificateByFingerprint(fingerprint256: string): CertificateRecord | undefined {
    return certOf(this.#sql.get<CertRow>('SELECT * FROM certificates WHERE fingerprint = ?', fingerprint256));
  }

  activeCertificate(name: string): CertificateRecord | undefined {
    return certOf(
      this.#sql.get<CertRow>(`SELECT * FROM certificates WHERE name = ? AND status = 'active'`, name),
    );
  }

  activeCertificateSummary(name: string): ActiveCertificateSummary | undefined {
    return certificateSummaryOf(
      this.#sql.get<CertificateSummaryRow>(
        `SELECT serial, role, not_before, not_after FROM certificates WHERE name = ? AND status = 'active'`,
        name,
      ),
    );
  }

  latestCertificate(name: string): CertificateRecord | undefined {
    return certOf(
      this.#sql.get<CertRow>(
        `SELECT * FROM certificates WHERE name = ? AND status <> 'pending' ORDER BY id DESC LIMIT 1`,
        name,
      ),
    );
  }

  listCertificates(filter: CertificateFilter = {}): CertificateRecord[] {
    const rows = this.#sql.all<CertRow>(
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
      this.#sql
        .statement(
          `INSERT INTO certificates (serial, name, role, not_before, not_after, pem, fingerprint, status, issued_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)`,
        )
        .run(c.serialHex, c.name, c.role, c.notBefore, c.notAfter, c.pem, c.fingerprint256, c.issuedAt);
      this.#sql
        .statement('INSERT INTO renewals (serial, replaces, name, requested_at) VALUES (?, ?, ?, ?)')
        .run(c.serialHex, replaces, c.name, requestedAt);
    } catch (err) {
      throw storeError(err, 'cannot store the renewal');
    }
  }

  getRenewal(serialHex: string): RenewalRecord | undefined {
    return renewalOf(this.#sql.get<RenewalRow>('SELECT * FROM renewals WHERE serial = ?', serialHex));
  }

  latestRenewalOf(serialHex: string): RenewalRecord | undefined {
    return renewalOf(
      this.#sql.get<RenewalRow>(
        'SELECT * FROM renewals WHERE replaces = ? ORDER BY requested_at DESC, rowid DESC LIMIT 1',
        serialHex,
      ),
    );
  }

  countRenewalsSince(name: string, since: number, until: number): number {
    return this.#sql.get<{ n: number }>(
      'SELECT count(*) AS n FROM renewals WHERE name = ? AND requested_at >= ? AND requested_at <= ?',
      name,
      since,
      until,
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
      this.#sql.run(
        `UPDATE certificates SET status = 'active' WHERE serial = ? AND status = 'pending'`,
        serialHex,
      ) !== 1
    ) {
      throw new EnvironmentError('store_error', `renewal ${serialHex} is not pending`);
    }
    this.#sql.run('UPDATE renewals SET installed_at = ? WHERE serial = ?', at, serialHex);
    const abandoned = this.#sql
      .all<{ serial: string }>(
        `SELECT r.serial FROM renewals r JOIN certificates c ON c.serial = r.serial
       WHERE r.replaces = ? AND r.installed_at IS NULL AND c.status = 'pending'`,
        renewal.replaces,
      )
      .map((r) => r.serial);
    for (const serial of abandoned) {
      this.#sql.run(
        `UPDATE certificates SET status = 'superseded' WHERE serial = ? AND status = 'pending'`,
        serial,
      );
    }
    for (const serial of [serialHex, ...abandoned])
      for (const listener of this.#statusListeners) listener(serial);
    return { superseded: renewal.replaces, abandoned };
  }

  listNewestCertificates(limit: number): CertificateListing[] {
    return certificateListingOf(this.#sql.all<CertificateListingRow>(NEWEST_CERTIFICATES_SQL, limit));
  }

  listCertificateSerials(status: CertificateStatus): string[] {
    return this.#sql.all<{ serial: string }>(CERTIFICATE_SERIALS_SQL, status).map((r) => r.serial);
  }

  countCertificates(): number {
    return this.#sql.get<{ n: number }>('SELECT count(*) AS n FROM certificates')!.n;
  }

  countCertificatesByStatus(): Partial<Record<CertificateStatus, number>> {
    return statusCountsOf(
      this.#sql.all<{ status: CertificateStatus; n: number }>(CERTIFICATE_STATUS_COUNTS_SQL),
    );
  }

  // revocations

  insertRevocation(r: NewRevocation): RevocationRecord {
    const id = this.#sql.insert(
      'INSERT INTO revocations (serial, revoked_at, reason) VALUES (?, ?, ?)',
      r.serialHex,
      r.revokedAt,
      r.reason,
    );
    return { id, serialHex: r.serialHex, revokedAt: r.revokedAt, reason: r.reason };
  }

  getRevocation(serialHex: string): RevocationRecord | undefined {
    return revocationOf(
      this.#sql.get<RevocationRow>('SELECT * FROM revocations WHERE serial = ?', serialHex),
    );
  }

  listRevocations(afterId = 0): ListedRevocation[] {
    return this.#sql.all<ListedRevocationRow>(LISTED_REVOCATIONS_SQL, afterId).map(listedRevocationOf);
  }

  countRevocations(): number {
    return this.#sql.get<{ n: number }>('SELECT count(*) AS n FROM revocations')!.n;
  }

  lastRevocationId(): number {
    return this.#sql.get<{ id: number | null }>('SELECT max(id) AS id FROM revocations')!.id ?? 0;
  }

  // CRL

  getCrlState(): CrlState | undefined {
    return crlStateOf(this.#sql.get<CrlStateRow>('SELECT * FROM crl_state WHERE id = 1'));
  }

  saveCrlState(s: CrlState): void {
    this.#sql.run(
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
}
