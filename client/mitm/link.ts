// One victim connection through Mallory: the victim's WebSocket (Mallory plays the KDC's address) and
// Mallory's own WebSocket to the real KDC, opened when she first sends it something. Frames from both
// sides go through one ordered chain to the attack's hooks; whatever the hooks send is logged as one
// watch line per frame (direction, type, size, action).
//
// Judging a connection. Mallory cannot read the victim's error, but she sees enough of its trace:
// - the KDC names every failure in clear: an `alert` frame before keys exist, and the error code as the
//   WebSocket close reason after (server/kdc/connection.ts fail());
// - a client that refuses something closes the connection and sends nothing more (fail closed).
// So an attack that tampered with a frame calls expect({defence, toward}) and the link decides at the
// end: a code seen from that side names the defence (shared/defences.ts); a side that went silent and
// closed the connection itself stopped it; a side that carried on after the tampered frame accepted it
// (a success). What no defence did is never credited to one: a KDC that could not be reached, a
// connection cut (1006) or closed by the other side (or by Mallory) before the tampered side answered
// leave the connection inconclusive.
import WebSocket, { type RawData } from 'ws';
import { isErrorCode } from '../../shared/errors.js';
import { codesOf, defenceForCode, WIRE, type DefenceName } from '../../shared/defences.js';
import type { HandshakeMode } from '../../shared/protocol/handshake.js';
import type { ConnectionHooks } from './attack.js';
import type { EventDirection, FrameAction, MitmContext } from './context.js';
import { certName, viewFrame } from './frames.js';

/** Mallory's sockets accept frames past the protocol limit: forwarding them is the `oversize` attack. */
export const MITM_MAX_PAYLOAD = 1024 * 1024;

/**
 * What one connection may leave unsent to either side (what that side has not read), queued for a
 * KDC socket still opening, or waiting for the attack's hooks. A side that stops reading while the
 * other keeps sending would otherwise grow Mallory without bound (each frame relayed is kept until it is
 * written): over it the connection is closed, both sides, with a watch line saying why.
 */
const MAX_RELAY_BACKLOG_BYTES = 16 * 1024 * 1024;

export interface Expectation {
  defence: DefenceName;
  /** Who should notice: the side the tampered frame was sent to. */
  toward: 'client' | 'server';
  /** Codes that show this defence at work (default: every code of the defence). */
  codes?: readonly string[];
  /** What Mallory did, for the finding. */
  what: string;
  /**
   * The defence to credit when `toward` answers the tampered frame and the other side then ends the
   * connection without sending anything more: the answer was a refusal, which Mallory cannot read
   * (it is inside a record) but sees in what follows it. Without it, any answer is a carry-on.
   */
  refusedBy?: DefenceName;
}

export interface Observation {
  code: string;
  from: 'client' | 'server';
}

type Side = 'client' | 'server';

/** A frame waiting for the KDC socket to open, with what its watch line will say once it is sent. */
interface Queued {
  frame: Buffer;
  dir: EventDirection;
  action: FrameAction;
  note: string | undefined;
}

export class Link {
  readonly id: number;
  readonly ctx: MitmContext;
  /** The victim's handshake mode (from its client_hello). */
  mode: HandshakeMode | undefined;
  /** Who the victim is: the certificate CN (auth) or the claimed name (insecure), both sent in clear. */
  victimName: string | undefined;
  /** The handshake frames as each peer sent them (attacks re-sign or replay them). */
  clientHello: Buffer | undefined;
  serverHello: Buffer | undefined;
  clientFinish: Buffer | undefined;
  readonly records = { c2s: 0, s2c: 0 };
  readonly observed: Observation[] = [];
  readonly closed: Promise<void>;

  readonly #client: WebSocket;
  readonly #target: string;
  #server: WebSocket | undefined;
  #serverQueue: Queued[] = [];
  #serverQueueBytes = 0;
  #serverReady = false;
  /** The KDC socket failed before it opened (connection refused, timeout): nothing reached the KDC. */
  #serverUnreachable = false;
  /** Sides whose close Mallory started (mirroring the other side, cutting, switching attacks). */
  readonly #closedByMallory = new Set<Side>();
  /** The mode of the client_hello the KDC was sent (attacks may rewrite it): what its server_hello answers. */
  #helloMode: HandshakeMode | undefined;
  /** The first close of the connection, in the order of the frames. */
  #firstClose: { side: Side; code: number; byMallory: boolean } | undefined;
  /** Bytes of received frames not yet through the hooks (#chain). */
  #inChain = 0;
  #overflowed = false;
  #hooks: ConnectionHooks = {};
  #chain: Promise<void> = Promise.resolve();
  /** after: frames from `toward` since; then: frames from the other side after `toward` answered. */
  #expectation: (Expectation & { after: number; then: number }) | undefined;
  #decided = false;
  #clientClosed = false;
  #serverClosed = true; // until opened
  #resolveClosed!: () => void;
  #finished = false;

