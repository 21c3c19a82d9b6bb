// The KDC's request dispatcher: every application request type is served by one handler with the roles
// allowed to call it. The KDC's handlers are one table keyed by request type
// (server/kdc-handlers/index.ts, typed KdcHandlers): a request type without a handler, or a handler
// whose body or reply is not its schema's inferred type, does not compile.
//
// The body a handler receives has already been validated by the codec against the catalog schema of
// its type (shared/protocol/secure-channel.ts ServerChannel.open), so handlers never see unknown fields
// or wrong types, and read it as RequestBody<T> without checking or converting.
import { PolicyError, ProtocolError, AuthError } from '../../shared/errors.js';
import type { ErrorCode } from '../../shared/errors.js';
import type { RequestBody, RequestType, ResponseBody } from '../../shared/protocol/catalog.js';
import type { CertificateAuthority } from '../ca/authority.js';
import type { AsyncStore } from '../store/async-store.js';
import type { EventBus } from '../events/bus.js';
import type { KeyService } from '../keys/service.js';
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
  /**
   * When a full handshake proved the certificate's key (epoch ms): this session's own, or for a resumed
   * one the ticket's. Absent without a certificate.
   */
  authenticatedAt?: number;
}

/** What a handler can do to the session that sent the request. */
/** Seals a resumption ticket for a session's identity (server/kdc/ticket-keys.ts). */
export interface TicketIssuer {
  issue(
    who: {
      name: string;
      serialHex: string;
      role: 'client' | 'admin';
      notAfter: number;
      authenticatedAt: number;
    },
    psk: Buffer,
  ): Promise<{ ticket: Buffer; expiresAt: number }>;
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

/** The server-side services a handler may use: built once by the KDC (server/kdc/kdc.ts startKdc). */
export interface KdcServices {
  readonly ca: CertificateAuthority;
  readonly store: AsyncStore;
  /** Key distribution (docs/keys.md), wired to this KDC's store, CA and sessions. */
  readonly keys: KeyService;
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

/** A handler of requests whose validated body is `B`, answering `R`. */
export interface Handler<B, R> {
  /** Roles allowed to call this type; anything else gets `forbidden` (or `not_authenticated`). */
  readonly roles: readonly Role[];
  // A function-typed property, not a method: its parameter is then checked contravariantly, so a
  // handler expecting a body its schema does not guarantee is a compile error.
  readonly handle: (ctx: HandlerContext, body: B) => Promise<R>;
}

/**
 * The handler of request type `T`: it receives what `T`'s request schema validated and answers what
 * `T`'s response schema infers, so a missing field, a wrong type or a value outside the wire's enum is
 * a compile error (test/server/kdc/reply-types.test.ts). The reply is validated again when it is
 * sealed (ServerChannel.sealOk), which also refuses what the compiler cannot see: unknown fields, a
 * cross-field rule (`refine`), a bound.
 */
export type KdcHandler<T extends RequestType> = Handler<RequestBody<T>, ResponseBody<T>>;

/** One handler per request type of the catalog: the KDC's table (server/kdc-handlers/index.ts). */
export type KdcHandlers = { readonly [T in RequestType]: KdcHandler<T> };

/**
 * Any table of handlers: the KDC serves KdcHandlers; a test may serve request types of its own. The
 * body is `never` here because the registry cannot know it: only the table's own type can.
 */
type HandlerTable = { readonly [type: string]: Handler<never, Record<string, unknown>> };

export class HandlerRegistry {
  readonly #handlers = new Map<string, Handler<never, Record<string, unknown>>>();

  constructor(handlers: HandlerTable) {
    for (const [type, handler] of Object.entries(handlers)) {
      if (handler.roles.length === 0) throw new Error(`handler for ${type} allows no role`);
      this.#handlers.set(type, handler);
    }
  }

  /** The roles allowed to send `type` (undefined: no handler); docs/messages.md prints them. */
  rolesOf(type: string): readonly Role[] | undefined {
    return this.#handlers.get(type)?.roles;
  }

  types(): string[] {
    return [...this.#handlers.keys()].sort();
  }

  /**
   * Route one validated request: unknown type, then role, then the handler. Errors propagate as
   * KdsErrors; the connection turns them into `{ t: 'error', id, code, message }`.
   */
  async dispatch(ctx: HandlerContext, type: string, body: unknown): Promise<Record<string, unknown>> {
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
    // ServerChannel.open validated `body` against the request schema of `type`, which is the schema
    // the handler's table typed it with: the one place the body's type is asserted.
    return handler.handle(ctx, body as never);
  }
}
