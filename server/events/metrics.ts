// The KDC's Prometheus metrics (GET /metrics, text exposition format 0.0.4), built with prom-client,
// the Node client library the Prometheus project lists: counters and histograms fed by the event bus,
// gauges read when scraped (sessions, keys by state, the delivery queue, the CRLs), and prom-client's
// default process metrics (event-loop lag, heap, CPU, file descriptors). docs/operations.md says what
// each one means and what to alert on.
//
// Label values are bounded sets the KDC chose (outcomes, groups, error codes, request types the
// handler registry knows, limits, verdicts): never a name, serial or address, so a peer cannot grow
// the series count (an unknown request type is counted as `unknown`).
//
// prom-client (~45 ms of CPU to load, a tenth of a default `kds server start` before it listened) is
// loaded by load(), which the KDC calls once it listens: the events of the moments before are kept and
// counted then, so every count is what it would have been, and a scrape waits for it. Only prom-client's
// default process metrics (event-loop lag, GC) begin a moment later than they did.
import type { Gauge, Registry } from 'prom-client';
import type { KdcEvent, KdcEventType } from '../../shared/events/kdc-events.js';
import { pemToDer } from '../../shared/pki/pem.js';
import type { CertificateAuthority } from '../ca/authority.js';
import type { EventBus } from './bus.js';
import { CounterTally } from './counter-tally.js';
import { countCrlEntries } from './crl-watch.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** Keys by state and the queue depth are counted at most this often (each is an index scan). */
const STORE_GAUGE_TTL_MS = 1_000;
/**
 * How long a scrape waits for that count. A store that does not answer at once (a table locked by another
 * session, a database going away) would otherwise hold every scrape until the store's own statement bound
 * (20 s on PostgreSQL), past a scraper's timeout (Prometheus: 10 s): the scrape answers with the last
 * values instead, kds_store_gauges_age_seconds says how old they are, and the count finishes in the
 * background.
 */
const STORE_GAUGE_WAIT_MS = 1_000;
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What the scrape-time gauges read from the running KDC (bound after it started). */
export interface MetricsSources {
  ca: CertificateAuthority;
  sessionCount(): number;
  connectionCount(): number;
  requestTypes: readonly string[];
  readerErrors(): number;
}

/** The events the counters and histograms read (#count); the gauges read the KDC when scraped. */
const COUNTED: readonly KdcEventType[] = [
  'handshake.completed',
  'handshake.refused',
  'session.failed',
  'connection.refused',
  'request.served',
  'request.refused',
  'cert.issued',
  'token.created',
  'cert.revoked',
  'key.revoked',
  'key.cascade',
  'key.pruned',
  'key.created',
  'key.delivered',
  'key.verified',
  'message.relayed',
  'store.commit',
  'store.error',
  'kdc.warning',
];

type PromClient = typeof import('prom-client');