  constructor(id: number, ctx: MitmContext, client: WebSocket, target: string) {
    this.id = id;
    this.ctx = ctx;
    this.#client = client;
    this.#target = target;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    client.on('message', (data: RawData) => this.#enqueue('client', toBuffer(data)));
    client.on('error', () => {});
    client.on('close', (code: number, reason: Buffer) =>
      this.#onClose('client', code, reason.toString('utf8')),
    );
  }

  /** Attach the attack's hooks (the proxy does this right after construction). */
  attach(hooks: ConnectionHooks): void {
    this.#hooks = hooks;
  }

  get clientOpen(): boolean {
    return !this.#clientClosed;
  }

  // -- sending -------------------------------------------------------------------------------------

  /**
   * Send to the KDC. `action` is what the watch line says Mallory did with it; the line is written when
   * the frame is handed to the KDC socket (frames waiting for it to open are logged once it opens, and
   * never when it does not).
   */
  toServer(frame: Buffer, action: FrameAction = 'forward', note?: string): void {
    const dir: EventDirection = relayed(action) ? 'c2s' : 'm2s';
    if (this.#server === undefined) {
      // A late frame (a held record released after the victim left) must not open a new connection.
      if (this.#clientClosed || this.#finished) return;
      this.#connectServer();
    }
    if (!this.#serverReady) {
      if (this.#serverUnreachable) return;
      this.#serverQueueBytes += frame.length;
      if (this.#serverQueueBytes > MAX_RELAY_BACKLOG_BYTES)
        return this.#overflow('the KDC socket is still opening');
      this.#serverQueue.push({ frame, dir, action, note });
      return;
    }
    this.#send(this.#server!, 'the KDC', { frame, dir, action, note });
  }

  /** Send to the victim (logged only when its socket is open to take it). */
  toClient(frame: Buffer, action: FrameAction = 'forward', note?: string): void {
    this.#send(this.#client, 'the victim', { frame, dir: relayed(action) ? 's2c' : 'm2c', action, note });
  }

  #send(ws: WebSocket, who: string, q: Queued): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    this.#log(q.dir, q.frame, q.action, q.note);
    this.#relay(ws, q.frame, who);
  }

  #relay(ws: WebSocket, frame: Buffer, who: string): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(frame, { binary: true });
    if (ws.bufferedAmount > MAX_RELAY_BACKLOG_BYTES)
      this.#overflow(`${who} does not read what is relayed to it`);
  }

  /** Over MAX_RELAY_BACKLOG_BYTES: end the connection (both sides), once, saying why. */
  #overflow(why: string): void {
    if (this.#overflowed) return;
    this.#overflowed = true;
    this.info(`connection closed: ${why} (over ${MAX_RELAY_BACKLOG_BYTES / 1024 / 1024} MiB held)`);
    this.#serverQueue = [];
    this.#serverQueueBytes = 0;
    this.#client.terminate();
    this.#server?.terminate();
  }

  /** Log a frame Mallory keeps to herself (drop, hold, terminate). */
  note(from: Side, frame: Buffer, action: FrameAction, note?: string): void {
    this.#log(from === 'client' ? 'c2s' : 's2c', frame, action, note);
  }

  closeClient(code = 1000, reason = ''): void {
    if (!this.#clientClosed) this.#closedByMallory.add('client');
    this.#closeSocket(this.#client, code, reason);
  }

  closeServer(code = 1000, reason = ''): void {
    if (this.#server === undefined) return;
    if (!this.#serverClosed) this.#closedByMallory.add('server');
    this.#closeSocket(this.#server, code, reason);
  }

  // -- judging -------------------------------------------------------------------------------------

  /** Mallory tampered with what `toward` will receive next: judge the connection by its reaction. */
  expect(e: Expectation): void {
    this.#expectation ??= { ...e, after: 0, then: 0 };
  }

  succeed(detail: string): void {
    this.#decided = true;
    this.ctx.succeed(this.id, detail);
  }

  fail(defence: DefenceName, detail: string, code?: string): void {
    this.#decided = true;
    this.ctx.fail(this.id, defence, detail, code);
  }

  inconclusive(detail: string): void {
    this.#decided = true;
    this.ctx.inconclusive(this.id, detail);
  }

  get decided(): boolean {
    return this.#decided;
  }

  info(text: string): void {
    this.ctx.info(this.id, text);
  }

  // -- internals -----------------------------------------------------------------------------------

  #connectServer(): void {
    this.#serverClosed = false;
    const ws = new WebSocket(this.#target, {
      maxPayload: MITM_MAX_PAYLOAD,
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
    });
    ws.binaryType = 'nodebuffer';
    this.#server = ws;
    ws.on('open', () => {
      this.#serverReady = true;
      this.#serverQueueBytes = 0;
      for (const q of this.#serverQueue.splice(0)) this.#send(ws, 'the KDC', q);
    });
    ws.on('message', (data: RawData) => this.#enqueue('server', toBuffer(data)));
    ws.on('error', (err: Error) => {
      if (this.#serverReady || this.#serverUnreachable) return;
      const unsent = this.#serverQueue.length;
      this.#serverQueue = [];
      this.#serverQueueBytes = 0;
      // Mallory gave up on a KDC socket still opening because the victim left: nothing to report.
      if (this.#closedByMallory.has('server')) return;
      this.#serverUnreachable = true;
      this.info(
        `cannot reach the KDC at ${this.#target}: ${(err as NodeJS.ErrnoException).code ?? err.message}` +
          `${unsent === 0 ? '' : ` (${unsent} frame${unsent === 1 ? '' : 's'} not sent)`}; ` +
          `closing the victim's connection: ${CLOSE_UNAVAILABLE} unavailable`,
      );
      // 1013 "try again later" with the error code as the reason: the victim's client says `unavailable`.
      this.closeClient(CLOSE_UNAVAILABLE, 'unavailable');
    });
    ws.on('close', (code: number, reason: Buffer) => this.#onClose('server', code, reason.toString('utf8')));
  }

  #enqueue(from: Side, frame: Buffer): void {
    if (this.#overflowed) return;
    this.#inChain += frame.length;
    if (this.#inChain > MAX_RELAY_BACKLOG_BYTES)
      return this.#overflow('frames arrive faster than the attack handles them');
    this.#chain = this.#chain
      .then(() => this.#handle(from, frame))
      .finally(() => (this.#inChain -= frame.length));
  }

  async #handle(from: Side, frame: Buffer): Promise<void> {
    const view = viewFrame(frame);
    if (from === 'client') {
      if (view.frame?.t === 'client_hello') {
        this.mode = view.frame.mode;
        this.ctx.modes.add(view.frame.mode);
        this.clientHello ??= Buffer.from(frame);
      } else if (view.frame?.t === 'client_finish') {
        this.clientFinish ??= Buffer.from(frame);
        const f = view.frame;
        this.victimName ??= f.cert !== undefined ? certName(f.cert) : f.name;
      } else if (view.kind === 'record') {
        this.records.c2s += 1;
      }
    } else if (view.frame?.t === 'server_hello') {
      this.serverHello ??= Buffer.from(frame);
    } else if (view.kind === 'record') {
      this.records.s2c += 1;
    }
    if (view.frame?.t === 'alert') this.observed.push({ code: view.frame.code, from });
    const e = this.#expectation;
    if (e !== undefined) {
      if (e.toward === from) e.after += 1;
      else if (e.after > 0) e.then += 1;
    }
    try {
      const hook = from === 'client' ? this.#hooks.fromClient : this.#hooks.fromServer;
      if (hook === undefined) {
        if (from === 'client') this.toServer(frame);
        else this.toClient(frame);
      } else {
        await hook(frame);
      }
    } catch (err) {
      this.info(`attack step failed: ${(err as Error)?.message ?? String(err)}`);
      this.closeClient(1011, 'internal');
      this.closeServer(1000, '');
    }
  }

  #log(dir: EventDirection, frame: Buffer, action: FrameAction, note?: string): void {
    const toKdc = dir === 'c2s' || dir === 'm2s';
    const view = viewFrame(frame, toKdc ? undefined : (this.#helloMode ?? this.mode));
    if (toKdc && view.frame?.t === 'client_hello') this.#helloMode = view.frame.mode;
    const text = [view.info, note].filter((s) => s !== undefined && s !== '').join('; ');
    this.ctx.record(
      {
        conn: this.id,
        dir,
        type: view.kind,
        size: frame.length,
        action,
        ...(text === '' ? {} : { note: text }),
      },
      view.frame?.t === 'alert' ? view.frame.code : undefined,
    );
  }

  #closeSocket(ws: WebSocket, code: number, reason: string): void {
    if (ws.readyState === WebSocket.CLOSED || ws.readyState === WebSocket.CLOSING) return;
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
      return;
    }
    try {
      ws.close(sendable(code), reason.slice(0, 120));
    } catch {
      ws.terminate();
    }
    const t = setTimeout(() => ws.terminate(), 2_000);
    t.unref();
  }

  #onClose(side: Side, code: number, reason: string): void {
    // Closes are ordered after the frames that preceded them.
    this.#chain = this.#chain.then(async () => {
      if (side === 'client') {
        if (this.#clientClosed) return;
        this.#clientClosed = true;
      } else {
        if (this.#serverClosed) return;
        this.#serverClosed = true;
        if (!this.#serverReady) {
          // The KDC socket never opened (refused, timed out, or given up when the victim left): no
          // close came from the KDC, so none is logged or mirrored (the error handler told the victim).
          if (this.#clientClosed) await this.#finish();
          return;
        }
      }
      const byMallory = this.#closedByMallory.has(side);
      this.#firstClose ??= { side, code, byMallory };
      const observed = code === 1009 ? 'frame_too_large' : isErrorCode(reason) ? reason : undefined;
      // A close Mallory started comes back with her own code and reason: that side said nothing.
      if (observed !== undefined && !byMallory) this.observed.push({ code: observed, from: side });
      this.ctx.record(
        {
          conn: this.id,
          dir: side === 'client' ? 'c2s' : 's2c',
          type: 'close',
          size: 0,
          action: 'close',
          note: `code ${code}${reason === '' ? '' : ` reason ${reason}`}`,
        },
        observed,
      );
      // Mirror the close to the other side, code and reason included (the KDC's reason is its error code).
      if (side === 'client') this.closeServer(code, reason);
      else this.closeClient(code, reason);
      if (this.#clientClosed && this.#serverClosed) await this.#finish();
      else if (this.#clientClosed && this.#server === undefined) await this.#finish();
    });
    // A KDC socket never opened, or a peer that never answers our close: do not wait for ever.
    if (side === 'client') {
      const t = setTimeout(() => {
        if (this.#server !== undefined && !this.#serverClosed) this.#server.terminate();
      }, 3_000);
      t.unref();
    }
  }

  async #finish(): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    try {
      await this.#hooks.closed?.();
    } catch (err) {
      this.info(`attack step failed: ${(err as Error)?.message ?? String(err)}`);
    }
    if (!this.#decided) this.#judge();
    this.ctx.watch?.ended(this);
    this.#resolveClosed();
  }

  /** The verdict from the victim's reaction to the tampering (see the header). */
  #judge(): void {
    const e = this.#expectation;
    if (e === undefined) return;
    if (this.#serverUnreachable) {
      this.inconclusive(`${e.what}: the KDC could not be reached, so no defence was put to the test`);
      return;
    }
    const accepted = e.codes ?? codesOf(e.defence);
    const seen = this.observed.find((o) => o.from === e.toward) ?? this.observed[0];
    if (seen !== undefined) {
      const defence = accepted.includes(seen.code) ? e.defence : defenceForCode(seen.code, WIRE)?.defence;
      if (defence !== undefined) {
        this.fail(
          defence,
          `${e.what}: the ${seen.from === 'server' ? 'KDC' : 'victim'} refused it`,
          seen.code,
        );
      } else {
        this.inconclusive(`${e.what}: the connection ended with ${seen.code}, which no defence explains`);
      }
      return;
    }
    const who = (side: Side): string => (side === 'client' ? 'the victim' : 'the KDC');
    if (e.after === 0) {
      const first = this.#firstClose;
      if (first === undefined || first.byMallory) {
        this.inconclusive(`${e.what}: Mallory ended the connection before ${who(e.toward)} answered`);
      } else if (first.side !== e.toward) {
        this.inconclusive(
          `${e.what}: ${who(first.side)} closed the connection (${first.code}) before ${who(e.toward)} answered`,
        );
      } else if (first.code === 1006) {
        this.inconclusive(
          `${e.what}: ${who(e.toward)} closed the connection abnormally (1006) before any defence answered`,
        );
      } else {
        this.fail(e.defence, `${e.what}: ${who(e.toward)} closed the connection without another word`);
      }
      return;
    }
    const other: Side = e.toward === 'client' ? 'server' : 'client';
    if (e.refusedBy !== undefined && e.then === 0) {
      this.fail(
        e.refusedBy,
        `${e.what}: ${who(e.toward)} answered, and ${who(other)} ended the connection without another frame (a refusal)`,
      );
      return;
    }
    this.succeed(`${e.what}: ${who(e.toward)} carried on as if nothing happened`);
  }
}

/** What the victim's client reads as `unavailable` (RFC 6455 7.4.1 and the IANA registry: 1013 Try Again Later). */
const CLOSE_UNAVAILABLE = 1013;

/** Actions on a frame a peer sent (the watch line shows it as client -> kdc / kdc -> client). */
function relayed(action: FrameAction): boolean {
  return action === 'forward' || action === 'modify' || action === 'replay' || action === 'reorder';
}

/** Close codes a peer may send (RFC 6455 7.4.1: 1005, 1006 and 1015 are never sent). */
function sendable(code: number): number {
  if (
    code === 1005 ||
    code === 1006 ||
    code === 1015 ||
    code < 1000 ||
    code > 4999 ||
    (code > 1015 && code < 3000)
  )
    return 1000;
  return code;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
