// The Store: everything the KDC/CA persists goes through this interface, so callers never see SQL and a
// PostgreSQL backend could be added as a second implementation (sqlite-store.ts is the first) without
// touching them. All methods are synchronous (better-sqlite3); multi-step operations run inside
// `transaction(fn)`, which takes the write lock up front (BEGIN IMMEDIATE) so that a read-then-write
// sequence is never interleaved with another process's write.
//
// Adding a feature that persists something: append a migration to migrations.ts,
// add the record type and methods here, implement them in the sqlite-*.ts module of the table
// (delegated from sqlite-store.ts). Never edit a shipped migration; never add an UPDATE or DELETE
// path to the audit log or to revocations.
import type { AuditHeadRecord } from '../../shared/audit/chain.js';
import { SqliteStore, type StoreOptions } from './sqlite-store.js';

export type { StoreOptions } from './sqlite-store.js';

export type CertificateRole = 'client' | 'admin' | 'server' | 'ca';
/**
 * `pending`: the serial is reserved (inserted before signing, RFC 5280 4.1.2.2 "unique for each
 * certificate issued by a given CA") and the certificate is being signed, or (with its PEM) a client's
 * renewal waits for its holder to install it (RenewalRecord); `active` once its PEM is stored (or the
 * renewal is installed); `superseded` after a renewal replaced it; `revoked` once a revocation row
 * exists.
 */
export type CertificateStatus = 'pending' | 'active' | 'revoked' | 'superseded';

export interface NewCertificate {
  serialHex: string;
  name: string;
  role: CertificateRole;
  notBefore: number;
  notAfter: number;
  issuedAt: number;
}

/** A signed certificate as it is recorded: its row is `active` from the start. */
export interface IssuedCertificate extends NewCertificate {
  pem: string;
  fingerprint256: string;
}

export interface CertificateRecord extends NewCertificate {
  id: number;
  status: CertificateStatus;
  /** null only while `pending`. */
  pem: string | null;
  fingerprint256: string | null;
}

export interface NewRevocation {
  serialHex: string;
  revokedAt: number;
  /** RFC 5280 5.3.1 reason name (shared/revocation-reasons.ts). */
  reason: string;
}

export interface RevocationRecord extends NewRevocation {
  /** Monotonic: lets a process catch up on revocations other processes committed (id > last seen). */
  id: number;
}

/**
 * A revocation row as listRevocations reads it: with its certificate's notAfter, after which the
 * complete CRL may drop the entry (RFC 5280 3.3; server/ca/crl-sign.ts). null: no such certificate row
 * (the schema's foreign key forbids it; such an entry is never dropped).
 */
export interface ListedRevocation extends RevocationRecord {
  certNotAfter: number | null;
}

/** The current signed CRL. `lastRevocationId` is the highest revocation id it lists. */
export interface CrlState {
  crlNumber: number;
  pem: string;
  thisUpdate: number;
  nextUpdate: number;
  lastRevocationId: number;
}

export interface NewEnrollmentToken {
  /** SHA-256 of the token, hex. The token itself is never stored. */
  tokenHash: string;
  name: string;
  createdAt: number;
  expiresAt: number;
  createdBy: string;
}

export interface EnrollmentTokenRecord extends NewEnrollmentToken {
  id: number;
  usedAt: number | null;
  /**
   * The certificate issued when the token was spent (null while unused, and for tokens spent before
   * schema 6): what a retry of that enrollment gets back (server/ca/enroll-replay.ts).
   */
  certSerial: string | null;
}

export interface AuditEntry {
  at: number;
  actor: string;
  action: string;
  subject?: string;
  /** Non-secret facts only (serials, names, reasons, counts). */
  detail?: Record<string, unknown>;
}

export interface AuditRecord {
  id: number;
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  detail: Record<string, unknown>;
  /** The hash chain (shared/audit/chain.ts): hex; null only in a row nobody chained (a bad row). */
  prevHash: string | null;
  hash: string | null;
}

/** A client's renewal request (server/ca/renewal.ts). */
export interface RenewalRecord {
  /** The new certificate (status `pending` until installed). */
  serialHex: string;
  /** The certificate of the session that asked for it. */
  replaces: string;
  name: string;
  requestedAt: number;
  installedAt: number | null;
}

