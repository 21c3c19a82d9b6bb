// Connection limits of the KDC: a cap on concurrent unauthenticated connections and a per-IP token
// bucket for handshakes. Both are plain in-memory accounting with an injectable clock, so tests can
// drive them without timers. A handshake is the expensive part for the server (one RSA-PSS signature,
// one DH, a certificate check), so that is what the bucket meters; authenticated sessions do not count
// against the unauthenticated cap.

/** Defaults: generous for a lab, small enough that one client cannot monopolise the CPU. */
export const DEFAULT_MAX_UNAUTHENTICATED = 256;
export const DEFAULT_RATE_LIMIT: RateLimitOptions = { burst: 64, perSecond: 32 };
/** Buckets idle this long are forgotten, so the map does not grow with every address ever seen. */
const IDLE_BUCKET_MS = 60_000;
const MAX_TRACKED_ADDRESSES = 10_000;

export interface RateLimitOptions {
  /** Bucket capacity: handshakes an address may start back to back. */
  burst: number;
  /** Refill rate in handshakes per second. */
  perSecond: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Per-address token bucket (the classic algorithm: refill continuously, spend one per handshake). */
export class HandshakeRateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #burst: number;
  readonly #perMs: number;
  readonly #now: () => number;

  constructor(opts: RateLimitOptions, now: () => number = Date.now) {
    if (!(opts.burst >= 1) || !(opts.perSecond > 0)) {
      throw new RangeError('rate limit needs burst >= 1 and perSecond > 0');
    }
    this.#burst = opts.burst;
    this.#perMs = opts.perSecond / 1000;
    this.#now = now;
  }

  /** Spend one token for `address`; false when its bucket is empty (the caller refuses the handshake). */
  take(address: string): boolean {
    const now = this.#now();
    let bucket = this.#buckets.get(address);
    if (bucket === undefined) {
      if (this.#buckets.size >= MAX_TRACKED_ADDRESSES) this.#sweep(now);
      bucket = { tokens: this.#burst, at: now };
      this.#buckets.set(address, bucket);
    } else {
      const elapsed = Math.max(0, now - bucket.at);
      bucket.tokens = Math.min(this.#burst, bucket.tokens + elapsed * this.#perMs);
      bucket.at = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get trackedAddresses(): number {
    return this.#buckets.size;
  }

  #sweep(now: number): void {
    for (const [address, bucket] of this.#buckets) {
      if (now - bucket.at > IDLE_BUCKET_MS) this.#buckets.delete(address);
    }
    // Still full (a flood from many addresses): forget the oldest half rather than grow without bound.
    if (this.#buckets.size >= MAX_TRACKED_ADDRESSES) {
      let drop = Math.floor(this.#buckets.size / 2);
      for (const address of this.#buckets.keys()) {
        if (drop-- <= 0) break;
        this.#buckets.delete(address);
      }
    }
  }
}

/** Counts connections that have not finished their handshake. */
export class UnauthenticatedCounter {
  #count = 0;
  constructor(readonly max: number) {
    if (!(max >= 1)) throw new RangeError('maxUnauthenticated must be >= 1');
  }

  /** Reserve a slot; false when the cap is reached. Every true must be paired with one release(). */
  tryAcquire(): boolean {
    if (this.#count >= this.max) return false;
    this.#count += 1;
    return true;
  }

  release(): void {
    if (this.#count > 0) this.#count -= 1;
  }

  get count(): number {
    return this.#count;
  }
}
