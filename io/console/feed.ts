// The console's event feed: a bounded history (so a page opened late, or reloaded, can step back
// through what already happened) and the pages subscribed to it. Publishing costs one array push and,
// with a page open, a string append; what was published reaches each open page in one write at most
// every FLUSH_MS. A write per event-loop turn was too many under load: a busy KDC's turns each carry one
// or two handshake steps, and each write is a chunk of an HTTP response and a system call (7.5% of the
// KDC's CPU with one page open, in a profile under handshake load: docs/performance.md). When no
// console was asked for, nothing of this exists (kdc.ts).
import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { randomBytes } from '../../shared/crypto/random.js';
import type { ConsoleEvent, ConsoleState, StateEvent } from '../../shared/console/events.js';

/** Events kept for pages that connect later (a class's whole demo fits several times over). */
export const HISTORY_LIMIT = 5_000;
/** Pages open at once; one more is refused (503) rather than let pages pile up. */
const MAX_SUBSCRIBERS = 16;
/** A page that stops reading is dropped once this much is waiting for it (bounded memory per reader). */
const MAX_BUFFERED_BYTES = 1 << 20;
/**
 * Writes to the pages are at least this far apart (ten a second): the first event after a quiet spell
 * still goes out at once, so a demo's single steps show without delay.
 */
export const FLUSH_MS = 100;

/**
 * How often each stream gets a `ping` event (io/console/http.ts): it keeps proxies and the browser from
 * closing an idle stream, and it is how the page tells a live feed from a silent one (web/console/
 * liveness.ts). The hello names it.
 */
const KEEPALIVE_MS = 15_000;

type Draft = ConsoleEvent extends infer E ? (E extends ConsoleEvent ? Omit<E, 'seq' | 'at'> : never) : never;

export class ConsoleFeed {
  readonly #history: ConsoleEvent[] = [];
  readonly #subscribers = new Set<ServerResponse>();
  #seq = 0;
  /**
   * The last state published. The KDC publishes its state only when it changes, so on a busy KDC it can
   * be older than the whole history: a page opened then is sent it first, or its panel stays empty.
   */
  #lastState: StateEvent | undefined;
  /** Events published since the last write to the pages. */
  #pending = '';
  #flushing: NodeJS.Timeout | undefined;
  /** performance.now() of the last write to the pages. */
  #flushedAt = -Infinity;

  /** This process's feed: a page that reconnects to another instance knows it restarted. */
  readonly instance = randomBytes(8).toString('hex');

  /** `view`: whose view it is, `kdc` or `mallory`. */
  readonly view: 'kdc' | 'mallory';
  readonly #now: () => number;
  readonly keepaliveMs: number;

  constructor(view: 'kdc' | 'mallory' = 'kdc', now: () => number = Date.now, keepaliveMs = KEEPALIVE_MS) {
    this.view = view;
    this.#now = now;
    this.keepaliveMs = keepaliveMs;
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** The last HISTORY_LIMIT events, oldest first. */
  get history(): readonly ConsoleEvent[] {
    return this.#history.length > HISTORY_LIMIT ? this.#history.slice(-HISTORY_LIMIT) : this.#history;
  }

  publish(draft: Draft): ConsoleEvent {
    const event = { ...draft, seq: ++this.#seq, at: this.#now() } as ConsoleEvent;
    if (event.kind === 'state') this.#lastState = event;
    this.#history.push(event);
    // Trimmed in one go once it holds twice the limit: cutting the oldest event off a 5,000-long
    // array on every publish moved the whole array each time, most of the console's cost per handshake.
    if (this.#history.length >= 2 * HISTORY_LIMIT)
      this.#history.splice(0, this.#history.length - HISTORY_LIMIT);
    if (this.#subscribers.size > 0) {
      this.#pending += this.#chunk(event);
      if (this.#flushing === undefined) {
        const wait = Math.max(0, this.#flushedAt + FLUSH_MS - performance.now());
        this.#flushing = setTimeout(() => this.#flush(), wait);
        // A stopping process does not wait for it: close() writes what is left.
        this.#flushing.unref();
      }
    }
    return event;
  }

  /** The last published state (the page's panel before any event arrives). */
  get state(): ConsoleState | undefined {
    return this.#lastState?.state;
  }

  /**
   * Start an event stream on `res`: the last state when the history no longer holds it (as a named
   * `state` event: the page's panel before the events, not a step of its timeline), the history, then
   * every new event. A page that reconnects (`lastEventId`, the browser's Last-Event-ID: the last event
   * it got from this process) is sent only what followed, when that is still held; otherwise the
   * history, and the page shows the hole in the sequence. Resending the whole history to a page just
   * dropped for falling behind would drop it again. False when full.
   */
  subscribe(res: ServerResponse, lastEventId?: string): boolean {
    if (this.#subscribers.size >= MAX_SUBSCRIBERS) return false;
    // What is waiting goes to the pages already open: the history below has it for this one.
    this.#flush();
    this.#subscribers.add(res);
    res.on('close', () => this.#subscribers.delete(res));
    this.#write(
      res,
      `event: hello\ndata: ${JSON.stringify({ instance: this.instance, view: this.view, keepaliveMs: this.keepaliveMs })}\n\n`,
    );
    const seen = this.#seenBy(lastEventId);
    const oldest = this.#history[0]?.seq ?? Infinity;
    if (seen > 0 && seen + 1 >= oldest) {
      this.#write(
        res,
        this.#history
          .slice(seen + 1 - oldest)
          .map((e) => this.#chunk(e))
          .join(''),
      );
      return true;
    }
    const history = this.history;
    const state = this.#lastState;
    if (state !== undefined && state.seq > seen && state.seq < (history[0]?.seq ?? Infinity))
      this.#write(res, `event: state\n${this.#chunk(state)}`);
    this.#write(res, history.map((e) => this.#chunk(e)).join(''));
    return true;
  }

  /** The last sequence number a page reconnecting with `lastEventId` got from this process; 0 if none. */
  #seenBy(lastEventId: string | undefined): number {
    const m = /^([0-9a-f]+)-(\d+)$/.exec(lastEventId ?? '');
    if (m === null || m[1] !== this.instance) return 0;
    const seq = Number(m[2]);
    return seq <= this.#seq ? seq : 0;
  }

  /**
   * One Server-Sent Event. Its id names this process, so a page that reconnects to a restarted one is
   * not taken for one that saw its events. JSON.stringify escapes every control character, so a
   * network-sourced string can never end the `data:` line early and forge another event.
   */
  #chunk(event: ConsoleEvent): string {
    return `id: ${this.instance}-${event.seq}\ndata: ${JSON.stringify(event)}\n\n`;
  }

  /** End every stream (the process is stopping). */
  close(): void {
    this.#flush();
    for (const res of this.#subscribers) res.end();
    this.#subscribers.clear();
  }

  #flush(): void {
    if (this.#flushing !== undefined) clearTimeout(this.#flushing);
    this.#flushing = undefined;
    const chunk = this.#pending;
    this.#pending = '';
    if (chunk === '') return;
    this.#flushedAt = performance.now();
    for (const res of this.#subscribers) this.#write(res, chunk);
  }

  #write(res: ServerResponse, chunk: string): void {
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      this.#subscribers.delete(res);
      res.destroy();
      return;
    }
    res.write(chunk);
  }
}
