// The KDC's request registry and dispatcher: every application request type is served by one handler
// registered here with the roles allowed to call it. Features add request types by registering a
// handler from their own module (`registerHandler('key.reserve', { roles: ['client'], handle })`) and
// adding one import line to server/kdc-handlers/index.ts; nothing else in the KDC changes.
//
// The body a handler receives has already been validated by the codec against the catalog schema of
// its type (shared/protocol), so handlers never see unknown fields or wrong types.
import { PolicyError, ProtocolError, AuthError } from '../../shared/errors.js';
import type { ErrorCode } from '../../shared/errors.js';
import type { CertificateAuthority } from '../ca/authority.js';
import type { AsyncStore } from '../store/async-store.js';
import type { EventBus } from '../events/bus.js';
import type { SessionTable } from './session-table.js';

/**
 * Who is at the other end of a session (the `role` of the `ready` push): `client` and `admin` hold a
 * certificate; `anonymous` is an enrollment handshake (no client certificate); `insecure` is the MITM
 * lab's unauthenticated mode (a claimed name nobody verified).
 */
export type Role = 'client' | 'admin' | 'anonymous' | 'insecure';

export interface Identity {
  name: string;
  serialHex: string;
  role: Role;
  /** Certificate notAfter (epoch ms); 0 without a certificate. `name`/`serialHex` are '' when unknown. */
  expiresAt: number;
}

/** What a handler can do to the session that sent the request. */
/** Seals a resumption ticket for a session's identity (server/kdc/ticket-keys.ts). */
export interface TicketIssuer {
  issue(
    who: { name: string; serialHex: string; role: 'client' | 'admin'; notAfter: number },
    psk: Buffer,
  ): { ticket: Buffer; expiresAt: number };
}

export interface SessionHandle {
  readonly id: string;
  readonly identity: Identity;
  readonly remoteAddress: string;
  /** Send a server push `{ t: type, b: body }` inside the record layer. */
  push(type: string, body: Record<string, unknown>): void;
  /** Close now with the close code mapped from `code` (a session.closing push precedes it). */
  close(code: ErrorCode, reason?: string): Promise<void>;
  /**
   * Close right after the reply to request `requestId` has been sent (self-revocation; the handler's
   * ctx.requestId); `undefined` cancels it (the request failed after all).
   */
  closeAfterReply(code: ErrorCode | undefined, reason?: string, requestId?: number): void;
  /** A closeAfterReply is pending: revocation leaves this session to its own request's reply. */
  readonly closingAfterReply: boolean;
  readonly closed: boolean;
  /** The session's resumption secret, once (docs/protocol.md "Resumption"); undefined afterwards. */
  takeResumptionSecret(): Buffer | undefined;
}

/** The server-side services a handler may use. */
export interface KdcServices {
  readonly ca: CertificateAuthority;
  readonly store: AsyncStore;
  readonly sessions: SessionTable;
  /** Where the KDC reports what it decides (shared/events/kdc-events.ts). */
  readonly events: EventBus;
  readonly startedAt: number;
  /** Resumption tickets (absent: this KDC does not resume sessions). */
  readonly tickets?: TicketIssuer;
  /**
   * End every live session of a certificate: push `cert.revoked` + `session.closing`, close with the
   * close code of `code`, and resolve once those sockets are closed (or were forcibly terminated).
   * `except` is left open (the caller closes it after replying).
   */
  endSessionsOf(serialHex: string, code: ErrorCode, except?: SessionHandle): Promise<number>;
  /** Lifetime of an enrollment token when `admin.token` gives no ttl. */
  readonly tokenTtlMs: number;
}

export interface HandlerContext {
  session: SessionHandle;
  identity: Identity;
  kdc: KdcServices;
  /** The id of the request being handled (closeAfterReply waits for ITS reply). */
  requestId?: number;
}

export interface Handler {
  /** Roles allowed to call this type; anything else gets `forbidden` (or `not_authenticated`). */
  roles: readonly Role[];
  handle(ctx: HandlerContext, body: Record<string, unknown>): Promise<Record<string, unknown>>;
}

export class HandlerRegistry {
  readonly #handlers = new Map<string, Handler>();

  register(type: string, handler: Handler): void {
    if (this.#handlers.has(type)) throw new Error(`handler for ${type} registered twice`);
    if (handler.roles.length === 0) throw new Error(`handler for ${type} allows no role`);
    this.#handlers.set(type, handler);
  }

  get(type: string): Handler | undefined {
    return this.#handlers.get(type);
  }

  has(type: string): boolean {
    return this.#handlers.has(type);
  }

  types(): string[] {
    return [...this.#handlers.keys()].sort();
  }

  /**
   * Route one validated request: unknown type, then role, then the handler. Errors propagate as
   * KdsErrors; the connection turns them into `{ t: 'error', id, code, message }`.
   */
  async dispatch(
    ctx: HandlerContext,
    type: string,
    body: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    const handler = this.#handlers.get(type);
    if (handler === undefined) throw new ProtocolError('unknown_type', `unknown request type ${type}`);
    if (!handler.roles.includes(ctx.identity.role)) {
      // An anonymous or insecure session has not authenticated anybody: say so, rather than
      // "forbidden", which would suggest an identity was recognised and refused.
      if (ctx.identity.role === 'anonymous' || ctx.identity.role === 'insecure') {
        throw new AuthError('not_authenticated', 'this request needs an authenticated session');
      }
      throw new PolicyError('forbidden', `role ${ctx.identity.role} may not call ${type}`);
    }
    return handler.handle(ctx, body);
  }
}

/** The registry the KDC serves from. Feature modules register into it at import time. */
export const registry = new HandlerRegistry();

export function registerHandler(type: string, handler: Handler): void {
  registry.register(type, handler);
}
