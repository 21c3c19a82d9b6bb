// The per-client rate of key creation (docs/keys.md "Quotas"): a token bucket per client name, spent by
// key.create and key.reserve (each makes a key record the KDC keeps, and a reservation also consumes one
// of the peer's prekeys). In memory: a restart refills every bucket, which only gives each client one
// more burst. Checked before any other work of the request, so a refused request costs nothing else.
import { PolicyError } from '../../shared/errors.js';

export interface CreationRateOptions {
  /** Keys a client may create back to back. */
  burst: number;
  /** Refill, in keys per second. */
  perSecond: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** A full bucket is forgotten (it is what a new one would be), so idle clients cost no memory. */
const SWEEP_EVERY = 1024;

export class KeyCreationRate {
  readonly #buckets = new Map<string, Bucket>();
  readonly #burst: number;
  readonly #perMs: number;
  readonly #now: () => number;
  #takes = 0;

  constructor(opts: CreationRateOptions, now: () => number) {
    if (!(opts.burst >= 1) || !(opts.perSecond > 0)) {
      throw new RangeError('key creation rate needs burst >= 1 and perSecond > 0');
    }
    this.#burst = opts.burst;
    this.#perMs = opts.perSecond / 1000;
    this.#now = now;
  }

  /**
   * Spend `keys` (a batch spends one per key) for `client`, or throw `rate_limited` and spend nothing when
   * its bucket holds fewer: a batch is all or nothing, here as in its commit.
   */
  take(client: string, keys = 1): void {
    const now = this.#now();
    if (++this.#takes % SWEEP_EVERY === 0) this.#sweep(now);
    const bucket = this.#buckets.get(client) ?? { tokens: this.#burst, at: now };
    bucket.tokens = Math.min(this.#burst, bucket.tokens + Math.max(0, now - bucket.at) * this.#perMs);
    bucket.at = now;
    if (bucket.tokens < keys) {
      this.#buckets.set(client, bucket);
      const waitS = Math.ceil((keys - bucket.tokens) / this.#perMs / 1000);
      throw new PolicyError(
        'rate_limited',
        `too many keys created by ${client}: at most ${this.#burst} at once, then ${this.#perMs * 1000} per second (${keys === 1 ? 'next' : `${keys} more`} in ${waitS} s)`,
      );
    }
    bucket.tokens -= keys;
    this.#buckets.set(client, bucket);
  }

  /** Clients whose bucket is not full (tests). */
  get tracked(): number {
    return this.#buckets.size;
  }

  #sweep(now: number): void {
    for (const [client, bucket] of this.#buckets) {
      if (bucket.tokens + Math.max(0, now - bucket.at) * this.#perMs >= this.#burst) {
        this.#buckets.delete(client);
      }
    }
  }
}
