// One WebSocket connection to the KDC, from the first byte to the close: the handshake (driving the
// pure ServerHandshake of shared/protocol), then the session (records in, requests dispatched through
// the handler registry, responses and pushes sealed out). Everything that can go wrong ends in ONE
// place, fail(): an `alert` (before keys exist) or a `session.closing` push (after; none for a record
// that failed authentication), then a close with the code shared/errors.ts maps to the error and the
// code as its reason, so the peer always learns why.
//
// Invariants:
// - Frames are processed strictly in arrival order (one promise chain), because the handshake steps
//   are asynchronous (RSA signing on the thread pool) and the record layer's sequence numbers are
//   implicit. Requests are then handled concurrently; replies carry their request id.
// - Requests in flight are bounded per session (limits.ts): MAX_IN_FLIGHT_REQUESTS for a session with
//   a name, one for an anonymous (enrollment) session, which may also send only MAX_ANONYMOUS_REQUESTS
//   in all. Records beyond the bound wait, unopened and in order, while the socket is paused: TCP
//   backpressure, so a client that pipelines is slowed down, never refused. ws still delivers the frames
//   it had already read, so the wait queue is bounded too (MAX_QUEUED_RECORDS, then rate_limited).
// - What the KDC sends and the peer has not read is bounded too: over SEND_HIGH_WATER_BYTES its requests
//   wait (the socket is paused) until the backlog has gone out; over MAX_SEND_BACKLOG_BYTES (pushes keep
//   coming) the session is closed with rate_limited. A peer that stops reading cannot make the KDC hold
//   its replies and pushes in memory without end.
// - A session with a certificate ends at the certificate's notAfter: kdc.ts sweeps the session table
//   every second and closes it with cert_expired, and every request is checked against notAfter here,
//   before it is dispatched, so none is served after it.
// - Sealing and sending happen in one synchronous step, so the send order is the sequence order.
// - A connection's failure touches only that connection: every callback below catches.
import { labOff, type Defences } from '../../shared/lab-switches.js';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { RawData, WebSocket } from 'ws';
import {
  KdsError,
  PolicyError,
  AuthError,
  ProtocolError,
  EnvironmentError,
  InternalError,
  errorFor,
  closeCodeFor,
  isErrorCode,
  toKdsError,
  type ErrorCode,
} from '../../shared/errors.js';
import type { ServerHandshake, ServerHandshakeResult } from '../../shared/protocol/handshake.js';
import { encodeAlert } from '../../shared/protocol/messages.js';
import type { ServerChannel } from '../../shared/protocol/secure-channel.js';
import { ticketAuthenticatedAt } from '../../shared/protocol/ticket.js';
import { pastNotAfter } from '../../shared/pki/verify.js';
import { defenceForCode } from '../../shared/defences.js';
import type { EventBus } from '../events/bus.js';
import { describeRequest, REFUSAL_CODES } from '../events/request-events.js';
import type { CheckedClient } from './cert-check.js';
import type { HandlerRegistry, Identity, KdcServices, SessionHandle } from './dispatch.js';
import {
  MAX_ANONYMOUS_IN_FLIGHT,
  MAX_ANONYMOUS_REQUESTS,
  MAX_IN_FLIGHT_REQUESTS,
  MAX_QUEUED_RECORDS,
  MAX_SEND_BACKLOG_BYTES,
  SEND_HIGH_WATER_BYTES,
} from './limits.js';
import { closeStartedHere } from './socket-close.js';
import type { UnsentBudget } from './unsent-budget.js';

/** Frames a client may queue while the server is still working on its handshake. */
const MAX_QUEUED_HANDSHAKE_FRAMES = 4;
/** After we send a close frame, how long the peer has to answer before the socket is destroyed. */
const CLOSE_GRACE_MS = 2_000;
const NOBODY: Identity = Object.freeze({ name: '', serialHex: '', role: 'anonymous', expiresAt: 0 });