/** What installing a renewal changed. */
export interface RenewalInstall {
  /** The certificate it replaced, now `superseded`. */
  superseded: string;
  /** Other renewals of the same certificate that were never installed, now `superseded` too. */
  abandoned: string[];
}

export interface AuditQuery {
  afterId?: number;
  limit?: number;
  action?: string;
  /** Entries at or after this time (epoch ms). */
  since?: number;
}

export type { AuditHeadRecord };
export type NewAuditHead = Omit<AuditHeadRecord, 'id'>;

export interface CertificateStanding {
  status: CertificateStatus;
  notBefore: number;
  notAfter: number;
}

/**
 * A name's active certificate as a key creation checks its peer (server/keys/key-parties.ts): the serial,
 * role and validity, without the PEM (the certificate's content is cached by serial).
 */
export interface ActiveCertificateSummary {
  serialHex: string;
  role: CertificateRole;
  notBefore: number;
  notAfter: number;
}

/** What a listing of many certificates shows of each: no PEM, no fingerprint. */
export interface CertificateListing {
  serialHex: string;
  name: string;
  role: CertificateRole;
  status: CertificateStatus;
}

export interface CertificateFilter {
  name?: string;
  status?: CertificateStatus;
  role?: CertificateRole;
}

export interface Store {
  /** Where the data lives (a file path for sqlite). */
  readonly location: string;
  /** Applied schema version (the last migration's number). */
  schemaVersion(): number;
  /**
   * Run fn atomically with the write lock held from the start (BEGIN IMMEDIATE). fn must be
   * synchronous; nested calls become savepoints. Throws what fn throws, after rolling back.
   */
  transaction<T>(fn: () => T): T;
  /**
   * Changes whenever ANOTHER connection (process) committed a write since the last call; equal values
   * mean nothing changed. Cheap (no table access): used to keep in-memory caches fresh.
   */
  changeCounter(): number;
  /**
   * Group commit only (server/store/group-commit.ts): transaction(fn) whose COMMIT returns before the
   * WAL is on disk (synchronous=NORMAL for this one commit; every other commit stays FULL). The data is
   * visible at once but NOT durable: nothing may be reported to anyone as done before a
   * `syncCommitted` called after this returned has completed without error.
   */
  transactionUnsynced<T>(fn: () => T): T;
  /**
   * Make every commit made so far durable: fsync of the WAL on a dedicated thread (the event loop
   * keeps running; wal-sync-thread.ts). cb(null) only after a sync that started after this call; an
   * error means the commits made since the last successful sync may not survive a power loss (the
   * store is then read-only until reopened: sqlite-wal-sync.ts).
   */
  syncCommitted(cb: (err: Error | null) => void): void;
  close(): void;

  // settings: small JSON values written by `kds server init` (CRL URL host/port, validity limits)
  getSetting<T>(key: string): T | undefined;
  setSetting(key: string, value: unknown): void;

  // certificates
  /**
   * Record a signed certificate as the name's `active` one, in one INSERT: a taken serial (UNIQUE) is
   * store_error, a name that already has an active certificate (partial unique index) already_active.
   * (Schema 1 also has a `pending` status: rows of an older KDC, which reserved the serial before signing.)
   * `audit`: entries appended after it, in order, atomically with it (as appendAudit would). Issuance
   * hands its entries here rather than to appendAudit: PostgreSQL writes the certificate and its entries
   * in one statement, i.e. one round trip under the store's write lock instead of one per entry more.
   */
  insertIssuedCertificate(cert: IssuedCertificate, audit?: readonly AuditEntry[]): void;
  setCertificateStatus(serialHex: string, status: 'revoked' | 'superseded'): void;
  /**
   * Called (synchronously, inside the caller's transaction) after every setCertificateStatus of THIS
   * store object. Other processes' writes are seen through changeCounter() instead. For caches of
   * certificate records (server/kdc/cert-check.ts); a listener only invalidates, it must not throw.
   * Returns the function that removes the listener.
   */
  onCertificateStatusChange(listener: (serialHex: string) => void): () => void;
  getCertificate(serialHex: string): CertificateRecord | undefined;
  /**
   * The status and validity of one certificate, read by its serial (the UNIQUE index; no PEM): what a
   * write re-checks about its caller inside its own transaction (server/kdc/caller-status.ts).
   */
  getCertificateStanding(serialHex: string): CertificateStanding | undefined;
  getCertificateByFingerprint(fingerprint256: string): CertificateRecord | undefined;
  activeCertificate(name: string): CertificateRecord | undefined;
  /** activeCertificate without the PEM (the partial unique index on name for active rows; no PEM read). */
  activeCertificateSummary(name: string): ActiveCertificateSummary | undefined;
  /** The newest certificate (any status except pending) with this name. */
  latestCertificate(name: string): CertificateRecord | undefined;
  listCertificates(filter?: CertificateFilter): CertificateRecord[];
  /**
   * The newest `limit` certificates that are not pending, oldest first, without their PEM: the console's
   * panel, re-read every few seconds while it is on. The primary key read backwards, stopped at `limit`.
   */
  listNewestCertificates(limit: number): CertificateListing[];
  /** The serials of every certificate with this status, oldest first, from the status index. */
  listCertificateSerials(status: CertificateStatus): string[];
  countCertificates(): number;
  /** Certificates per status, from the status index (migration 10): no certificate row is read. */
  countCertificatesByStatus(): Partial<Record<CertificateStatus, number>>;

