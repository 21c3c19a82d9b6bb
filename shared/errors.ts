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

/**
 * Which class of the hierarchy carries a code. Each code has exactly one, so `err instanceof AuthError`
 * tells the truth about every code it can hold; the constructors below accept only their own codes.
 */
type ErrorKind = 'input' | 'policy' | 'auth' | 'protocol' | 'state' | 'environment' | 'internal';

interface CodeInfo {
  exit: number;
  close: number;
  kind: ErrorKind;
}

const CODES = {
  // input and encoding
  malformed: { exit: EXIT.invalid, close: CLOSE.protocol, kind: 'input' },
  malformed_pem: { exit: EXIT.invalid, close: CLOSE.protocol, kind: 'input' },
  bad_request: { exit: EXIT.usage, close: CLOSE.protocol, kind: 'input' },
  // CSR / issuance policy
  bad_csr_signature: { exit: EXIT.invalid, close: CLOSE.policy, kind: 'auth' },
  unsupported_key: { exit: EXIT.invalid, close: CLOSE.policy, kind: 'input' },
  weak_key: { exit: EXIT.invalid, close: CLOSE.policy, kind: 'policy' },
  bad_name: { exit: EXIT.invalid, close: CLOSE.policy, kind: 'policy' },
  name_mismatch: { exit: EXIT.invalid, close: CLOSE.policy, kind: 'policy' },
  forbidden_extension: { exit: EXIT.invalid, close: CLOSE.policy, kind: 'policy' },
  already_active: { exit: EXIT.failure, close: CLOSE.policy, kind: 'policy' },
  // CA state and storage
  ca_exists: { exit: EXIT.failure, close: CLOSE.internal, kind: 'environment' },
  ca_missing: { exit: EXIT.failure, close: CLOSE.internal, kind: 'environment' },
  bad_passphrase: { exit: EXIT.auth, close: CLOSE.internal, kind: 'auth' },
  store_error: { exit: EXIT.failure, close: CLOSE.internal, kind: 'environment' },
  io_error: { exit: EXIT.failure, close: CLOSE.internal, kind: 'environment' },
  // revocation and lookups
  not_found: { exit: EXIT.notFound, close: CLOSE.policy, kind: 'state' },
  unknown_serial: { exit: EXIT.notFound, close: CLOSE.policy, kind: 'state' },
  already_revoked: { exit: EXIT.ok, close: CLOSE.policy, kind: 'state' },
  bad_reason: { exit: EXIT.usage, close: CLOSE.policy, kind: 'input' },
  // certificate verification verdicts surfaced as errors
  cert_expired: { exit: EXIT.expired, close: CLOSE.auth, kind: 'auth' },
  cert_not_yet_valid: { exit: EXIT.invalid, close: CLOSE.auth, kind: 'auth' },
  cert_revoked: { exit: EXIT.revoked, close: CLOSE.revoked, kind: 'auth' },
  cert_bad_signature: { exit: EXIT.invalid, close: CLOSE.auth, kind: 'auth' },
  cert_unknown_issuer: { exit: EXIT.invalid, close: CLOSE.auth, kind: 'auth' },
  cert_wrong_usage: { exit: EXIT.invalid, close: CLOSE.auth, kind: 'auth' },
  cert_wrong_name: { exit: EXIT.invalid, close: CLOSE.auth, kind: 'auth' },
  cert_malformed: { exit: EXIT.invalid, close: CLOSE.auth, kind: 'auth' },
  ca_fingerprint_mismatch: { exit: EXIT.auth, close: CLOSE.auth, kind: 'auth' },
  // wire protocol
  frame_too_large: { exit: EXIT.failure, close: CLOSE.tooBig, kind: 'protocol' },
  bad_frame: { exit: EXIT.failure, close: CLOSE.protocol, kind: 'protocol' },
  unknown_type: { exit: EXIT.failure, close: CLOSE.protocol, kind: 'protocol' },
  schema: { exit: EXIT.failure, close: CLOSE.protocol, kind: 'protocol' },
  unexpected_message: { exit: EXIT.failure, close: CLOSE.protocol, kind: 'protocol' },
  version_unsupported: { exit: EXIT.failure, close: CLOSE.version, kind: 'protocol' },
  no_common_group: { exit: EXIT.failure, close: CLOSE.version, kind: 'protocol' },
  bad_dh_public: { exit: EXIT.auth, close: CLOSE.auth, kind: 'auth' },
  bad_signature: { exit: EXIT.auth, close: CLOSE.auth, kind: 'auth' },
  bad_mac: { exit: EXIT.auth, close: CLOSE.auth, kind: 'auth' },
  ticket_invalid: { exit: EXIT.auth, close: CLOSE.auth, kind: 'auth' },
  record_auth: { exit: EXIT.auth, close: CLOSE.record, kind: 'auth' },
  sequence_exhausted: { exit: EXIT.failure, close: CLOSE.record, kind: 'protocol' },
  insecure_refused: { exit: EXIT.auth, close: CLOSE.policy, kind: 'auth' },
  handshake_timeout: { exit: EXIT.unavailable, close: CLOSE.timeout, kind: 'protocol' },
  rate_limited: { exit: EXIT.unavailable, close: CLOSE.rateLimited, kind: 'policy' },
  /**
   * A per-peer bound of the key service is full (queued notices from one sender to one recipient, active
   * keys or open reservations of one pair): nothing was written; it frees up as the other party connects,
   * acknowledges or the keys expire (docs/keys.md "Quotas").
   */
  quota_exceeded: { exit: EXIT.unavailable, close: CLOSE.rateLimited, kind: 'policy' },
  too_many_connections: { exit: EXIT.unavailable, close: CLOSE.rateLimited, kind: 'policy' },
  token_invalid: { exit: EXIT.auth, close: CLOSE.auth, kind: 'auth' },
  forbidden: { exit: EXIT.auth, close: CLOSE.policy, kind: 'policy' },
  not_authenticated: { exit: EXIT.auth, close: CLOSE.policy, kind: 'auth' },
  session_closed: { exit: EXIT.unavailable, close: CLOSE.normal, kind: 'state' },
  unavailable: { exit: EXIT.unavailable, close: CLOSE.goingAway, kind: 'environment' },
  timeout: { exit: EXIT.unavailable, close: CLOSE.timeout, kind: 'environment' },
  // symmetric keys
  key_revoked: { exit: EXIT.revoked, close: CLOSE.policy, kind: 'state' },
  key_expired: { exit: EXIT.expired, close: CLOSE.policy, kind: 'state' },
  key_mismatch: { exit: EXIT.invalid, close: CLOSE.policy, kind: 'state' },
  peer_unavailable: { exit: EXIT.notFound, close: CLOSE.policy, kind: 'state' },
  peer_revoked: { exit: EXIT.revoked, close: CLOSE.policy, kind: 'state' },
  key_unverified: { exit: EXIT.unavailable, close: CLOSE.policy, kind: 'state' },
  /** A relayed message whose sequence number the receiver already accepted (or is below its window). */
  replayed: { exit: EXIT.invalid, close: CLOSE.policy, kind: 'state' },
  /**
   * A node's clock differs from its shared store's by more than allowed (server/store/clock-skew.ts):
   * refused at start, before anything is written. Try again once NTP has set the clock.
   */
  clock_skew: { exit: EXIT.unavailable, close: CLOSE.internal, kind: 'environment' },
  // generic
  config: { exit: EXIT.usage, close: CLOSE.internal, kind: 'environment' },
  internal: { exit: EXIT.failure, close: CLOSE.internal, kind: 'internal' },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof CODES;

/** Every error code, in the order of the table above (docs/messages.md lists them with their codes). */
export const ERROR_CODES = Object.keys(CODES) as readonly ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(CODES, value);
}

