// A stand-in for a `ws` WebSocket with no network under it, so a test can drive the KDC's real
// server/kdc/connection.ts (handshake, record layer, dispatch, fail/close logic) frame by frame at
// in-process speed. It implements exactly what Connection uses (on('message'|'error'|'close'), send
// and its callback, bufferedAmount, close, terminate, pause/resume, readyState/OPEN) with ws's own rules where they matter: close() refuses an invalid
// status code (RFC 6455 section 7.4) or a reason over 123 bytes by throwing, as ws does.
import { EventEmitter } from 'node:events';

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** ws lib/validation.js isValidStatusCode. */
function isValidCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
  );
}

export class FakeSocket extends EventEmitter {
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSING = CLOSING;
  readonly CLOSED = CLOSED;
  readyState = OPEN;
  /**
   * ws's pause()/resume() stop and restart reading the TCP socket; frames already read keep being
   * delivered. So here `deliver` ignores it too, and tests read `isPaused` (ws's name) to see it.
   */
  isPaused = false;
  /**
   * Bytes sent and not yet taken by the network: none, a test reads `sent` at once. A test that wants
   * a peer that does not read sets it (Connection then holds requests back, see server/kdc/limits.ts).
   */
  bufferedAmount = 0;
  /** Frames the server sent, in order. */
  readonly sent: Buffer[] = [];
  /** The close code the server asked for (close()) or 1006 (terminate()); the peer's for peerClose(). */
  closeCode: number | undefined;
  closeReason = '';
  readonly closed: Promise<number>;
  #resolveClosed!: (code: number) => void;
  #read = 0;
  #waiters: ((frame: Buffer | undefined) => void)[] = [];

  constructor() {
    super();
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  send(data: Buffer | Uint8Array, _opts?: unknown, cb?: (err?: Error) => void): void {
    if (this.readyState !== OPEN) return;
    // ws calls it once the frame is written out: here, on a later tick, as over a real socket.
    if (cb !== undefined) setImmediate(cb);
    const frame = Buffer.from(data);
    this.sent.push(frame);
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      this.#read += 1;
      waiter(frame);
    }
  }

  close(code?: number, reason?: string): void {
    if (code !== undefined && !isValidCloseCode(code))
      throw new TypeError('First argument must be a valid error code number');
    if (reason !== undefined && Buffer.byteLength(reason) > 123)
      throw new RangeError('The message must not be greater than 123 bytes');
    if (this.readyState >= CLOSING) return;
    this.readyState = CLOSING;
    this.closeCode = code ?? 1005;
    this.closeReason = reason ?? '';
    // The peer answers the close frame on a later tick, as over a real socket.
    setImmediate(() => this.#finish(this.closeCode!));
  }

  pause(): void {
    if (this.readyState === OPEN) this.isPaused = true;
  }

  resume(): void {
    this.isPaused = false;
  }

  terminate(): void {
    if (this.readyState === CLOSED) return;
    this.closeCode ??= 1006;
    this.#finish(1006);
  }

  /** The client sends one WebSocket message. */
  deliver(frame: Buffer, isBinary = true): void {
    if (this.readyState !== OPEN) return;
    this.emit('message', frame, isBinary);
  }

  /** The client goes away (its close frame, or the TCP connection dropping). */
  peerClose(code = 1000): void {
    if (this.readyState === CLOSED) return;
    this.closeCode ??= code;
    this.#finish(code);
  }

  /** The next frame the server sends (frames already sent first), or undefined once closed. */
  next(): Promise<Buffer | undefined> {
    if (this.#read < this.sent.length) return Promise.resolve(this.sent[this.#read++]);
    if (this.readyState === CLOSED) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #finish(code: number): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.emit('close', code, Buffer.from(this.closeReason));
    for (const w of this.#waiters.splice(0)) w(undefined);
    this.#resolveClosed(code);
  }
}