  // renewals (server/ca/renewal.ts)
  /**
   * Record a renewal's signed certificate as `pending` (its serial taken; not usable until installed)
   * with its renewals row, in the caller's transaction.
   */
  insertRenewal(cert: IssuedCertificate, replaces: string, requestedAt: number): void;
  getRenewal(serialHex: string): RenewalRecord | undefined;
  /** The newest renewal request that replaces `serialHex` (the only one that may be installed). */
  latestRenewalOf(serialHex: string): RenewalRecord | undefined;
  /**
   * Renewal requests of `name` stamped from `since` to `until` (the per-name rate limit). The upper bound
   * leaves out requests stamped in the future by a process whose clock ran ahead: counted, they would
   * hold the name's limit full until the real time caught up with them.
   */
  countRenewalsSince(name: string, since: number, until: number): number;
  /**
   * Install renewal `serialHex` in the caller's transaction: the certificate it replaces becomes
   * `superseded`, this one `active`, and every other uninstalled renewal of the same certificate
   * `superseded`. Status listeners are told about each. The caller checks it may be installed.
   */
  installRenewal(serialHex: string, at: number): RenewalInstall;

  // revocations (rows are permanent: no update or delete)
  insertRevocation(revocation: NewRevocation): RevocationRecord;
  getRevocation(serialHex: string): RevocationRecord | undefined;
  /** Revocations with id > afterId, in id order. */
  listRevocations(afterId?: number): ListedRevocation[];
  countRevocations(): number;
  lastRevocationId(): number;

  // the current CRL
  getCrlState(): CrlState | undefined;
  saveCrlState(state: CrlState): void;

  // enrollment tokens
  insertEnrollmentToken(token: NewEnrollmentToken): void;
  /**
   * Mark the token used, by the certificate `certSerial` (being issued in the same transaction), if and
   * only if it exists, is bound to `name`, is unused and unexpired, in one statement (UPDATE ... WHERE
   * used_at IS NULL AND expires_at > now): two concurrent consumers can never both succeed. Returns the
   * row as it is after the update, or undefined.
   */
  consumeEnrollmentToken(
    tokenHash: string,
    name: string,
    now: number,
    certSerial: string,
  ): EnrollmentTokenRecord | undefined;
  /** The token row whatever its state (read-only; used to refuse bad tokens before any other check). */
  getEnrollmentToken(tokenHash: string): EnrollmentTokenRecord | undefined;
  listEnrollmentTokens(): EnrollmentTokenRecord[];

  // audit log (append-only: there is no update or delete method, and the schema forbids both)
  /**
   * Append an entry chained to the last one (shared/audit/chain.ts auditEntryHash), atomically: the
   * chain read and the insert run in one transaction (a savepoint inside the caller's).
   */
  appendAudit(entry: AuditEntry): number;
  listAudit(opts?: AuditQuery): AuditRecord[];
  countAudit(): number;
  /** The last entry's id and hash (undefined when the log is empty). */
  auditTail(): { id: number; hash: string | null } | undefined;
  appendAuditHead(head: NewAuditHead): number;
  listAuditHeads(): AuditHeadRecord[];
  /** The highest entry id a signed head covers (0: none yet), from its index. */
  lastSignedAuditEntry(): number;

