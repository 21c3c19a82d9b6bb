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

export type Admission<C> = { admitted: true; evicted?: C } | { admitted: false };

/**
 * The unauthenticated cap with per-address fairness (issue 8, handshake flood). A plain counter lets
 * any flood that fills the cap lock every honest client out until the attacker's connections time out.
 * Here, when the cap is full, a newcomer takes the slot of the OLDEST connection of the address that
 * holds the most slots, provided that address holds strictly more slots than the newcomer's own; else
 * the newcomer is refused. So an address can never displace its own connections (a flood from one
 * host refuses itself), and a client from an address holding few slots always gets in, at the expense
 * of the biggest holder. An attacker must spread over more addresses than the cap has slots to evict
 * everyone, and even then it evicts oldest first, so a handshake completing in milliseconds survives.
 * Connections are kept per address in insertion order (a Set), so the oldest is the first.
 */
export class HandshakeSlots<C> {
  readonly #byAddress = new Map<string, Set<C>>();
  readonly #addressOf = new Map<C, string>();

  constructor(readonly max: number) {
    if (!(max >= 1)) throw new RangeError('maxUnauthenticated must be >= 1');
  }

  /** Take a slot for `conn`; `evicted` (whose slot it took) must then be closed by the caller. */
  admit(conn: C, address: string): Admission<C> {
    if (this.#addressOf.size < this.max) {
      this.#add(conn, address);
      return { admitted: true };
    }
    let biggest: Set<C> | undefined;
    for (const set of this.#byAddress.values())
      if (biggest === undefined || set.size > biggest.size) biggest = set;
    const own = this.#byAddress.get(address)?.size ?? 0;
    if (biggest === undefined || biggest.size <= own) return { admitted: false };
    const evicted = biggest.values().next().value as C;
    this.release(evicted);
    this.#add(conn, address);
    return { admitted: true, evicted };
  }

  /** Give the slot back; false if `conn` held none (idempotent). */
  release(conn: C): boolean {
    const address = this.#addressOf.get(conn);
    if (address === undefined) return false;
    this.#addressOf.delete(conn);
    const set = this.#byAddress.get(address)!;
    set.delete(conn);
    if (set.size === 0) this.#byAddress.delete(address);
    return true;
  }

  get count(): number {
    return this.#addressOf.size;
  }

  /** Slots held by one address. */
  heldBy(address: string): number {
    return this.#byAddress.get(address)?.size ?? 0;
  }

  #add(conn: C, address: string): void {
    this.#addressOf.set(conn, address);
    let set = this.#byAddress.get(address);
    if (set === undefined) this.#byAddress.set(address, (set = new Set()));
    set.add(conn);
  }
}

/** Requests an anonymous (enrollment) session may send in all. */
export const MAX_ANONYMOUS_REQUESTS = 3;
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 256;
export const MAX_IN_FLIGHT_REQUESTS = 32;
export const MAX_QUEUED_RECORDS = 4096;
