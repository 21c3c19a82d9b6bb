// What all sessions together have sent and their peers not read yet. One session's share is bounded by
// limits.ts (SEND_HIGH_WATER_BYTES pauses it, MAX_SEND_BACKLOG_BYTES closes it), but a client may hold
// many sessions (256 per address, 4,096 in all by default), each just under those bounds: this bounds
// the sum. When the sum is over, the session to close is the one held back (over the high water, its
// requests waiting) longest: a peer that stopped reading stays there, while an honest client's burst (a
// key.sync) drains in moments, so the session held back longest is the likeliest not to read at all.

/** Unread output the KDC holds for all its sessions together (startKdc `maxUnsentBytes`). */
export const DEFAULT_MAX_UNSENT_BYTES = 256 * 1024 * 1024;

export class UnsentBudget<S> {
  readonly #limit: number;
  #total = 0;
  readonly #bytes = new Map<S, number>();
  /** Sessions over the high water, in the order they went over it (a Set iterates in insertion order). */
  readonly #over = new Set<S>();

  constructor(limit: number = DEFAULT_MAX_UNSENT_BYTES) {
    if (!(Number.isSafeInteger(limit) && limit >= 1)) throw new RangeError('maxUnsentBytes must be >= 1');
    this.#limit = limit;
  }

  get total(): number {
    return this.#total;
  }

  /**
   * Session `s` now holds `unsent` bytes its peer has not read, and is (`over`) or is not held back for
   * it (over limits.ts SEND_HIGH_WATER_BYTES, until it drains to half of it: Connection decides). Returns
   * the session to close when the sessions together hold more than the limit: the one held back longest
   * (possibly `s`); undefined when within the limit, or when none is held back (nobody is to blame).
   */
  report(s: S, unsent: number, over: boolean): S | undefined {
    this.#total += unsent - (this.#bytes.get(s) ?? 0);
    if (unsent === 0) this.#bytes.delete(s);
    else this.#bytes.set(s, unsent);
    if (over) this.#over.add(s);
    else this.#over.delete(s);
    if (this.#total <= this.#limit) return undefined;
    for (const oldest of this.#over) return oldest;
    return undefined;
  }

  /**
   * `s` is closing: no longer counted (what it still holds is bounded by the close's grace period, after
   * which its socket is destroyed), so closing it makes room at once and the next report blames another.
   */
  forget(s: S): void {
    this.#total -= this.#bytes.get(s) ?? 0;
    this.#bytes.delete(s);
    this.#over.delete(s);
  }
}