export interface ConnectionHost {
  readonly registry: HandlerRegistry;
  readonly services: KdcServices;
  readonly handshakeTimeoutMs: number;
  /** Lifetime of an anonymous (enrollment) session: long enough for one `enroll`, no more. */
  readonly anonymousSessionMs: number;
  /** The clock certificate expiry is read against (default Date.now). */
  readonly now?: () => number;
  /** Requests an anonymous session may send in all (default MAX_ANONYMOUS_REQUESTS). */
  readonly maxAnonymousRequests?: number;
  /**
   * A fresh ServerHandshake whose client-certificate check reports its result through onChecked, and
   * (for the event log) the subject CN of any certificate presented, before it is checked.
   */
  createHandshake(
    onChecked: (checked: CheckedClient) => void,
    onPresented?: (subjectCN: string) => void,
  ): ServerHandshake;
  /** Install the renewal `serialHex` (its first handshake succeeded); throws to refuse the session. */
  installRenewal?(serialHex: string): Promise<void>;
  /**
   * Renewals this process has installed or read: `seen()` counts them, `isActive` reads a certificate's
   * status (from the record cache, which this process's own writes invalidate).
   */
  renewals?: { seen(): number; isActive(serialHex: string): Promise<boolean> };
  /** The handshake completed: release the unauthenticated slot, index the session. */
  authenticated(conn: Connection): void;
  /** The socket closed (for whatever reason). */
  closed(conn: Connection): void;
  log(line: string): void;
  /** The console's observer (server/console); absent unless a console was asked for: then it costs nothing. */
  readonly watch?: ConnectionWatch;
  /** The MITM lab's ablation switches (shared/lab-switches.ts); default every defence on. */
  defences?: Defences;
  /** Unread output of all sessions together (unsent-budget.ts); absent: only each session's own bounds. */
  readonly unsent?: UnsentBudget<Connection>;
}

/**
 * What the console draws of a connection: the frames that crossed (name and size only; inside a record,
 * the message type the record carried), how the handshake ended, and the close.
 */
export interface ConnectionWatch {
  opened(conn: Connection): void;
  /** `name`: client_hello, server_hello, client_finish, alert, or the type inside a record. */
  frame(
    conn: Connection,
    dir: 'in' | 'out',
    name: string,
    bytes: number,
    sealed: boolean,
    code?: string,
  ): void;
  /**
   * The peer's second handshake frame: its finish, or an alert in its place. The watch tells which only
   * if the handshake fails (a decode the handshakes that succeed are spared).
   */
  finish(conn: Connection, frame: Buffer): void;
  established(conn: Connection, group: string): void;
  failed(conn: Connection, err: KdsError, established: boolean): void;
  /** `reason`: the close frame's reason, as sent by whichever side closed first (network input). */
  closed(conn: Connection, code: number, reason: string): void;
}

type Phase = 'handshake' | 'open' | 'closing' | 'closed';

