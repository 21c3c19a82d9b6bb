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
// end: a code seen from that side names the defence (shared/defences.ts); a victim that went silent
// and closed stopped it; a victim that carried on after the tampered frame accepted it (a success).
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
}

export interface Observation {
  code: string;
  from: 'client' | 'server';
}

type Side = 'client' | 'server';

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
  #serverQueue: Buffer[] = [];
  #serverQueueBytes = 0;
  #serverReady = false;
  /** Bytes of received frames not yet through the hooks (#chain). */
  #inChain = 0;
  #overflowed = false;
  #hooks: ConnectionHooks = {};
  #chain: Promise<void> = Promise.resolve();
  #expectation: (Expectation & { after: number }) | undefined;
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

  /** Send to the KDC. `action` is what the watch line says Mallory did with it. */
  toServer(frame: Buffer, action: FrameAction = 'forward', note?: string): void {
    this.#log(
      action === 'forward' || action === 'modify' || action === 'replay' || action === 'reorder'
        ? 'c2s'
        : 'm2s',
      frame,
      action,
      note,
    );
    if (this.#server === undefined) {
      // A late frame (a held record released after the victim left) must not open a new connection.
      if (this.#clientClosed || this.#finished) return;
      this.#connectServer();
    }
    if (!this.#serverReady) {
      this.#serverQueueBytes += frame.length;
      if (this.#serverQueueBytes > MAX_RELAY_BACKLOG_BYTES)
        return this.#overflow('the KDC socket is still opening');
      this.#serverQueue.push(frame);
      return;
    }
    this.#relay(this.#server!, frame, 'the KDC');
  }

  /** Send to the victim. */
  toClient(frame: Buffer, action: FrameAction = 'forward', note?: string): void {
    this.#log(
      action === 'forward' || action === 'modify' || action === 'replay' || action === 'reorder'
        ? 's2c'
        : 'm2c',
      frame,
      action,
      note,
    );
    this.#relay(this.#client, frame, 'the victim');
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
    this.#closeSocket(this.#client, code, reason);
  }

  closeServer(code = 1000, reason = ''): void {
    if (this.#server === undefined) return;
    this.#closeSocket(this.#server, code, reason);
  }

  // -- judging -------------------------------------------------------------------------------------

  /** Mallory tampered with what `toward` will receive next: judge the connection by its reaction. */
  expect(e: Expectation): void {
    this.#expectation ??= { ...e, after: 0 };
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
      for (const frame of this.#serverQueue.splice(0)) this.#relay(ws, frame, 'the KDC');
    });
    ws.on('message', (data: RawData) => this.#enqueue('server', toBuffer(data)));
    ws.on('error', (err: Error) => {
      if (!this.#serverReady)
        this.info(
          `cannot reach the KDC at ${this.#target}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
        );
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
    if (this.#expectation !== undefined && this.#expectation.toward === from) this.#expectation.after += 1;
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
    const view = viewFrame(frame);
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
      }
      const observed = code === 1009 ? 'frame_too_large' : isErrorCode(reason) ? reason : undefined;
      if (observed !== undefined) this.observed.push({ code: observed, from: side });
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
    if (e.after === 0) {
      const who = e.toward === 'client' ? 'the victim' : 'the KDC';
      this.fail(e.defence, `${e.what}: ${who} closed the connection without another word`);
      return;
    }
    this.succeed(
      `${e.what}: ${e.toward === 'client' ? 'the victim' : 'the KDC'} carried on as if nothing happened`,
    );
  }
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