  // symmetric keys, prekeys and pending deliveries (server/keys/)
  insertSymKey(key: NewSymKey): void;
  getSymKey(serial: string): SymKeyRecord | undefined;
  /** reserved -> active with the deposited exchange values; false if the row is not `reserved`. */
  activateSymKey(serial: string, deposit: SymKeyDeposit): boolean;
  /**
   * Move a key from one of `from` to `to` (revoked/expired/superseded), once: false if its state was
   * not in `from` (already revoked, unknown...). Returns before the caller acknowledges anything.
   */
  setSymKeyState(
    serial: string,
    from: readonly SymKeyState[],
    to: SymKeyState,
    change: SymKeyStateChange,
  ): boolean;
  markSymKeyPeerVerified(serial: string, at: number): void;
  /** Keys (never reservations unless asked) where `party` is owner or peer, or all keys without it. */
  listSymKeys(filter?: SymKeyFilter): SymKeyRecord[];
  /** Active keys whose expiry has passed become `expired`; returns them. */
  expireSymKeys(now: number): SymKeyRecord[];
  /** Forget reservations (claimed prekey, no deposit) created before `before`; returns how many. */
  deleteStaleReservations(before: number): number;
  /**
   * Delete at most `limit` keys (any state but reserved: reservations have their own sweep) that expired
   * before `before`; returns how many. Their queued notices become obsolete: key.sync finds no row,
   * skips them and drops them (server/keys/deliveries.ts buildPush).
   */
  deleteExpiredSymKeys(before: number, limit: number): number;

  /** Keys per state (reserved, active, revoked, expired, superseded), for the metrics: one index scan. */
  countSymKeysByState(): Record<string, number>;
  /** Notices queued for every recipient (the metrics' delivery queue depth). */
  countPendingDeliveries(): number;
  /** Active keys of `owner` with `peer` not expired at `now` (docs/keys.md "Quotas"). */
  countActiveKeys(owner: string, peer: string, now: number): number;
  /** Reservations of `owner` on `peer`'s prekeys created at or after `since` (docs/keys.md "Quotas"). */
  countOpenReservations(owner: string, peer: string, since: number): number;

  insertPrekeys(owner: string, certSerial: string, prekeys: readonly NewPrekey[], at: number): void;
  countPrekeys(owner: string, certSerial: string): number;
  /** Atomically remove and return one prekey of `owner` signed under `certSerial` (oldest first). */
  claimPrekey(owner: string, certSerial: string): PrekeyRecord | undefined;
  /**
   * Drop prekeys of `owner` (one-time and last-resort) signed under any certificate other than
   * `keepCertSerial` (all if omitted).
   */
  deletePrekeys(owner: string, keepCertSerial?: string): number;
  /** Store (or replace) the owner's last-resort prekey for `certSerial`. */
  putLastResortPrekey(owner: string, certSerial: string, prekey: NewPrekey, at: number): void;
  /** The owner's last-resort prekey signed under `certSerial`, if any (it is never deleted on use). */
  getLastResortPrekey(owner: string, certSerial: string): PrekeyRecord | undefined;