export class Connection implements SessionHandle {
  readonly remoteAddress: string;
  /** Counted against the unauthenticated cap until the handshake completes or the socket closes. */
  holdsSlot = false;
  // Drawn on first use: before the handshake completes the id only names the connection in a log line,
  // and most connections never need one (randomBytes costs ~5-9 us per call, once per connection).
  #id: string | undefined;
  #identity: Identity = NOBODY;
  #resumptionSecret: Buffer | undefined;
  #mode: ServerHandshakeResult['mode'] | undefined;
  #phase: Phase = 'handshake';
  readonly #ws: WebSocket;
  readonly #host: ConnectionHost;
  #handshake: ServerHandshake | undefined;
  #helloDone = false;
  /** Renewals the KDC had seen when the client_hello arrived, before any check of the certificate. */
  #renewalsAtHello = 0;
  #checked: CheckedClient | undefined;
  #channel: ServerChannel | undefined;
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;
  /** Requests dispatched and not answered yet. */
  #inFlight = 0;
  /** Records waiting for a free request slot (socket paused meanwhile); undefined when none wait. */
  #waiting: Buffer[] | undefined;
  /**
   * More than SEND_HIGH_WATER_BYTES sent and not yet taken by the kernel: requests wait until it has
   * gone out. While set, every frame is sent with #flushed as its callback, so the last one's callback
   * (FIFO: everything before it went out too) ends the wait.
   */
  #backlogged = false;
  readonly #flushed = (): void => {
    const unsent = this.#ws.bufferedAmount;
    if (this.#backlogged && unsent <= SEND_HIGH_WATER_BYTES / 2) {
      this.#backlogged = false;
      this.#reportUnsent(unsent);
      this.#drain();
    } else this.#reportUnsent(unsent);
  };
  /** This session has unsent bytes counted in the host's UnsentBudget. */
  #counted = false;
  /** Requests an anonymous session has sent (it may send MAX_ANONYMOUS_REQUESTS). */
  #requests = 0;
  #timer: NodeJS.Timeout | undefined;
  #closeAfter: { code: ErrorCode; reason: string; id?: number } | undefined;
  #closedResolve!: () => void;
  readonly #closedPromise: Promise<void>;
  #closeCode: number | undefined;
  readonly #events: EventBus;
  /** performance.now() at accept: handshake and connection durations. */
  readonly #openedAt = performance.now();
  /** Refused before its handshake began (kdc.ts reported it as connection.refused). */
  #refused = false;
  /** The CN of the certificate the peer presented (unverified), for a refused handshake's event. */
  #presented: string | undefined;
  /** Our error code, when we closed the connection. */
  #failCode: string | undefined;

  constructor(ws: WebSocket, remoteAddress: string, host: ConnectionHost) {
    this.#ws = ws;
    this.remoteAddress = remoteAddress;
    this.#host = host;
    this.#events = host.services.events;
    this.#closedPromise = new Promise((resolve) => (this.#closedResolve = resolve));
    ws.on('message', (data: RawData, isBinary: boolean) => this.#onMessage(data, isBinary));
    // ws reports protocol violations it detects itself (frame over maxPayload -> it closes with 1009,
    // bad UTF-8, bad opcodes) as 'error' and then closes: nothing to do but not crash.
    ws.on('error', () => {});
    ws.on('close', (code: number, reason: Buffer) => this.#onClose(code, reason));
  }

  /** Session id (hex) once established; a random connection id before. */
  get id(): string {
    return (this.#id ??= randomBytes(8).toString('hex'));
  }

  get identity(): Identity {
    return this.#identity;
  }

  get mode(): ServerHandshakeResult['mode'] | undefined {
    return this.#mode;
  }

  /**
   * For the console's drawing of a handshake that failed: the mode its client_hello asked for and the
   * name in the certificate it presented, neither of them verified (`mode` and `identity` are set only
   * once the handshake succeeds).
   */
  get claimed(): { mode: ServerHandshakeResult['mode'] | undefined; name: string | undefined } {
    return { mode: this.#mode ?? this.#handshake?.requestedMode, name: this.#presented };
  }

  get closed(): boolean {
    return this.#phase === 'closing' || this.#phase === 'closed';
  }

  get established(): boolean {
    return this.#phase === 'open';
  }

  /** Resolves when the socket has closed. */
  get whenClosed(): Promise<void> {
    return this.#closedPromise;
  }

  /** Close code of the socket (ours or the peer's), once closed. */
  get closeCode(): number | undefined {
    return this.#closeCode;
  }

  /** Begin: `refusal` (cap or rate limit) fails the connection at once; else the handshake clock starts. */
  start(refusal?: KdsError): void {
    this.#host.watch?.opened(this);
    if (refusal !== undefined) {
      this.#refused = true;
      this.fail(refusal);
      return;
    }
    if (this.#events.wants('connection.opened')) {
      this.#events.emit({ type: 'connection.opened', connection: this.id, address: this.remoteAddress });
    }
    this.#handshake = this.#host.createHandshake(
      (checked) => (this.#checked = checked),
      (cn) => (this.#presented = cn),
    );
    this.#timer = setTimeout(
      () => this.fail(new ProtocolError('handshake_timeout', 'handshake not completed in time')),
      this.#host.handshakeTimeoutMs,
    );
    this.#timer.unref?.();
  }

  push(type: string, body: Record<string, unknown>): void {
    if (this.#phase !== 'open' || this.#channel === undefined) return;
    let frame: Buffer;
    try {
      frame = this.#channel.sealPush(type, body);
    } catch (err) {
      // Out of sequence numbers: the session ends (RFC 8446 5.3 "terminate the connection").
      if (err instanceof KdsError && err.code === 'sequence_exhausted') {
        this.fail(err);
        return;
      }
      throw err; // a body that does not match its push schema is the caller's bug
    }
    this.#send(frame);
    // A key handed to its recipient (live, or replayed by key.sync): the push names sender and serial.
    if (type === 'key.delivered' && this.#events.readers !== 0) {
      this.#events.emit({
        type: 'key.delivered',
        serial: typeof body.serial === 'string' ? body.serial : '',
        from: typeof body.from === 'string' ? body.from : '',
        to: this.#identity.name,
      });
    }
    this.#host.watch?.frame(this, 'out', type, frame.length, true);
  }

  /** session.closing push, then close with the close code of `code`; resolves once the socket closed. */
  close(code: ErrorCode, reason?: string): Promise<void> {
    this.fail(errorFor(code, reason ?? code));
    return this.#closedPromise;
  }

  /**
   * Close right after the reply to request `requestId` (without one: after the next reply). Requests run
   * concurrently (up to MAX_IN_FLIGHT_REQUESTS), so "the next reply" may be another request's: a
   * client's ticket request answered while its self-revocation is being written would close the
   * session before the revocation's own reply, and its owner would never learn it succeeded.
   */
  closeAfterReply(code: ErrorCode | undefined, reason?: string, requestId?: number): void {
    this.#closeAfter =
      code === undefined
        ? undefined
        : { code, reason: reason ?? code, ...(requestId === undefined ? {} : { id: requestId }) };
  }

  get closingAfterReply(): boolean {
    return this.#closeAfter !== undefined;
  }

  /** Server shutdown: 1001 going away (with a session.closing push when a session is open). */
  shutdown(): Promise<void> {
    this.fail(errorFor('unavailable', 'server shutting down'));
    return this.#closedPromise;
  }

  /** Close immediately without a close handshake (shutdown grace period over). */
  terminate(): void {
    this.#ws.terminate();
  }

  /**
   * The one exit: tell the peer what went wrong (alert before keys exist, session.closing push after),
   * then close with the mapped close code. Idempotent.
   */
  fail(err: unknown): void {
    if (this.#phase === 'closing' || this.#phase === 'closed') return;
    const e = toKdsError(err);
    if (e.code === 'internal') this.#host.log(`connection ${this.id}: internal error: ${describe(err)}`);
    this.#failCode = e.code;
    this.#host.unsent?.forget(this);
    if (this.#phase === 'handshake' && !this.#refused) this.#reportRefusal(e);
    else if (this.#phase === 'open') this.#reportSessionFailure(e);
    const established = this.#phase === 'open' && this.#channel !== undefined;
    this.#phase = 'closing';
    this.#host.watch?.failed(this, e, established);
    this.#clearTimer();
    // Requests still waiting are dropped unanswered (the session.closing push says why), and the socket
    // is read again so that the peer's close frame can complete the close handshake.
    this.#waiting = undefined;
    if (this.#ws.isPaused) this.#ws.resume();
    try {
      if (e.code === 'record_auth') {
        // A record that failed authentication is never answered (docs/protocol.md "Transport"): its
        // sender may not hold the session keys, and an answer to a forged tag is an oracle for it. The
        // close code (4005) and reason still say why.
      } else if (established) {
        const push = this.#channel!.sealPush('session.closing', { code: e.code, reason: e.message });
        this.#send(push);
        this.#host.watch?.frame(this, 'out', 'session.closing', push.length, true, e.code);
      } else {
        const alert = encodeAlert(e);
        this.#send(alert);
        // The peer's own alert, sent back, is no news on the diagram.
        if (e.details?.remote !== true)
          this.#host.watch?.frame(this, 'out', 'alert', alert.length, false, e.code);
      }
    } catch {
      // Cannot even seal (sequence exhausted): the close code still says why.
    }
    this.#closeSocket(e.code === 'unavailable' ? 1001 : closeCodeFor(e.code), e.code);
  }

  #closeSocket(code: number, reason: string): void {
    try {
      closeStartedHere(this.#ws);
      this.#ws.close(code, reason);
    } catch {
      this.#ws.terminate();
      return;
    }
    // A peer that never answers our close frame does not keep the socket (or the slot) forever.
    const grace = setTimeout(() => this.#ws.terminate(), CLOSE_GRACE_MS);
    grace.unref?.();
    void this.#closedPromise.then(() => clearTimeout(grace));
  }

  #send(frame: Buffer): void {
    const ws = this.#ws;
    if (ws.readyState !== ws.OPEN) return;
    if (!this.#backlogged && ws.bufferedAmount + frame.length <= SEND_HIGH_WATER_BYTES) {
      ws.send(frame, { binary: true });
      // Usually 0: the kernel took the frame at once. Otherwise counted until a later send or the close.
      const unsent = ws.bufferedAmount;
      if (unsent !== 0 || this.#counted) this.#reportUnsent(unsent);
      return;
    }
    this.#backlogged = true;
    ws.send(frame, { binary: true }, this.#flushed);
    const unsent = ws.bufferedAmount;
    if (unsent > MAX_SEND_BACKLOG_BYTES && (this.#phase === 'open' || this.#phase === 'handshake')) {
      this.fail(
        new PolicyError(
          'rate_limited',
          `the peer does not read what the KDC sends (over ${MAX_SEND_BACKLOG_BYTES >> 20} MiB unread)`,
        ),
      );
      return;
    }
    this.#reportUnsent(unsent);
  }

  /** Tell the host's UnsentBudget what this session holds; close whichever session it blames. */
  #reportUnsent(unsent: number): void {
    const budget = this.#host.unsent;
    if (budget === undefined || this.#phase === 'closing' || this.#phase === 'closed') return;
    this.#counted = unsent !== 0;
    budget
      .report(this, unsent, this.#backlogged)
      ?.fail(
        new PolicyError(
          'rate_limited',
          'the KDC holds too much unread output for its sessions; this one has left it unread longest',
        ),
      );
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** A refused (or abandoned) handshake: who refused, with which code, stopped by which defence. */
  #reportRefusal(e: KdsError): void {
    if (!this.#events.wants('handshake.refused')) return;
    const by = e.details?.remote === true ? 'peer' : 'kdc';
    const defence = defenceForCode(e.code, { phase: 'handshake', remote: by === 'peer' })?.defence;
    const group = this.#handshake?.negotiatedGroup;
    this.#events.emit({
      type: 'handshake.refused',
      connection: this.id,
      address: this.remoteAddress,
      ...(this.#presented === undefined ? {} : { claimedName: this.#presented }),
      code: e.code,
      by,
      ...(defence === undefined ? {} : { defence }),
      ...(group === undefined ? {} : { group }),
      durationMs: performance.now() - this.#openedAt,
    });
  }

  /** An open session ended by one of the defences (docs/operations.md): reported at warn. */
  #reportSessionFailure(e: KdsError): void {
    if (!this.#events.wants('session.failed')) return;
    const defence = defenceForCode(e.code, { remote: e.details?.remote === true })?.defence;
    if (defence === undefined) return; // revocation, expiry, shutdown, limits: not an attack on the channel
    if (e.code === 'cert_revoked' || e.code === 'cert_expired') return;
    this.#events.emit({
      type: 'session.failed',
      connection: this.id,
      address: this.remoteAddress,
      name: this.#identity.name,
      role: this.#identity.role,
      code: e.code,
      defence,
    });
  }

  /** The session's resumption secret, handed out once (the session's one ticket), then forgotten. */
  takeResumptionSecret(): Buffer | undefined {
    const psk = this.#resumptionSecret;
    this.#resumptionSecret = undefined;
    return psk;
  }

  #onClose(code: number, reason: Buffer): void {
    this.#host.unsent?.forget(this);
    this.#resumptionSecret?.fill(0);
    this.#resumptionSecret = undefined;
    // The peer closed in the middle of the handshake without an alert: a client that refused our
    // server_hello (a man in the middle substituted something it checks), or one that gave up. A kds
    // client closes with its error code as the reason; a proxy in the middle that passes the close on
    // lets the KDC say which check refused. The reason is the peer's claim: only a known code whose
    // close code matches is taken, anything else reads as abandoned.
    if (this.#phase === 'handshake' && !this.#refused && this.#events.wants('handshake.refused')) {
      const said = reason.toString('utf8');
      const known = isErrorCode(said) && closeCodeFor(said) === code ? said : undefined;
      const defence =
        known === undefined
          ? undefined
          : defenceForCode(known, { phase: 'handshake', remote: true })?.defence;
      this.#events.emit({
        type: 'handshake.refused',
        connection: this.id,
        address: this.remoteAddress,
        ...(this.#presented === undefined ? {} : { claimedName: this.#presented }),
        code: known ?? (this.#helloDone ? 'abandoned_after_server_hello' : 'abandoned'),
        by: 'peer',
        ...(defence === undefined ? {} : { defence }),
        ...(this.#handshake?.negotiatedGroup === undefined ? {} : { group: this.#handshake.negotiatedGroup }),
        durationMs: performance.now() - this.#openedAt,
      });
    }
    if (this.#events.wants('connection.closed') && !this.#refused) {
      this.#events.emit({
        type: 'connection.closed',
        connection: this.id,
        address: this.remoteAddress,
        name: this.#identity.name,
        role: this.#identity.role,
        closeCode: code,
        ...(this.#failCode === undefined ? {} : { code: this.#failCode }),
        durationMs: performance.now() - this.#openedAt,
      });
    }
    this.#clearTimer();
    this.#phase = 'closed';
    this.#closeCode = code;
    this.#host.closed(this);
    this.#host.watch?.closed(this, code, reason.toString('utf8'));
    this.#closedResolve();
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.#phase === 'closing' || this.#phase === 'closed') return;
    if (!isBinary) {
      this.fail(
        new ProtocolError('bad_frame', 'text frames are not accepted: kds frames are binary msgpack'),
      );
      return;
    }
    const frame = Array.isArray(data)
      ? Buffer.concat(data)
      : Buffer.isBuffer(data)
        ? data
        : Buffer.from(data);
    if (this.#phase === 'open' && this.#queued === 0) {
      this.#onRecord(frame);
      return;
    }
    if (++this.#queued > MAX_QUEUED_HANDSHAKE_FRAMES) {
      this.fail(new ProtocolError('unexpected_message', 'too many frames before the handshake completed'));
      return;
    }
    this.#queue = this.#queue.then(async () => {
      this.#queued -= 1;
      if (this.#phase === 'open') this.#onRecord(frame);
      else if (this.#phase === 'handshake') await this.#handshakeStep(frame);
    });
  }

  async #handshakeStep(frame: Buffer): Promise<void> {
    try {
      const hs = this.#handshake;
      if (hs === undefined) throw new ProtocolError('unexpected_message', 'connection not admitted');
      const watch = this.#host.watch;
      if (!this.#helloDone) {
        this.#renewalsAtHello = this.#host.renewals?.seen() ?? 0;
        watch?.frame(this, 'in', 'client_hello', frame.length, false);
        const serverHello = await hs.receiveClientHello(frame);
        this.#helloDone = true;
        if (this.#phase === 'handshake') {
          this.#send(serverHello);
          watch?.frame(this, 'out', 'server_hello', serverHello.length, false);
        }
        return;
      }
      watch?.finish(this, frame);
      const result = await hs.receiveClientFinish(frame);
      if (this.#phase === 'handshake') await this.#establish(result);
    } catch (err) {
      this.fail(err);
    }
  }

  async #establish(result: ServerHandshakeResult): Promise<void> {
    this.#handshake = undefined;
    const checkedClient = this.#checked;
    // Only needed until here: the store record holds the certificate's PEM, ~1.5 kB per idle session.
    this.#checked = undefined;
    let identity: Identity;
    if (result.mode === 'auth') {
      const checked = checkedClient;
      const cert = result.clientCertificate;
      if (checked === undefined || cert === undefined || checked.cert !== cert) {
        throw new InternalError('internal', 'handshake finished without a checked certificate');
      }
      // The certificate was checked before the (asynchronous) signature step; a revocation may have
      // been acknowledged in between, and revocation only closes sessions already in the table.
      // LAB SWITCH revocation: the second look at the revocation list is skipped too.
      if (!labOff(this.#host.defences, 'revocation') && this.#host.services.ca.revocationOf(cert.serialHex)) {
        throw new AuthError('cert_revoked', 'certificate revoked');
      }
      // A renewal's first session: the client has now proven it holds the new key, so the new
      // certificate becomes active and the renewed one superseded (re-checked under the write lock).
      if (checked.installsRenewal === true) {
        if (this.#host.installRenewal === undefined)
          throw new AuthError('cert_revoked', 'certificate superseded');
        await this.#host.installRenewal(cert.serialHex);
      }
      identity = {
        name: checked.record.name,
        serialHex: cert.serialHex,
        role: checked.record.role === 'admin' ? 'admin' : 'client',
        expiresAt: cert.notAfter,
        authenticatedAt: Date.now(),
      };
    } else if (result.mode === 'resume') {
      const resumed = result.resumed;
      if (resumed === undefined) throw new InternalError('internal', 'resumed without a ticket');
      // As for a full handshake: a revocation acknowledged while the handshake ran is seen here.
      // LAB SWITCH revocation: the second look at the revocation list is skipped too.
      if (!labOff(this.#host.defences, 'revocation') && this.#host.services.ca.revocationOf(resumed.serial)) {
        throw new AuthError('cert_revoked', 'certificate revoked');
      }
      identity = {
        name: resumed.name,
        serialHex: resumed.serial,
        role: resumed.role,
        expiresAt: resumed.notAfter,
        authenticatedAt: ticketAuthenticatedAt(resumed),
      };
    } else if (result.mode === 'enroll') {
      identity = NOBODY;
    } else {
      // MITM lab control mode (kds server start --insecure-dh, docs/attacks.md): the naive KDC believes
      // the claimed name and acts for that name's current client certificate. Nothing is verified.
      const claimed = result.claimedName ?? '';
      const cert = claimed === '' ? undefined : await this.#host.services.store.activeCertificate(claimed);
      const usable =
        cert !== undefined &&
        cert.role === 'client' &&
        this.#host.services.ca.revocationOf(cert.serialHex) === undefined;
      identity = {
        name: claimed,
        serialHex: usable ? cert.serialHex : '',
        role: 'insecure',
        expiresAt: usable ? cert.notAfter : 0,
      };
    }
    if (result.mode === 'auth' || result.mode === 'resume') {
      if (!(await this.#lastLook(identity.serialHex))) {
        throw new AuthError('cert_revoked', 'certificate superseded by a renewal');
      }
    }
    // The socket may have closed (or the handshake timed out) while the store answered.
    if (this.#phase !== 'handshake') return;
    this.#clearTimer();
    if (identity.role === 'anonymous') {
      // Nobody is authenticated on an enrollment session: it gets a short lifetime (and keeps its
      // unauthenticated slot, see kdc.ts), so idle anonymous sessions cannot pile up.
      this.#timer = setTimeout(
        () => this.fail(new EnvironmentError('timeout', 'enrollment session lifetime exceeded')),
        this.#host.anonymousSessionMs,
      );
      this.#timer.unref?.();
    }
    this.#identity = identity;
    this.#mode = result.mode;
    this.#id = result.sessionId;
    this.#channel = result.channel;
    this.#phase = 'open';
    this.#host.authenticated(this);
    if (this.#events.wants('handshake.completed')) {
      this.#events.emit({
        type: 'handshake.completed',
        connection: this.id,
        address: this.remoteAddress,
        name: identity.name,
        serial: identity.serialHex,
        role: identity.role,
        mode: result.mode,
        group: result.group,
        durationMs: performance.now() - this.#openedAt,
      });
    }
    this.#host.watch?.established(this, result.group);
    const ready: Record<string, unknown> = {
      session: result.sessionId,
      mode: result.mode,
      role: identity.role,
    };
    if (identity.name !== '') ready.name = identity.name;
    if (identity.serialHex !== '') {
      ready.serial = identity.serialHex;
      ready.expiresAt = identity.expiresAt;
    }
    this.push('ready', ready);
    // The secret of this session's resumption ticket, until the client asks for it (session.ticket).
    if (result.resumptionSecret !== undefined) {
      if (identity.role === 'client' || identity.role === 'admin')
        this.#resumptionSecret = result.resumptionSecret;
      else result.resumptionSecret.fill(0);
    }
  }

  /**
   * Is the certificate still active as this session enters the session table? A renewal's installer
   * ends the renewed certificate's sessions by looking them up in the table, and this handshake checked
   * the certificate before it is there (a resumed one at its client_hello, up to the handshake timeout
   * earlier). So when a renewal was installed or read since the hello, look again; the caller enters
   * the table in the same turn as the last look, after which every sweep finds it. No store read
   * otherwise.
   */
  async #lastLook(serialHex: string): Promise<boolean> {
    const renewals = this.#host.renewals;
    if (renewals === undefined) return true;
    let seen = this.#renewalsAtHello;
    while (renewals.seen() !== seen) {
      seen = renewals.seen();
      if (!(await renewals.isActive(serialHex))) return false;
    }
    return true;
  }

  /** A record of an open session: served now if a request slot is free, else it waits its turn. */
  #onRecord(frame: Buffer): void {
    if (this.#waiting !== undefined || this.#backlogged || this.#inFlight >= this.#maxInFlight()) {
      const waiting = (this.#waiting ??= []);
      if (waiting.length >= MAX_QUEUED_RECORDS) {
        this.fail(new PolicyError('rate_limited', 'too many requests queued on this session'));
        return;
      }
      waiting.push(frame);
      // Stop reading the socket: the peer's further requests wait in its TCP buffers, not our memory.
      if (!this.#ws.isPaused) this.#ws.pause();
      return;
    }
    this.#serveRecord(frame);
  }

  #maxInFlight(): number {
    return this.#identity.role === 'anonymous' ? MAX_ANONYMOUS_IN_FLIGHT : MAX_IN_FLIGHT_REQUESTS;
  }

  /**
   * A request finished, or the send backlog went out: serve the records that waited, in order, and read
   * the socket again.
   */
  #drain(): void {
    while (
      this.#waiting !== undefined &&
      this.#phase === 'open' &&
      !this.#backlogged &&
      this.#inFlight < this.#maxInFlight()
    ) {
      const frame = this.#waiting.shift()!;
      if (this.#waiting.length === 0) this.#waiting = undefined;
      this.#serveRecord(frame);
    }
    if (this.#waiting === undefined && !this.#backlogged && this.#phase === 'open' && this.#ws.isPaused)
      this.#ws.resume();
  }

  #now(): number {
    return (this.#host.now ?? Date.now)();
  }

  #serveRecord(frame: Buffer): void {
    // No request is served past notAfter (shared/pki/verify.ts pastNotAfter: the handshake's rule),
    // even before the KDC's expiry sweep closes the session.
    const expiresAt = this.#identity.expiresAt;
    if (expiresAt > 0 && pastNotAfter(expiresAt, this.#now())) {
      this.fail(new AuthError('cert_expired', 'certificate expired'));
      return;
    }
    const channel = this.#channel!;
    let request;
    try {
      request = channel.open(frame);
    } catch (err) {
      // A readable envelope with a bad type or body: answer that request, keep the session. Anything
      // else (record authentication, replay, reordering, garbage) ends the session.
      const id = err instanceof ProtocolError ? err.details?.id : undefined;
      if (typeof id === 'number') {
        if (this.#overAnonymousLimit(id)) return;
        this.#reply(id, () =>
          channel.sealError(id, err instanceof KdsError ? err.code : 'internal', (err as Error).message),
        );
      } else this.fail(err);
      return;
    }
    const { type, id, body } = request;
    this.#host.watch?.frame(this, 'in', type, frame.length, true);
    if (this.#overAnonymousLimit(id)) return;
    const identity = this.#identity;
    const ctx = { session: this as SessionHandle, identity, kdc: this.#host.services, requestId: id };
    const startedAt = this.#events.readers === 0 ? 0 : performance.now();
    this.#inFlight += 1;
    this.#host.registry.dispatch(ctx, type, body as Record<string, unknown>).then(
      (reply) => {
        this.#inFlight -= 1;
        this.#reply(id, () => channel.sealOk(type, id, reply), type);
        if (this.#events.readers !== 0) {
          const event = describeRequest(type, identity.name, body as Record<string, unknown>, reply);
          if (event !== undefined) this.#events.emit(event);
          this.#reportRequest(type, 'ok', startedAt);
        }
        this.#drain();
      },
      (err: unknown) => {
        this.#inFlight -= 1;
        const e = toKdsError(err);
        if (e.code === 'internal') this.#host.log(`request ${type}: internal error: ${describe(err)}`);
        this.#reply(id, () => channel.sealError(id, e.code, e.message), type, e.code);
        if (this.#events.readers !== 0) {
          if (REFUSAL_CODES.has(e.code)) {
            this.#events.emit({
              type: 'request.refused',
              connection: this.id,
              name: identity.name,
              role: identity.role,
              request: type,
              code: e.code,
              message: e.message,
            });
          } else if (e.code === 'store_error') {
            this.#events.emit({
              type: 'store.error',
              stage: typeof e.details?.stage === 'string' ? e.details.stage : type,
              code: e.code,
              message: e.message,
            });
          }
          this.#reportRequest(type, e.code, startedAt);
        }
        this.#drain();
      },
    );
  }

  #reportRequest(type: string, code: string, startedAt: number): void {
    if (!this.#events.wants('request.served')) return;
    this.#events.emit({
      type: 'request.served',
      connection: this.id,
      name: this.#identity.name,
      role: this.#identity.role,
      request: type,
      code,
      durationMs: performance.now() - startedAt,
    });
  }

  /**
   * An anonymous session gets what enrolling needs and no more: MAX_ANONYMOUS_REQUESTS requests in all
   * (a retry or two after a typo). The one over it is answered `rate_limited` and the session closed.
   */
  #overAnonymousLimit(id: number): boolean {
    const limit = this.#host.maxAnonymousRequests ?? MAX_ANONYMOUS_REQUESTS;
    if (this.#identity.role !== 'anonymous' || ++this.#requests <= limit) return false;
    const refusal = new PolicyError(
      'rate_limited',
      `an enrollment session may send ${limit} requests; open a new one`,
    );
    this.#reply(id, () => this.#channel!.sealError(id, refusal.code, refusal.message));
    this.fail(refusal);
    return true;
  }

  #reply(id: number, seal: () => Buffer, type?: string, code?: string): void {
    if (this.#phase !== 'open') return;
    let frame: Buffer;
    try {
      frame = seal();
    } catch (err) {
      const e = toKdsError(err);
      if (e.code === 'sequence_exhausted') {
        this.fail(e);
        return;
      }
      // The handler's reply did not match its response schema: a server bug, reported as such.
      this.#host.log(`reply to ${type ?? 'request'}: ${describe(err)}`);
      frame = this.#channel!.sealError(id, 'internal', 'internal error');
      code = 'internal';
    }
    this.#send(frame);
    this.#host.watch?.frame(
      this,
      'out',
      `${type ?? 'request'} ${code === undefined ? 'ok' : 'error'}`,
      frame.length,
      true,
      code,
    );
    if (this.#closeAfter !== undefined && (this.#closeAfter.id === undefined || this.#closeAfter.id === id)) {
      const { code, reason } = this.#closeAfter;
      this.#closeAfter = undefined;
      this.fail(errorFor(code, reason));
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return process.env.KDS_DEBUG ? String(err.stack) : `${err.name}: ${err.message}`;
  return String(err);
}
