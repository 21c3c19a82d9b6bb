// Whether the store answers, as the KDC's periodic round sees it (revocation sync and CRL upkeep, every
// 2 s: server/kdc/kdc.ts), said once per change in the log: one line when the store becomes unavailable
// (PostgreSQL restarting or unreachable: server/store/pg-store.ts reports it as `unavailable`), one when it
// answers again. One line per round for minutes of an outage would bury everything else an operator
// needs, and "the round failed" would not say that every request needing the store now fails too.
import { KdsError } from '../../shared/errors.js';

export class StoreHealth {
  readonly #log: (line: string) => void;
  readonly #now: () => number;
  #downSince: number | undefined;

  constructor(log: (line: string) => void, now: () => number = Date.now) {
    this.#log = log;
    this.#now = now;
  }

  /**
   * A step of the round failed: `unavailable` is logged once for the whole outage; any other failure is
   * logged as `what: message` each time (it is not the database being away: it needs looking at).
   */
  failed(what: string, err: unknown): void {
    if (err instanceof KdsError && err.code === 'unavailable') {
      if (this.#downSince !== undefined) return;
      this.#downSince = this.#now();
      this.#log(
        `store unavailable (${err.message}): requests that need it fail with \`unavailable\` until it answers again`,
      );
      return;
    }
    this.#log(`${what}: ${(err as Error)?.message ?? String(err)}`);
  }

  /** A step of the round reached the store. */
  answered(): void {
    if (this.#downSince === undefined) return;
    const seconds = Math.max(0, Math.round((this.#now() - this.#downSince) / 1000));
    this.#downSince = undefined;
    this.#log(`store available again (unavailable for about ${seconds} s)`);
  }
}