/** The codes that belong to one class of the hierarchy. */
export type CodeOf<K extends ErrorKind> = {
  [C in ErrorCode]: (typeof CODES)[C]['kind'] extends K ? C : never;
}[ErrorCode];

export function exitCodeFor(code: ErrorCode): number {
  return CODES[code].exit;
}

export function closeCodeFor(code: ErrorCode): number {
  return CODES[code].close;
}

/**
 * Base class: every error kds raises on purpose is a KdsError with a stable `code`. Abstract: an error
 * is built as the class its code belongs to (the subclasses below, or `errorFor(code)` when the code is
 * only known at run time).
 */
export abstract class KdsError extends Error {
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

type ErrorArgs<K extends ErrorKind> = [
  code: CodeOf<K>,
  message: string,
  details?: Record<string, unknown>,
  options?: { cause?: unknown },
];

/** Bad bytes, bad PEM, bad shapes: the input is not what it claims to be. */
export class InputError extends KdsError {
  declare readonly code: CodeOf<'input'>;
  constructor(...args: ErrorArgs<'input'>) {
    super(...args);
  }
}
/** A well-formed request that policy refuses (names, key sizes, extensions, roles, rates, quotas). */
export class PolicyError extends KdsError {
  declare readonly code: CodeOf<'policy'>;
  constructor(...args: ErrorArgs<'policy'>) {
    super(...args);
  }
}
/** Authentication failed: signatures, MACs, certificates, tokens, passphrases. Fixed messages only. */
export class AuthError extends KdsError {
  declare readonly code: CodeOf<'auth'>;
  constructor(...args: ErrorArgs<'auth'>) {
    super(...args);
  }
}
/** The wire protocol was violated (framing, schema, order, versions, deadlines). */
export class ProtocolError extends KdsError {
  declare readonly code: CodeOf<'protocol'>;
  constructor(...args: ErrorArgs<'protocol'>) {
    super(...args);
  }
}
/** Something looked up does not exist, or is revoked/expired, or the session it needs is gone. */
export class StateError extends KdsError {
  declare readonly code: CodeOf<'state'>;
  constructor(...args: ErrorArgs<'state'>) {
    super(...args);
  }
}
/** Local environment problems: files, store, configuration, a server that cannot be reached. */
export class EnvironmentError extends KdsError {
  declare readonly code: CodeOf<'environment'>;
  constructor(...args: ErrorArgs<'environment'>) {
    super(...args);
  }
}
/** A defect or an unexpected failure; its message says nothing about internals. */
export class InternalError extends KdsError {
  declare readonly code: CodeOf<'internal'>;
  constructor(...args: ErrorArgs<'internal'>) {
    super(...args);
  }
}

const CLASS_OF_KIND = {
  input: InputError,
  policy: PolicyError,
  auth: AuthError,
  protocol: ProtocolError,
  state: StateError,
  environment: EnvironmentError,
  internal: InternalError,
} as const;

/** The error for a code known only at run time (a peer's alert, a limit's verdict), as its own class. */
export function errorFor(
  code: ErrorCode,
  message: string,
  details?: Record<string, unknown>,
  options?: { cause?: unknown },
): KdsError {
  const Class = CLASS_OF_KIND[CODES[code].kind] as new (...args: ErrorArgs<ErrorKind>) => KdsError;
  return new Class(code, message, details, options);
}

/** Wrap anything thrown into a KdsError without leaking internals (used at process/wire edges). */
export function toKdsError(err: unknown): KdsError {
  if (err instanceof KdsError) return err;
  return new InternalError('internal', 'internal error', undefined, { cause: err });
}

export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof Uint8Array) return `bytes(${value.length})`;
  return typeof value;
}
