// The log's lines for refusals a peer can repeat at will: a connection over the per-address cap or the
// handshake rate (an anonymous peer that only connects and closes: ~9,300 refusals a second from one
// address, measured, ~0.8 MB/s of log at the default level), or an enrolled client's request refused by
// a quota. Each refusal is still counted by the metrics (kds_connections_refused_total,
// kds_request_refusals_total); the log writes the first PER_WINDOW of one kind from one peer in each
// window, then one line saying how many more there were. Other events are never held back.
import type { KdcEvent } from '../../shared/events/kdc-events.js';

/** Lines of one kind (event type, peer, code) written per window; the rest are counted. */
export const PER_WINDOW = 20;
export const WINDOW_MS = 10_000;
/** Kinds tracked at once; beyond it (a flood from many addresses) new peers share one kind per type. */
const MAX_KINDS = 1_000;

interface Kind {
  /** Window start. */
  since: number;
  written: number;
  suppressed: number;
  /** The first event suppressed in the window (what the summary line names). */
  sample?: KdcEvent;
}

export interface ThrottleOptions {
  now?: () => number;
  perWindow?: number;
  windowMs?: number;
  /** A window ended with `suppressed` lines held back, the first of them `sample`. */
  onSuppressed(sample: KdcEvent, suppressed: number, windowMs: number): void;
}

/** The throttled kind of `e`, or undefined for events that are always written. */
function kindOf(e: KdcEvent): string | undefined {
  if (e.type === 'connection.refused') return `${e.type}\u0000${e.address}\u0000${e.limit}`;
  if (e.type === 'request.refused') return `${e.type}\u0000${e.name}\u0000${e.request}\u0000${e.code}`;
  return undefined;
}

export class LogThrottle {
  readonly #kinds = new Map<string, Kind>();
  readonly #now: () => number;
  readonly #perWindow: number;
  readonly #windowMs: number;
  readonly #onSuppressed: ThrottleOptions['onSuppressed'];

  constructor(opts: ThrottleOptions) {
    this.#now = opts.now ?? Date.now;
    this.#perWindow = opts.perWindow ?? PER_WINDOW;
    this.#windowMs = opts.windowMs ?? WINDOW_MS;
    this.#onSuppressed = opts.onSuppressed;
  }

  /** Whether `e`'s line is written now (false: counted, and reported when its window ends). */
  admit(e: KdcEvent): boolean {
    let key = kindOf(e);
    if (key === undefined) return true;
    const now = this.#now();
    let kind = this.#kinds.get(key);
    if (kind === undefined && this.#kinds.size >= MAX_KINDS) {
      this.flush();
      if (this.#kinds.size >= MAX_KINDS) {
        key = `${e.type}\u0000*`;
        kind = this.#kinds.get(key);
      }
    }
    if (kind !== undefined && now - kind.since >= this.#windowMs) {
      this.#report(kind);
      kind = undefined;
    }
    if (kind === undefined) {
      kind = { since: now, written: 0, suppressed: 0 };
      this.#kinds.set(key, kind);
    }
    if (kind.written < this.#perWindow) {
      kind.written++;
      return true;
    }
    kind.suppressed++;
    kind.sample ??= e;
    return false;
  }

  /** Report and forget every kind whose window has ended (a timer calls it; so does a full table). */
  flush(): void {
    const now = this.#now();
    for (const [key, kind] of this.#kinds) {
      if (now - kind.since < this.#windowMs) continue;
      this.#report(kind);
      this.#kinds.delete(key);
    }
  }

  /** Report what every window held back so far, ended or not (the log is closing). */
  close(): void {
    for (const kind of this.#kinds.values()) this.#report(kind);
    this.#kinds.clear();
  }

  #report(kind: Kind): void {
    if (kind.suppressed > 0 && kind.sample !== undefined)
      this.#onSuppressed(kind.sample, kind.suppressed, this.#windowMs);
    kind.suppressed = 0;
    delete kind.sample;
  }
}