  enqueueDelivery(delivery: NewDelivery): number;
  /**
   * Queued notices `sender` left for `recipient`: its messages (`msg`) or its key notices (every other
   * kind). The quotas of docs/keys.md "Quotas".
   */
  countQueuedFrom(recipient: string, sender: string, kind: 'msg' | 'key'): number;
  /**
   * Delete the key notices (not messages) queued for `recipient` about key `keySerial`: a newer notice
   * about the same key replaces them (a revocation makes a queued delivery or verification obsolete).
   */
  deleteQueuedKeyNotices(recipient: string, keySerial: string): number;
  /** Delete everything queued for `recipient` (its certificate revoked, no other active). Returns how many. */
  deleteQueueOf(recipient: string): number;
  /** Oldest first. `keyNoticesOnly`: leave the relayed messages out (a session that does not take them). */
  listDeliveries(recipient: string, limit?: number, keyNoticesOnly?: boolean): DeliveryRecord[];
  /** One queued delivery of `recipient` (undefined once acknowledged or replaced, or not theirs). */
  getDelivery(recipient: string, id: number): DeliveryRecord | undefined;
  /** Delete acknowledged deliveries, only the recipient's own. Returns how many. */
  deleteDeliveries(recipient: string, ids: readonly number[]): number;
  /** Every recipient's, or `recipient`'s (its key notices only with `keyNoticesOnly`). */
  countDeliveries(recipient?: string, keyNoticesOnly?: boolean): number;
  /**
   * Prekey ids of `owner` the KDC still holds, read in one statement (one snapshot): its stock under
   * `certSerial`, its prekeys claimed by reservations created at or after `reservedSince`, and those of
   * e2e keys whose `key.delivered` notice is still queued for it, and its last-resort prekey under
   * `certSerial`. At most `limit` ids (docs/keys.md "Prekey housekeeping").
   */
  heldPrekeyIds(owner: string, certSerial: string, reservedSince: number, limit: number): string[];
}

export type SymKeyMode = 'e2e' | 'kdc';
/** `reserved`: an e2e serial handed out with a prekey, not yet deposited (never listed as a key). */
export type SymKeyState = 'reserved' | 'active' | 'revoked' | 'expired' | 'superseded';

export interface NewSymKey {
  serial: string;
  mode: SymKeyMode;
  owner: string;
  ownerCert: string;
  peer: string;
  peerCert: string;
  createdAt: number;
  expiresAt: number;
  state: 'reserved' | 'active';
  replaces?: string | null;
  digest?: Buffer | null;
  prekeyId?: string | null;
  prekeyPublic?: Buffer | null;
  wrappedKey?: Buffer | null;
  kekVersion?: number | null;
}

export interface SymKeyDeposit {
  ephemeral: Buffer;
  senderSignature: Buffer;
  ciphertext: Buffer;
  digest: Buffer;
}

export interface SymKeyStateChange {
  at: number;
  reason?: string;
  by?: string;
  supersededBy?: string;
}

export interface SymKeyRecord {
  serial: string;
  mode: SymKeyMode;
  owner: string;
  ownerCert: string;
  peer: string;
  peerCert: string;
  createdAt: number;
  expiresAt: number;
  state: SymKeyState;
  stateChangedAt: number | null;
  revokedReason: string | null;
  revokedBy: string | null;
  replaces: string | null;
  supersededBy: string | null;
  digest: Buffer | null;
  prekeyId: string | null;
  prekeyPublic: Buffer | null;
  ephemeral: Buffer | null;
  senderSignature: Buffer | null;
  ciphertext: Buffer | null;
  wrappedKey: Buffer | null;
  kekVersion: number | null;
  peerVerifiedAt: number | null;
}

export interface SymKeyFilter {
  party?: string;
  states?: readonly SymKeyState[];
  includeReserved?: boolean;
  /**
   * At most this many, the newest (still listed oldest first). With `party`, read through the owner
   * and peer indexes: the cost is this many rows whatever the table holds (a listing a client asks for
   * must not read every key of the KDC, nor every key it ever had).
   */
  newest?: number;
}

export interface NewPrekey {
  prekeyId: string;
  publicKey: Buffer;
  signature: Buffer;
}

export interface PrekeyRecord extends NewPrekey {
  owner: string;
  certSerial: string;
  createdAt: number;
}

export type DeliveryKind = 'key.delivered' | 'key.revoked' | 'key.verified' | 'msg';

export interface NewDelivery {
  recipient: string;
  kind: DeliveryKind;
  keySerial: string;
  /** Opaque bytes for `msg` (the relayed ciphertext envelope); null for key notices. */
  payload?: Buffer | null;
  /** The client whose quota this notice counts against; null/absent when the KDC or the admin queued it. */
  sender?: string | null;
  createdAt: number;
}

export interface DeliveryRecord extends NewDelivery {
  id: number;
  payload: Buffer | null;
  sender: string | null;
}

/** Open (creating and migrating if needed) the store of a data directory: `<dataDir>/kds.sqlite`. */
export function openStore(dataDir: string, opts?: StoreOptions): Store {
  return SqliteStore.open(dataDir, opts);
}
