// Whether the feed is live. An open stream proves nothing by itself: a hung process, or a network that
// stalls without closing the connection, leaves the browser's EventSource open and silent. The process
// sends a `ping` event every keepalive interval (io/console/http.ts), so silence for two intervals
// means the page is no longer seeing what happens: it says so instead of `live`.
export const DEFAULT_KEEPALIVE_MS = 15_000;

export interface Status {
  /** The badge's data-status: live, stale, reconnecting, connecting. */
  state: string;
  text: string;
}

export class Liveness {
  readonly #now: () => number;
  #state: 'connecting' | 'open' | 'reconnecting' = 'connecting';
  #heardAt = 0;
  #keepaliveMs = DEFAULT_KEEPALIVE_MS;

  constructor(now: () => number) {
    this.#now = now;
  }

  /** The stream (re)opened. */
  opened(): void {
    this.#state = 'open';
    this.#heardAt = this.#now();
  }

  /** The browser lost the stream and is trying again. */
  lost(): void {
    this.#state = 'reconnecting';
  }

  /** Anything arrived: an event, a hello (which may name the keepalive interval), a ping. */
  heard(keepaliveMs?: number): void {
    if (keepaliveMs !== undefined && Number.isFinite(keepaliveMs) && keepaliveMs > 0)
      this.#keepaliveMs = keepaliveMs;
    this.#state = 'open';
    this.#heardAt = this.#now();
  }

  /** `who`: whose silence it is, in words (the KDC, Mallory's proxy). */
  status(who: string): Status {
    if (this.#state !== 'open') return { state: this.#state, text: this.#state };
    const silent = this.#now() - this.#heardAt;
    if (silent <= 2 * this.#keepaliveMs) return { state: 'live', text: 'live' };
    return { state: 'stale', text: `stale: no word from ${who} for ${Math.floor(silent / 1000)} s` };
  }
}