/** The counters and histograms, in prom-client's types (created once prom-client is loaded). */
function createMetrics(p: PromClient, registry: Registry) {
  return {
    handshakes: new CounterTally(p.Counter, {
      name: 'kds_handshakes_total',
      help: 'Handshakes by outcome (ok, refused), DH group and code (ok, or the refusal code).',
      labelNames: ['outcome', 'group', 'code'],
      registry,
    }),
    handshakeSeconds: new p.Histogram({
      name: 'kds_handshake_duration_seconds',
      help: 'Time from connection accepted to handshake completed or refused.',
      labelNames: ['outcome'] as const,
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    sessionFailures: new CounterTally(p.Counter, {
      name: 'kds_sessions_failed_total',
      help: 'Established sessions ended by a defence (record authentication, sequence number, frame limits), by code.',
      labelNames: ['code'],
      registry,
    }),
    refusedConnections: new CounterTally(p.Counter, {
      name: 'kds_connections_refused_total',
      help: 'Connections refused before their handshake, by the limit that refused them.',
      labelNames: ['limit'],
      registry,
    }),
    requests: new CounterTally(p.Counter, {
      name: 'kds_requests_total',
      help: 'Requests answered, by request type and code (ok or the error code).',
      labelNames: ['type', 'code'],
      registry,
    }),
    refusals: new CounterTally(p.Counter, {
      name: 'kds_request_refusals_total',
      help: 'Requests refused by a quota or rate limit, by request type and code.',
      labelNames: ['type', 'code'],
      registry,
    }),
    certificates: new p.Counter({
      name: 'kds_certificates_issued_total',
      help: 'Client certificates issued by enrollment (or renewal) through this KDC.',
      registers: [registry],
    }),
    tokens: new p.Counter({
      name: 'kds_enrollment_tokens_total',
      help: 'Enrollment tokens created through this KDC.',
      registers: [registry],
    }),
    revocations: new CounterTally(p.Counter, {
      name: 'kds_revocations_total',
      help: 'Revocations acknowledged: certificates, keys revoked by request, keys revoked by a certificate cascade.',
      labelNames: ['kind'],
      registry,
    }),
    keysCreated: new CounterTally(p.Counter, {
      name: 'kds_keys_created_total',
      help: 'Symmetric keys created, by mode (kdc: generated by the KDC; e2e: reserved end to end).',
      labelNames: ['mode'],
      registry,
    }),
    keysPruned: new p.Counter({
      name: 'kds_keys_pruned_total',
      help: 'Keys deleted by the retention: expired longer ago than --key-retention-days.',
      registers: [registry],
    }),
    keysDelivered: new p.Counter({
      name: 'kds_key_deliveries_total',
      help: 'Key notices handed to their recipient (live or on key.sync).',
      registers: [registry],
    }),
    verifications: new CounterTally(p.Counter, {
      name: 'kds_key_verifications_total',
      help: 'Key verifications answered, by verdict.',
      labelNames: ['verdict'],
      registry,
    }),
    messages: new p.Counter({
      name: 'kds_messages_relayed_total',
      help: 'Encrypted messages relayed between clients.',
      registers: [registry],
    }),
    messageBytes: new p.Counter({
      name: 'kds_message_bytes_total',
      help: 'Ciphertext bytes of relayed messages.',
      registers: [registry],
    }),
    commitSeconds: new p.Histogram({
      name: 'kds_store_commit_duration_seconds',
      help: 'Group commits of the store: from BEGIN to the end of the WAL sync that made them durable.',
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    storeErrors: new p.Counter({
      name: 'kds_store_errors_total',
      help: 'Requests that failed with store_error.',
      registers: [registry],
    }),
    warnings: new p.Counter({
      name: 'kds_warnings_total',
      help: 'kdc.warning events (repairs, failed CRL re-issues, internal errors): read the log.',
      registers: [registry],
    }),
  };
}

/** At most this many events are held while prom-client loads (a few dozen in practice). */
const MAX_EARLY_EVENTS = 10_000;

export class KdcMetrics {
  #sources: MetricsSources | undefined;
  #knownTypes: ReadonlySet<string> = new Set();
  readonly #off: () => void;
  #storeGauges: { at: number; keys: Record<string, number>; queue: number } | undefined;
  /** The count in progress: scrapes arriving meanwhile wait for it rather than start their own. */
  #storeCount: Promise<void> | undefined;
  /** When the gauges were bound to a KDC: their age until a first count succeeds. */
  #boundAt = 0;
  readonly #storeWaitMs: number;
  #crlEntries = new Map<string, { crlNumber: number; entries: number; bytes: number }>();
  /** prom-client's registry and metrics, once load() has loaded it. */
  #registry: Registry | undefined;
  #m: ReturnType<typeof createMetrics> | undefined;
  #loading: Promise<void> | undefined;
  /**
   * Events counted before prom-client was loaded, in order (load() counts them). Bounded: the KDC loads
   * prom-client as soon as it listens (~45 ms), so a full buffer means the import is stuck, and a
   * failed import empties it and stops buffering; past the bound events are dropped and counted.
   */
  #early: KdcEvent[] = [];
  #earlyDropped = 0;
  #failed = false;
  readonly #importPromClient: () => Promise<PromClient>;

  constructor(
    bus: EventBus,
    opts: { importPromClient?: () => Promise<PromClient>; storeWaitMs?: number } = {},
  ) {
    this.#importPromClient = opts.importPromClient ?? (() => import('prom-client'));
    this.#storeWaitMs = opts.storeWaitMs ?? STORE_GAUGE_WAIT_MS;
    // Only the types #count counts: the bus then builds no event for the others (a connection opened,
    // a prekey upload) when no other reader wants them either.
    this.#off = bus.subscribe(
      (e) => {
        if (this.#m !== undefined) this.#count(e);
        else if (this.#failed) return;
        else if (this.#early.length < MAX_EARLY_EVENTS) this.#early.push(e);
        else this.#earlyDropped++;
      },
      { types: COUNTED },
    );
  }

  /** Events held until prom-client loads, and those dropped past the bound (what a test can read). */
  get early(): { held: number; dropped: number } {
    return { held: this.#early.length, dropped: this.#earlyDropped };
  }

  /**
   * Load prom-client and count the events kept until now (once; the KDC calls it when it listens). If
   * the import fails, the events held are let go and no more are kept; a scrape then fails (500).
   */
  load(): Promise<void> {
    this.#loading ??= this.#importPromClient().then(
      (p) => this.#build(p),
      (err: unknown) => {
        this.#failed = true;
        this.#early = [];
        throw err;
      },
    );
    return this.#loading;
  }

  #build(p: PromClient): void {
    const registry = new p.Registry();
    p.collectDefaultMetrics({ register: registry, prefix: '' });
    this.#registry = registry;
    this.#m = createMetrics(p, registry);
    this.#gauge(p, 'kds_sessions_open', 'Authenticated sessions open (a name and a certificate).', [], (g) =>
      g.set(this.#sources?.sessionCount() ?? 0),
    );
    this.#gauge(
      p,
      'kds_connections_open',
      'WebSocket connections open, in any phase (handshake, anonymous, authenticated).',
      [],
      (g) => g.set(this.#sources?.connectionCount() ?? 0),
    );
    this.#gauge(p, 'kds_keys', 'Symmetric keys held by the KDC, by state.', ['state'], (g) => {
      const counts = this.#readStore()?.keys ?? {};
      for (const state of ['reserved', 'active', 'revoked', 'expired', 'superseded']) {
        g.set({ state }, counts[state] ?? 0);
      }
    });
    this.#gauge(
      p,
      'kds_delivery_queue_depth',
      'Notices (keys, revocations, verifications, messages) queued for recipients and not yet acknowledged.',
      [],
      (g) => g.set(this.#readStore()?.queue ?? 0),
    );
    this.#gauge(
      p,
      'kds_store_gauges_age_seconds',
      'Seconds since kds_keys and kds_delivery_queue_depth were read from the store (grows while it does not answer).',
      [],
      (g) =>
        g.set(
          this.#sources === undefined ? 0 : (Date.now() - (this.#storeGauges?.at ?? this.#boundAt)) / 1000,
        ),
    );
    const crlGauge = (name: string, help: string, read: (c: CrlFacts) => number): void =>
      this.#gauge(p, name, help, ['kind'], (g) => {
        for (const facts of this.#crls()) g.set({ kind: facts.kind }, read(facts));
      });
    crlGauge('kds_crl_number', 'cRLNumber of the current CRL (full) and delta CRL.', (c) => c.crlNumber);
    crlGauge('kds_crl_entries', 'Certificates listed by the current CRL.', (c) => c.entries);
    crlGauge('kds_crl_bytes', 'DER size of the current CRL.', (c) => c.bytes);
    crlGauge(
      'kds_crl_age_seconds',
      'Seconds since the current CRL thisUpdate.',
      (c) => (Date.now() - c.thisUpdate) / 1000,
    );
    crlGauge(
      'kds_crl_next_update_seconds',
      'Seconds until the current CRL nextUpdate (negative: relying parties hold a stale CRL).',
      (c) => (c.nextUpdate - Date.now()) / 1000,
    );
    this.#gauge(
      p,
      'kds_clock_skew_seconds',
      "This node's clock minus the PostgreSQL server's at the last measurement (0 on SQLite).",
      [],
      (g) => {
        const ca = this.#sources?.ca;
        g.set((ca === undefined ? 0 : (ca.clockSkew?.reading?.skewMs ?? 0)) / 1000);
      },
    );
    this.#gauge(
      p,
      'kds_event_reader_errors',
      'Events a reader (log, metrics, console) failed on since start, or metrics dropped while loading.',
      [],
      (g) => g.set((this.#sources?.readerErrors() ?? 0) + this.#earlyDropped),
    );
    const early = this.#early;
    this.#early = [];
    for (const e of early) this.#count(e);
  }

  /** A gauge whose value is read when scraped. */
  #gauge(
    p: PromClient,
    name: string,
    help: string,
    labelNames: string[],
    fill: (g: Gauge<string>) => void,
  ): void {
    const g: Gauge<string> = new p.Gauge({
      name,
      help,
      labelNames,
      registers: [this.#registry!],
      collect: () => fill(g),
    });
  }

  /** Connect the scrape-time gauges to the running KDC. */
  bind(sources: MetricsSources): void {
    this.#sources = sources;
    this.#boundAt = Date.now();
    this.#knownTypes = new Set(sources.requestTypes);
  }

  /** The exposition text. */
  async render(): Promise<string> {
    // The store gauges are read here (the store answers asynchronously), the registry's collect after.
    await this.load();
    await this.#refreshStore();
    return this.#registry!.metrics();
  }

  close(): void {
    this.#off();
    this.#sources = undefined;
  }

  #type(type: string): string {
    return this.#knownTypes.has(type) ? type : 'unknown';
  }

  #count(e: KdcEvent): void {
    const m = this.#m!;
    switch (e.type) {
      case 'handshake.completed':
        m.handshakes.add(1, 'ok', e.group, 'ok');
        m.handshakeSeconds.observe({ outcome: 'ok' }, e.durationMs / 1000);
        return;
      case 'handshake.refused':
        m.handshakes.add(1, 'refused', e.group ?? 'none', e.code);
        m.handshakeSeconds.observe({ outcome: 'refused' }, e.durationMs / 1000);
        return;
      case 'session.failed':
        m.sessionFailures.add(1, e.code);
        return;
      case 'connection.refused':
        m.refusedConnections.add(1, e.limit);
        return;
      case 'request.served':
        m.requests.add(1, this.#type(e.request), e.code);
        return;
      case 'request.refused':
        m.refusals.add(1, this.#type(e.request), e.code);
        return;
      case 'cert.issued':
        m.certificates.inc();
        return;
      case 'token.created':
        m.tokens.inc();
        return;
      case 'cert.revoked':
        m.revocations.add(1, 'certificate');
        return;
      case 'key.revoked':
        m.revocations.add(1, 'key');
        return;
      case 'key.cascade':
        m.revocations.add(e.keys, 'key_cascade');
        return;
      case 'key.pruned':
        m.keysPruned.inc(e.keys);
        return;
      case 'key.created':
        m.keysCreated.add(1, e.mode);
        return;
      case 'key.delivered':
        m.keysDelivered.inc();
        return;
      case 'key.verified':
        m.verifications.add(1, e.verdict);
        return;
      case 'message.relayed':
        m.messages.inc();
        m.messageBytes.inc(e.bytes);
        return;
      case 'store.commit':
        m.commitSeconds.observe(e.durationMs / 1000);
        return;
      case 'store.error':
        m.storeErrors.inc();
        return;
      case 'kdc.warning':
        m.warnings.inc();
        return;
      default:
        return;
    }
  }

  /**
   * Count keys by state and the queue when the last count is older than STORE_GAUGE_TTL_MS: one count at
   * a time, shared by the scrapes that arrive while it runs, each waiting for it at most #storeWaitMs.
   */
  async #refreshStore(): Promise<void> {
    const sources = this.#sources;
    if (sources === undefined) return;
    if (this.#storeGauges !== undefined && Date.now() - this.#storeGauges.at < STORE_GAUGE_TTL_MS) return;
    this.#storeCount ??= this.#countStore(sources).finally(() => {
      this.#storeCount = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#storeCount,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#storeWaitMs))),
    ]);
    clearTimeout(timer);
  }

  async #countStore(sources: MetricsSources): Promise<void> {
    const at = Date.now();
    try {
      const store = sources.ca.store;
      const keys = await store.countSymKeysByState();
      const queue = await store.countPendingDeliveries();
      this.#storeGauges = { at, keys, queue };
    } catch {
      // An unreachable store: the gauges keep their last values (and grow older); the scrape still answers.
    }
  }

  #readStore(): { keys: Record<string, number>; queue: number } | undefined {
    return this.#sources === undefined ? undefined : this.#storeGauges;
  }

  #crls(): CrlFacts[] {
    const ca = this.#sources?.ca;
    if (ca === undefined) return [];
    const out: CrlFacts[] = [];
    const full = ca.currentCrl();
    out.push({ kind: 'full', ...full, ...this.#sizeOf('full', full.crlNumber, full.pem) });
    const delta = ca.currentDeltaCrl();
    if (delta !== undefined)
      out.push({ kind: 'delta', ...delta, ...this.#sizeOf('delta', delta.crlNumber, delta.pem) });
    return out;
  }

  /** Entries and DER size, counted once per CRL number. */
  #sizeOf(kind: string, crlNumber: number, pem: string): { entries: number; bytes: number } {
    const known = this.#crlEntries.get(kind);
    if (known !== undefined && known.crlNumber === crlNumber) return known;
    const der = pemToDer(pem, 'X509 CRL');
    const facts = { crlNumber, entries: countCrlEntries(der), bytes: der.length };
    this.#crlEntries.set(kind, facts);
    return facts;
  }
}

interface CrlFacts {
  kind: 'full' | 'delta';
  crlNumber: number;
  entries: number;
  bytes: number;
  thisUpdate: number;
  nextUpdate: number;
}
