// Holding a record until the next one in the same direction arrives (the reorder and drop attacks).
// A kds peer usually has one request in flight, so two records back to back in one direction are rare
// (a server push followed by a reply, e.g. key.sync delivering queued notices). Mallory holds each
// record for a short while: if another follows in time she has her pair; if not, she lets the held
// one go, late but intact, and waits for the next chance. Holding only delays: it never changes bytes.
import type { ConnectionHooks } from './attack.js';
import { viewFrame } from './frames.js';
import type { Link } from './link.js';

export class BurstWatcher {
  readonly #link: Link;
  readonly #from: 'client' | 'server';
  readonly #onPair: (first: Buffer, second: Buffer) => void;
  #held: Buffer | undefined;
  #timer: NodeJS.Timeout | undefined;
  #done = false;

  constructor(link: Link, from: 'client' | 'server', onPair: (first: Buffer, second: Buffer) => void) {
    this.#link = link;
    this.#from = from;
    this.#onPair = onPair;
  }

  /** True once the pair was found (the watcher then stays out of the way). */
  get done(): boolean {
    return this.#done;
  }

  /** Offer a record; the watcher takes it (holds it, or completes the pair). */
  offer(frame: Buffer): void {
    if (this.#done) {
      this.#send(frame, 'forward');
      return;
    }
    if (this.#held === undefined) {
      this.#held = frame;
      this.#link.note(
        this.#from,
        frame,
        'hold',
        `held up to ${this.#link.ctx.settings.holdMs} ms, waiting for the next record`,
      );
      this.#timer = setTimeout(() => this.#release(), this.#link.ctx.settings.holdMs);
      this.#timer.unref();
      return;
    }
    clearTimeout(this.#timer);
    const first = this.#held;
    this.#held = undefined;
    this.#done = true;
    this.#onPair(first, frame);
  }

  /** Let a held record go now and stop watching (the attack struck in the other direction). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#done = true;
    this.#release();
  }

  /** Abandon a held record (the connection is closing). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#held = undefined;
  }

  #release(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) this.#send(held, 'forward', 'released: no second record came in time');
  }

  #send(frame: Buffer, action: 'forward', note?: string): void {
    if (this.#from === 'client') this.#link.toServer(frame, action, note);
    else this.#link.toClient(frame, action, note);
  }
}

/**
 * The hooks of an attack that strikes on the first pair of records in either direction (reorder, drop):
 * records go to their direction's watcher until one of them found its pair; everything else, and
 * everything after, passes. A connection that never had a pair is inconclusive.
 */
export function burstHooks(link: Link, c2s: BurstWatcher, s2c: BurstWatcher): ConnectionHooks {
  let struck = false;
  const watch = (w: BurstWatcher, frame: Buffer, pass: () => void): void => {
    struck ||= c2s.done || s2c.done;
    if (!struck && viewFrame(frame).kind === 'record') w.offer(frame);
    else pass();
  };
  return {
    fromClient: (frame) => watch(c2s, frame, () => link.toServer(frame)),
    fromServer: (frame) => watch(s2c, frame, () => link.toClient(frame)),
    closed() {
      c2s.stop();
      s2c.stop();
      if (!struck && !c2s.done && !s2c.done)
        link.inconclusive('no two records ever followed each other in one direction');
    },
  };
}
