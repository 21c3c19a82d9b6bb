// The KDC's event model: one typed record for everything the KDC decides, read by the terminal log,
// the JSON log, the Prometheus metrics and the browser console (docs/operations.md). Pure: types and
// tables only, so a browser bundle may import it.
//
// What an event may carry: names of parties, serials, codes, counts, sizes, durations, addresses.
// Never key material, tokens, passphrases, plaintext or ciphertext (test/e2e/hardening-secrets.test.ts
// reads every reader's output for them). Strings that came from the network (a claimed name, a
// request type the KDC does not know, a close reason) are kept as received: every reader that writes
// them to a terminal or a page escapes them (shared/text/terminal-safe.ts).
//
// Stability: consumers switch on `type`. Types and fields are only ever added, never renamed or
// removed; a consumer must ignore types it does not know.

/** Severity, in increasing order; a reader at level L shows events at L and above. */
export const EVENT_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type EventLevel = (typeof EVENT_LEVELS)[number];

/** What identifies who is at the other end of a session (server/kdc/dispatch.ts Role). */
export type EventRole = 'client' | 'admin' | 'anonymous' | 'insecure';

/** Every event has its type and the time the KDC decided it (epoch ms). */
interface Base<T extends string> {
  readonly type: T;
  readonly at: number;
}

export interface KdcStarted extends Base<'kdc.started'> {
  url: string;
  httpUrl: string;
  /** Where GET /metrics answers ('' when metrics are off). */
  metricsUrl: string;
  version: string;
  pid: number;
}

export interface KdcStopped extends Base<'kdc.stopped'> {
  uptimeMs: number;
}

/**
 * The key-encryption keys (kek/) opened with the CA passphrase, after the KDC started listening (the
 * scrypt is deferred for speed, server/kdc/kdc.ts): KDC-generated keys and resumption tickets can be
 * served. A passphrase that does not open them stops the KDC instead (a kdc.warning, exit 7).
 */
export interface KekOpened extends Base<'kek.opened'> {
  /** The KEK versions the ring holds. */
  versions: number;
  durationMs: number;
}

/** A WebSocket connection was accepted and its handshake clock started. */
export interface ConnectionOpened extends Base<'connection.opened'> {
  connection: string;
  address: string;
}

/** Why a connection was refused before its handshake. */
export type ConnectionLimit =
  | 'handshake_rate' // per-address token bucket (limits.ts HandshakeRateLimiter)
  | 'unauthenticated_cap' // connections in their handshake plus anonymous sessions (HandshakeSlots)
  | 'evicted' // lost its slot to a newcomer from a less crowded address
  | 'per_address_cap' // TCP connections from one address, before any HTTP (ConnectionCounter)
  | 'shutting_down';

export interface ConnectionRefused extends Base<'connection.refused'> {
  address: string;
  /** The error code the peer was sent (rate_limited, too_many_connections, unavailable). */
  code: string;
  limit: ConnectionLimit;
}

export interface ConnectionClosed extends Base<'connection.closed'> {
  connection: string;
  address: string;
  /** '' when nobody was authenticated. */
  name: string;
  role: EventRole;
  /** WebSocket close code (ours or the peer's). */
  closeCode: number;
  /** Our error code when WE closed it (cert_revoked, timeout, ...); absent when the peer did. */
  code?: string;
  durationMs: number;
}

export type HandshakeMode = 'auth' | 'enroll' | 'insecure' | 'resume';

export interface HandshakeCompleted extends Base<'handshake.completed'> {
  /** The session id (hex). */
  connection: string;
  address: string;
  /** '' for an enrollment (anonymous) session. */
  name: string;
  /** The client certificate's serial ('' without one). */
  serial: string;
  role: EventRole;
  mode: HandshakeMode;
  group: string;
  durationMs: number;
}

