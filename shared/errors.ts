// The one error hierarchy of kds. Every failure that a user, a peer or a test can observe carries a
// stable machine code (never rename one: scripts and the wire depend on them), a CLI exit code and,
// for protocol failures, a WebSocket close code. Pattern from panva/jose src/util/errors.ts.
//
// Authentication and decryption failures use FIXED messages that leak nothing about which check
// failed beyond the code itself ("signature verification failed", "record authentication failed").

/** CLI exit codes (docs/cli.md). 0 ok, 1 failure, 2 usage; specific ones for verdicts scripts test. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  revoked: 3,
  invalid: 4,
  expired: 5,
  notFound: 6,
  auth: 7,
  unavailable: 8,
} as const;

/** WebSocket close codes: 1000 normal, 1008 policy, 1009 too big; 4000-4999 are ours (RFC 6455 7.4.2). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  internal: 1011,
  protocol: 4000,
  auth: 4001,
  revoked: 4002,
  timeout: 4003,
  rateLimited: 4004,
  record: 4005,
  version: 4006,
} as const;

interface CodeInfo {
  exit: number;
  close: number;
}

const CODES = {
  // input and encoding
  malformed: { exit: EXIT.invalid, close: CLOSE.protocol },
  malformed_pem: { exit: EXIT.invalid, close: CLOSE.protocol },
  bad_request: { exit: EXIT.usage, close: CLOSE.protocol },
  // CSR / issuance policy
  bad_csr_signature: { exit: EXIT.invalid, close: CLOSE.policy },
  unsupported_key: { exit: EXIT.invalid, close: CLOSE.policy },
  weak_key: { exit: EXIT.invalid, close: CLOSE.policy },
  bad_name: { exit: EXIT.invalid, close: CLOSE.policy },
  name_mismatch: { exit: EXIT.invalid, close: CLOSE.policy },
  forbidden_extension: { exit: EXIT.invalid, close: CLOSE.policy },
  already_active: { exit: EXIT.failure, close: CLOSE.policy },
  // CA state and storage
  ca_exists: { exit: EXIT.failure, close: CLOSE.internal },
  ca_missing: { exit: EXIT.failure, close: CLOSE.internal },
  bad_passphrase: { exit: EXIT.auth, close: CLOSE.internal },
  store_error: { exit: EXIT.failure, close: CLOSE.internal },
  io_error: { exit: EXIT.failure, close: CLOSE.internal },
  // revocation and lookups
  not_found: { exit: EXIT.notFound, close: CLOSE.policy },
  unknown_serial: { exit: EXIT.notFound, close: CLOSE.policy },
  already_revoked: { exit: EXIT.ok, close: CLOSE.policy },
  bad_reason: { exit: EXIT.usage, close: CLOSE.policy },
  // certificate verification verdicts surfaced as errors
  cert_expired: { exit: EXIT.expired, close: CLOSE.auth },
  cert_not_yet_valid: { exit: EXIT.invalid, close: CLOSE.auth },
  cert_revoked: { exit: EXIT.revoked, close: CLOSE.revoked },
  cert_bad_signature: { exit: EXIT.invalid, close: CLOSE.auth },
  cert_unknown_issuer: { exit: EXIT.invalid, close: CLOSE.auth },
  cert_wrong_usage: { exit: EXIT.invalid, close: CLOSE.auth },
  cert_wrong_name: { exit: EXIT.invalid, close: CLOSE.auth },
  cert_malformed: { exit: EXIT.invalid, close: CLOSE.auth },
  ca_fingerprint_mismatch: { exit: EXIT.auth, close: CLOSE.auth },
  // wire protocol
  frame_too_large: { exit: EXIT.failure, close: CLOSE.tooBig },
  bad_frame: { exit: EXIT.failure, close: CLOSE.protocol },
  unknown_type: { exit: EXIT.failure, close: CLOSE.protocol },
  schema: { exit: EXIT.failure, close: CLOSE.protocol },
  unexpected_message: { exit: EXIT.failure, close: CLOSE.protocol },
  version_unsupported: { exit: EXIT.failure, close: CLOSE.version },
  no_common_group: { exit: EXIT.failure, close: CLOSE.version },
  bad_dh_public: { exit: EXIT.auth, close: CLOSE.auth },
  bad_signature: { exit: EXIT.auth, close: CLOSE.auth },
  bad_mac: { exit: EXIT.auth, close: CLOSE.auth },
  record_auth: { exit: EXIT.auth, close: CLOSE.record },
  sequence_exhausted: { exit: EXIT.failure, close: CLOSE.record },
  insecure_refused: { exit: EXIT.auth, close: CLOSE.policy },
  handshake_timeout: { exit: EXIT.unavailable, close: CLOSE.timeout },
  rate_limited: { exit: EXIT.unavailable, close: CLOSE.rateLimited },
  /**
   * A per-peer bound of the key service is full (queued notices from one sender to one recipient, active
   * keys or open reservations of one pair): nothing was written; it frees up as the other party connects,
   * acknowledges or the keys expire (docs/keys.md "Quotas").
   */
  quota_exceeded: { exit: EXIT.unavailable, close: CLOSE.rateLimited },
  too_many_connections: { exit: EXIT.unavailable, close: CLOSE.rateLimited },
  token_invalid: { exit: EXIT.auth, close: CLOSE.auth },
  forbidden: { exit: EXIT.auth, close: CLOSE.policy },
  not_authenticated: { exit: EXIT.auth, close: CLOSE.policy },
  session_closed: { exit: EXIT.unavailable, close: CLOSE.normal },
  unavailable: { exit: EXIT.unavailable, close: CLOSE.goingAway },
  timeout: { exit: EXIT.unavailable, close: CLOSE.timeout },
  // symmetric keys
  key_revoked: { exit: EXIT.revoked, close: CLOSE.policy },
  key_expired: { exit: EXIT.expired, close: CLOSE.policy },
  key_mismatch: { exit: EXIT.invalid, close: CLOSE.policy },
  peer_unavailable: { exit: EXIT.notFound, close: CLOSE.policy },
  peer_revoked: { exit: EXIT.revoked, close: CLOSE.policy },
  key_unverified: { exit: EXIT.unavailable, close: CLOSE.policy },
  /** A relayed message whose sequence number the receiver already accepted (or is below its window). */
  replayed: { exit: EXIT.invalid, close: CLOSE.policy },
  // generic
  config: { exit: EXIT.usage, close: CLOSE.internal },
  internal: { exit: EXIT.failure, close: CLOSE.internal },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof CODES;

