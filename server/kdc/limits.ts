// Connection limits of the KDC: a cap on concurrent unauthenticated connections and a per-IP token
// bucket for handshakes. Both are plain in-memory accounting with an injectable clock, so tests can
// drive them without timers. A handshake is the expensive part for the server (one RSA-PSS signature,
// one DH, a certificate check), so that is what the bucket meters; authenticated sessions do not count
// against the unauthenticated cap. Below them: the TCP connection limits that apply before any HTTP is
// parsed (ConnectionCounter), and the per-session request limits server/kdc/connection.ts enforces.

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

export type Admission<C> = { admitted: true; evicted?: C } | { admitted: false };

/**
 * The unauthenticated cap with per-address fairness (docs/attacks.md, handshake flood). A plain counter lets
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

// Per-session request limits (server/kdc/connection.ts; docs/security.md "Hostile peers").

/**
 * Requests a session with a name (client, admin, insecure) may have in flight: handlers running, not yet
 * answered. The rest wait with the socket paused (they are served later, not refused). A kds command
 * sends one request at a time; `listen` may send one per push it is handling (acknowledgements,
 * verifications), and those simply wait their turn. 32 bounds what one session can make the KDC work on
 * at once.
 */
export const MAX_IN_FLIGHT_REQUESTS = 32;
/** An anonymous (enrollment) session: one request at a time. */
export const MAX_ANONYMOUS_IN_FLIGHT = 1;
/**
 * Requests an anonymous session may send in all: `kds client enroll` sends one; two more allow a retry
 * after a refused CSR. The next is answered `rate_limited` and the session is closed.
 */
export const MAX_ANONYMOUS_REQUESTS = 3;
/**
 * Records a session may have waiting for a request slot. Pausing the socket stops further reads, but ws
 * still delivers the frames of the chunk it already read (at most ~64 KiB, ~2,200 of the smallest
 * records), so this is never reached by a peer that respects TCP flow control; it bounds memory if one
 * ever does. Over it: `rate_limited`, and the session is closed.
 */
export const MAX_QUEUED_RECORDS = 4096;
/**
 * What the KDC has sent a session and the peer has not read yet (ws `bufferedAmount`: bytes written
 * to the socket that the kernel has not taken). A peer that stops reading would otherwise make the KDC
 * keep every reply and push in memory: measured before this bound, one session pipelining 100,000 1 KiB
 * pings without reading grew the KDC by 420 MiB. Over SEND_HIGH_WATER_BYTES the KDC stops reading the
 * session's requests (they wait in the peer's TCP buffers, as with MAX_IN_FLIGHT_REQUESTS) until what it
 * sent has gone out; the replies of requests already running and pushes still queue.
 */
export const SEND_HIGH_WATER_BYTES = 1024 * 1024;
/**
 * Over this the session is closed (`rate_limited`): pushes (key notices, relayed messages) do not wait
 * for the peer's requests, so pausing alone does not bound them. Nothing is lost: every notice and
 * relayed message is in the durable delivery queue until acknowledged, and `key.sync` sends it again.
 * 16 MiB is above anything an honest client can have in flight towards it: one `key.sync` batch (256
 * pushes; the largest, a relayed 32 KiB message, is ~33 KiB sealed: ~8.5 MiB) plus 32 replies of at
 * most 64 KiB.
 */
export const MAX_SEND_BACKLOG_BYTES = 16 * 1024 * 1024;

// TCP connection limits, before any HTTP parsing (server/kdc/kdc.ts; docs/cli.md `kds server start`).
// Node's HTTP server would otherwise hold any number of connections, each for up to 60 s (checked every
// 30 s) while it waits for request headers: a file descriptor apiece, so one address sending half
// requests by the thousand could exhaust them before the WebSocket limits (which apply after the
// upgrade) ever see it.

/** Concurrent TCP connections from one address (in any phase: headers, handshake, session). */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 256;
/** Concurrent TCP connections in all (keep it below the process's file descriptor limit, ulimit -n). */
export const DEFAULT_MAX_CONNECTIONS = 4096;
/** How long a connection may take to send its request headers (then 408 or a close). */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;

/**
 * Concurrent TCP connections per remote address, counted when the socket is accepted: `admit` before
 * anything is read from it, `release` when it closes. A Map of addresses with at least one connection
 * (entries are deleted at zero), so its size is bounded by the connections themselves.
 */
export class ConnectionCounter {
  readonly #byAddress = new Map<string, number>();
  #total = 0;

  constructor(readonly maxPerAddress: number) {
    if (!(maxPerAddress >= 1)) throw new RangeError('maxConnectionsPerAddress must be >= 1');
  }

  /** Count one connection from `address`; false (and nothing counted) when the address is at its cap. */
  admit(address: string): boolean {
    const held = this.#byAddress.get(address) ?? 0;
    if (held >= this.maxPerAddress) return false;
    this.#byAddress.set(address, held + 1);
    this.#total += 1;
    return true;
  }

  /** The connection admitted for `address` closed. */
  release(address: string): void {
    const held = this.#byAddress.get(address);
    if (held === undefined) return;
    if (held <= 1) this.#byAddress.delete(address);
    else this.#byAddress.set(address, held - 1);
    this.#total -= 1;
  }

  heldBy(address: string): number {
    return this.#byAddress.get(address) ?? 0;
  }

  /** Connections admitted and not closed. */
  get count(): number {
    return this.#total;
  }
}