export interface HandshakeRefused extends Base<'handshake.refused'> {
  connection: string;
  address: string;
  /** The CN of the certificate presented, or the insecure mode's claimed name: NOT verified. */
  claimedName?: string;
  /**
   * The error code: the one our alert sent, or the one the peer's alert or close reason gave (`by`);
   * `abandoned` or `abandoned_after_server_hello` when the peer closed without saying why.
   */
  code: string;
  /** Who refused: the KDC (its checks failed) or the peer (the client's checks failed: its alert). */
  by: 'kdc' | 'peer';
  /** The defence that refused it (shared/defences.ts), when the code belongs to one. */
  defence?: string;
  /** The DH group, when the client_hello got that far. */
  group?: string;
  durationMs: number;
}

/**
 * An established session ended by a defence (a record that failed authentication, a replayed or
 * reordered record, a malformed frame): someone tampered with the channel, or the peer is broken.
 * Ordinary ends (revocation, expiry, shutdown, the peer's close) are connection.closed only.
 */
export interface SessionFailed extends Base<'session.failed'> {
  connection: string;
  address: string;
  name: string;
  role: EventRole;
  code: string;
  defence?: string;
}

/** One request of a session answered (ok or an error code). */
export interface RequestServed extends Base<'request.served'> {
  connection: string;
  name: string;
  role: EventRole;
  /** The request type as received (validated against the catalog, or the unknown type refused). */
  request: string;
  /** 'ok' or the error code of the answer. */
  code: string;
  durationMs: number;
}

/** A request refused by a quota or rate limit (docs/keys.md "Quotas"): who is pushing. */
export interface RequestRefused extends Base<'request.refused'> {
  connection: string;
  name: string;
  role: EventRole;
  request: string;
  code: string;
  message: string;
}

export interface TokenCreated extends Base<'token.created'> {
  /** The name the token lets enroll; the token itself is never in an event. */
  name: string;
  by: string;
  expiresAt: number;
}

export interface CertIssued extends Base<'cert.issued'> {
  name: string;
  serial: string;
  role: string;
  notAfter: number;
  /** A renewal (the previous certificate superseded) rather than a first enrollment. */
  renewed: boolean;
}

/**
 * An enrollment retried after its answer was lost got the certificate its token had already produced
 * (server/ca/enroll-replay.ts): nothing was issued.
 */
export interface CertReplayed extends Base<'cert.replayed'> {
  name: string;
  serial: string;
}

export interface CertRevoked extends Base<'cert.revoked'> {
  name: string;
  serial: string;
  reason: string;
  /** Live sessions of that certificate closed before the revocation was acknowledged. */
  sessionsClosed: number;
}

export interface CrlPublished extends Base<'crl.published'> {
  kind: 'full' | 'delta';
  /** cRLNumber as a decimal string (it is an INTEGER of any size). */
  crlNumber: string;
  entries: number;
  bytes: number;
  thisUpdate: number;
  nextUpdate: number;
}

export interface KeyCreated extends Base<'key.created'> {
  serial: string;
  owner: string;
  peer: string;
  /** 'kdc': the KDC generated it; 'e2e': the owner reserved it (key.deposited completes it). */
  mode: 'kdc' | 'e2e';
  replaces?: string;
}

/** The sender of an end-to-end key deposited its ciphertext (the key.created of mode e2e named the peer). */
export interface KeyDeposited extends Base<'key.deposited'> {
  serial: string;
  owner: string;
}

export interface KeyDelivered extends Base<'key.delivered'> {
  serial: string;
  from: string;
  to: string;
}

export interface KeyVerified extends Base<'key.verified'> {
  serial: string;
  by: string;
  /** shared/keys/verdict.ts Verdict: valid, mismatch, revoked, expired, not_found. */
  verdict: string;
}

export interface KeyRevoked extends Base<'key.revoked'> {
  serial: string;
  by: string;
  reason: string;
}

/** A certificate's revocation revoked the keys it held (docs/keys.md "Cascade"). */
export interface KeyCascade extends Base<'key.cascade'> {
  name: string;
  certSerial: string;
  keys: number;
}

