// The row shapes of the store's tables and their mapping to the Store's records, shared by both engines.
// A row here is neutral: snake_case columns as the schema names them (migrations.ts, pg-migrations.ts),
// integers as JS numbers, binary columns as Buffers. Both drivers already deliver that shape
// (better-sqlite3 natively; pg-store.ts parses int8 to number and bytea to Buffer), so each store only
// adapts its driver's quirks before calling a mapper here, and the two can no longer drift apart.
// The other direction too where both engines write the same values (a new key, an audit entry): each
// keeps its own SQL (placeholders, RETURNING, id allocation) and binds the values built here.
import { auditEntryHash } from '../../shared/audit/chain.js';
import type {
  ActiveCertificateSummary,
  AuditEntry,
  AuditHeadRecord,
  AuditRecord,
  CertificateListing,
  CertificateRecord,
  CertificateStatus,
  CrlState,
  DeliveryKind,
  DeliveryRecord,
  EnrollmentTokenRecord,
  ListedRevocation,
  NewSymKey,
  PrekeyRecord,
  RenewalRecord,
  RevocationRecord,
  SymKeyMode,
  SymKeyRecord,
  SymKeyState,
} from './store.js';

export interface CertRow {
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

export interface RenewalRow {
  serial: string;
  replaces: string;
  name: string;
  requested_at: number;
  installed_at: number | null;
}

export interface RevocationRow {
  id: number;
  serial: string;
  revoked_at: number;
  reason: string;
}

export interface CrlStateRow {
  crl_number: number;
  pem: string;
  this_update: number;
  next_update: number;
  last_revocation_id: number;
}

export interface TokenRow {
  id: number;
  token_hash: string;
  name: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  created_by: string;
  cert_serial: string | null;
}

export interface AuditRow {
  id: number;
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  /** The details as stored: JSON text. */
  detail: string;
  prev_hash: string | null;
  hash: string | null;
}

export interface AuditHeadRow {
  id: number;
  entry_id: number;
  hash: string;
  signed_at: number;
  cert_serial: string;
  signature: Buffer;
}

export interface SymKeyRow {
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

export interface PrekeyRow {
  owner: string;
  cert_serial: string;
  prekey_id: string;
  public_key: Buffer;
  signature: Buffer;
  created_at: number;
}

export interface DeliveryRow {
  id: number;
  recipient: string;
  kind: DeliveryKind;
  key_serial: string;
  payload: Buffer | null;
  sender: string | null;
  created_at: number;
}

export function certOf(r: CertRow | undefined): CertificateRecord | undefined {
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

/** The columns ActiveCertificateSummary is read from. */
export interface CertificateSummaryRow {
  serial: string;
  role: ActiveCertificateSummary['role'];
  not_before: number;
  not_after: number;
}

export function certificateSummaryOf(
  r: CertificateSummaryRow | undefined,
): ActiveCertificateSummary | undefined {
  if (r === undefined) return undefined;
  return { serialHex: r.serial, role: r.role, notBefore: r.not_before, notAfter: r.not_after };
}

/** The columns a CertificateListing is read from. */
export type CertificateListingRow = Pick<CertRow, 'serial' | 'name' | 'role' | 'status'>;

/**
 * The newest certificates that are not pending, newest first (callers reverse): the primary key read
 * backwards, stopped at the limit; pending rows are the few renewals in flight. `limit` is the engine's
 * placeholder.
 */
export function newestCertificatesSql(limit: string): string {
  return `SELECT serial, name, role, status FROM certificates WHERE status <> 'pending' ORDER BY id DESC LIMIT ${limit}`;
}

/** Oldest first, as the listing returns them. */
export function certificateListingOf(rows: CertificateListingRow[]): CertificateListing[] {
  const out: CertificateListing[] = [];
  for (let i = rows.length - 1; i >= 0; i--) {
    const r = rows[i]!;
    out.push({ serialHex: r.serial, name: r.name, role: r.role, status: r.status });
  }
  return out;
}

/** Rows of `SELECT status, count(*) AS n ... GROUP BY status` as a record. */
export function statusCountsOf(
  rows: { status: CertificateStatus; n: number | string }[],
): Partial<Record<CertificateStatus, number>> {
  const out: Partial<Record<CertificateStatus, number>> = {};
  for (const r of rows) out[r.status] = Number(r.n);
  return out;
}

export function renewalOf(row: RenewalRow | undefined): RenewalRecord | undefined {
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

/** A revocation row joined with its certificate's not_after (LISTED_REVOCATIONS_SQL). */
export interface ListedRevocationRow extends RevocationRow {
  cert_not_after: number | null;
}

export function listedRevocationOf(r: ListedRevocationRow): ListedRevocation {
  return { ...revocationOf(r)!, certNotAfter: r.cert_not_after };
}

/**
 * deleteExpiredSymKeys on both engines. Through sym_keys_by_state (state, expires_at): one index range
 * per state, never a scan of the table, and at most `limit` rows per statement so a backlog is deleted
 * in short transactions.
 */
export function deleteExpiredKeysSql(before: string, limit: string): string {
  return `DELETE FROM sym_keys WHERE serial IN (
      SELECT serial FROM sym_keys
      WHERE state IN ('active', 'revoked', 'expired', 'superseded') AND expires_at < ${before}
      LIMIT ${limit})`;
}

/** The same statement on both engines but for the placeholder. */
export function listedRevocationsSql(placeholder: string): string {
  return `SELECT r.id, r.serial, r.revoked_at, r.reason, c.not_after AS cert_not_after
      FROM revocations r LEFT JOIN certificates c ON c.serial = r.serial
      WHERE r.id > ${placeholder} ORDER BY r.id`;
}

export function revocationOf(r: RevocationRow | undefined): RevocationRecord | undefined {
  return r === undefined
    ? undefined
    : { id: r.id, serialHex: r.serial, revokedAt: r.revoked_at, reason: r.reason };
}

export function crlStateOf(row: CrlStateRow | undefined): CrlState | undefined {
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

export function tokenOf(r: TokenRow | undefined): EnrollmentTokenRecord | undefined {
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
        certSerial: r.cert_serial,
      };
}

export function auditOf(r: AuditRow): AuditRecord {
  return {
    id: r.id,
    at: r.at,
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

export function auditHeadOf(r: AuditHeadRow): AuditHeadRecord {
  return {
    id: r.id,
    entryId: r.entry_id,
    hash: r.hash,
    signedAt: r.signed_at,
    certSerial: r.cert_serial,
    signature: r.signature,
  };
}

export function symKeyOf(r: SymKeyRow | undefined): SymKeyRecord | undefined {
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

export function prekeyOf(row: PrekeyRow): PrekeyRecord {
  return {
    owner: row.owner,
    certSerial: row.cert_serial,
    prekeyId: row.prekey_id,
    publicKey: row.public_key,
    signature: row.signature,
    createdAt: row.created_at,
  };
}

export function deliveryOf(r: DeliveryRow): DeliveryRecord {
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

/** Audit details must never carry secrets: refuse keys that name one (a cheap, explicit tripwire). */
const SECRET_KEY = /^(pass(word|phrase)?|secret|token|key|private_?key(_?pem)?|key_?pem)$/i;

/** The details column of an audit entry (JSON text), after refusing any key that names a secret. */
export function auditDetailText(e: AuditEntry): string {
  const detail = e.detail ?? {};
  for (const key of Object.keys(detail)) {
    if (SECRET_KEY.test(key)) throw new Error(`audit detail key "${key}" looks like a secret`);
  }
  return JSON.stringify(detail);
}

/**
 * The values of an audit_log row, in column order (id, at, actor, action, subject, detail, prev_hash,
 * hash), its hash chained on prevHash. The hash covers the details parsed back from detailText, so
 * it covers exactly what a reader gets.
 */
export function auditRowValues(e: AuditEntry, id: number, prevHash: string, detailText: string): unknown[] {
  const hash = auditEntryHash(prevHash, {
    id,
    at: e.at,
    actor: e.actor,
    action: e.action,
    subject: e.subject ?? null,
    detail: JSON.parse(detailText) as Record<string, unknown>,
  });
  return [id, e.at, e.actor, e.action, e.subject ?? null, detailText, prevHash, hash];
}

/**
 * The values of a new sym_keys row, in the column order of both stores' INSERT (serial, mode, owner,
 * owner_cert, peer, peer_cert, created_at, expires_at, state, replaces, digest, prekey_id,
 * prekey_public, wrapped_key, kek_version).
 */
export function symKeyInsertValues(k: NewSymKey): unknown[] {
  return [
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
  ];
}