/** Every error code, in the order of the table above (docs/messages.md lists them with their codes). */
export const ERROR_CODES = Object.keys(CODES) as readonly ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(CODES, value);
}

export function exitCodeFor(code: ErrorCode): number {
  return CODES[code].exit;
}

export function closeCodeFor(code: ErrorCode): number {
  return CODES[code].close;
}

/** Base class: every error kds raises on purpose is a KdsError with a stable `code`. */
export class KdsError extends Error {
  readonly code: ErrorCode;
  /** Structured, non-secret facts for --json output and audit (never key material). */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }

  get exitCode(): number {
    return exitCodeFor(this.code);
  }

  get closeCode(): number {
    return closeCodeFor(this.code);
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** Bad bytes, bad PEM, bad shapes: the input is not what it claims to be. */
export class InputError extends KdsError {}
/** A well-formed request that policy refuses (names, key sizes, extensions, roles). */
export class PolicyError extends KdsError {}
/** Authentication failed: signatures, MACs, certificates, tokens. Fixed messages only. */
export class AuthError extends KdsError {}
/** The wire protocol was violated (framing, schema, order, versions). */
export class ProtocolError extends KdsError {}
/** Something looked up does not exist, or is revoked/expired. */
export class StateError extends KdsError {}
/** Local environment problems: files, store, configuration. */
export class EnvironmentError extends KdsError {}

/** Wrap anything thrown into a KdsError without leaking internals (used at process/wire edges). */
export function toKdsError(err: unknown): KdsError {
  if (err instanceof KdsError) return err;
  return new KdsError('internal', 'internal error', undefined, { cause: err });
}

/** Assertion helper naming the bad value (noble-curves ensureBytes style). */
export function ensureBytes(title: string, value: unknown, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new InputError('malformed', `expected ${title} as bytes, got ${typeName(value)}`);
  }
  if (length !== undefined && value.length !== length) {
    throw new InputError('malformed', `expected ${title} of ${length} bytes, got ${value.length}`);
  }
  return value;
}

export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof Uint8Array) return `bytes(${value.length})`;
  return typeof value;
}
