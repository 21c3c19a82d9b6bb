// Events a demo participant received (keys delivered, verified, revoked, messages), with a way to wait
// for one: the demo's steps wait for the notice that proves what they narrate ("Bob was told"), with a
// deadline so that a broken build fails the demo with a clear message instead of hanging it.
import { EnvironmentError } from '../../shared/errors.js';

export const DEFAULT_WAIT_MS = 20_000;

export class EventLog<E extends { event: string }> {
  readonly events: E[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(readonly who: string) {}

  push = (e: E): void => {
    this.events.push(e);
    for (const w of [...this.#waiters]) w();
  };

  /** The first event (already received or still to come) matching `pred`. */
  waitFor(pred: (e: E) => boolean, what: string, timeoutMs = DEFAULT_WAIT_MS): Promise<E> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = this.events.find(pred);
        if (hit === undefined) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new EnvironmentError('timeout', `${this.who} did not get ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }
}