/** Keys that expired more than the retention ago were deleted (docs/keys.md "Retention"). */
export interface KeysPruned extends Base<'key.pruned'> {
  keys: number;
  /** They expired before this time (ms since the epoch). */
  expiredBefore: number;
}

export interface MessageRelayed extends Base<'message.relayed'> {
  from: string;
  to: string;
  serial: string;
  /** Ciphertext length: the size, never the content. */
  bytes: number;
}

export interface PrekeysUploaded extends Base<'prekeys.uploaded'> {
  name: string;
  count: number;
}

/** A store operation failed (disk full, locked past busy_timeout, fsync failure). */
export interface StoreError extends Base<'store.error'> {
  stage: string;
  code: string;
  message: string;
}

/** A durable commit of the store's group commit (one WAL sync for `callers` transactions). */
export interface StoreCommit extends Base<'store.commit'> {
  callers: number;
  durationMs: number;
}

/** The audit chain's head was signed with the KDC key (periodically and at stop). */
export interface AuditSigned extends Base<'audit.signed'> {
  entry: number;
  hash: string;
}

/** Something the operator should know that is not a decision (a repaired file, a failed re-issue). */
export interface KdcWarning extends Base<'kdc.warning'> {
  message: string;
}

export type KdcEvent =
  | KdcStarted
  | KdcStopped
  | KekOpened
  | ConnectionOpened
  | ConnectionRefused
  | ConnectionClosed
  | HandshakeCompleted
  | HandshakeRefused
  | SessionFailed
  | RequestServed
  | RequestRefused
  | TokenCreated
  | CertIssued
  | CertReplayed
  | CertRevoked
  | CrlPublished
  | KeyCreated
  | KeyDeposited
  | KeyDelivered
  | KeyVerified
  | KeyRevoked
  | KeyCascade
  | KeysPruned
  | MessageRelayed
  | PrekeysUploaded
  | StoreError
  | StoreCommit
  | AuditSigned
  | KdcWarning;

export type KdcEventType = KdcEvent['type'];
export type EventOf<T extends KdcEventType> = Extract<KdcEvent, { type: T }>;
/** What an emitter supplies: the bus stamps `at`. */
export type EventInput<T extends KdcEventType = KdcEventType> = T extends KdcEventType
  ? Omit<EventOf<T>, 'at'>
  : never;

/**
 * The level of each type: what the terminal shows by default (info) is one line per decision an
 * operator watching the walkthrough cares about; per-connection and per-request detail is debug.
 */
export const EVENT_LEVEL: { readonly [T in KdcEventType]: EventLevel } = {
  'kdc.started': 'info',
  'kdc.stopped': 'info',
  'kek.opened': 'debug',
  'connection.opened': 'debug',
  'connection.refused': 'warn',
  'connection.closed': 'debug',
  'handshake.completed': 'info',
  'handshake.refused': 'warn',
  'session.failed': 'warn',
  'request.served': 'debug',
  'request.refused': 'warn',
  'token.created': 'info',
  'cert.issued': 'info',
  'cert.replayed': 'info',
  'cert.revoked': 'info',
  'crl.published': 'info',
  'key.created': 'info',
  'key.deposited': 'info',
  'key.delivered': 'info',
  'key.verified': 'info',
  'key.revoked': 'info',
  'key.cascade': 'info',
  'key.pruned': 'info',
  'message.relayed': 'info',
  'prekeys.uploaded': 'debug',
  'store.error': 'error',
  'store.commit': 'debug',
  'audit.signed': 'info',
  'kdc.warning': 'warn',
};

export const EVENT_TYPES = Object.keys(EVENT_LEVEL) as readonly KdcEventType[];

export function isEventLevel(value: unknown): value is EventLevel {
  return typeof value === 'string' && (EVENT_LEVELS as readonly string[]).includes(value);
}

/** True when an event of `level` passes a reader set to `threshold`. */
export function atLeast(level: EventLevel, threshold: EventLevel): boolean {
  return EVENT_LEVELS.indexOf(level) >= EVENT_LEVELS.indexOf(threshold);
}
