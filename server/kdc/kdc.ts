// The KDC server process: one HTTP server that answers GET /ca.pem, /crl.pem and /healthz and upgrades
// /kds to a WebSocket carrying the kds protocol (binary frames only, maxPayload = MAX_FRAME_BYTES).
// It owns the connection accounting: before any HTTP is parsed, a cap on TCP connections per address
// and in all, and a short headers timeout; after the upgrade, the unauthenticated cap, the per-IP
// handshake rate limit and the handshake timeout. It also owns the table of live sessions, and
// revocation enforcement: when the CA acknowledges a revocation, every live session of that certificate
// is told and closed before the revocation returns.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import { DH_GROUPS, type DhGroup } from '../../shared/crypto/dh.js';
import { verifyPssAsync } from '../../shared/crypto/rsa.js';
import { pssSigner } from '../../shared/crypto/signer.js';
import {
  AuthError,
  KdsError,
  InputError,
  PolicyError,
  EnvironmentError,
  type ErrorCode,
} from '../../shared/errors.js';
import { ServerHandshake } from '../../shared/protocol/handshake.js';
import { LAB_MAX_FRAME_BYTES, MAX_FRAME_BYTES, PROTOCOL_VERSION } from '../../shared/protocol/limits.js';
import '../../shared/protocol/catalog.js';
import { pastNotAfter, verifyCertificate } from '../../shared/pki/verify.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import { CertificateAuthority, type RevocationInfo } from '../ca/authority.js';
import { loadCredential } from '../ca/credentials.js';
import { EXPIRY_WARNING_MS, recoverServerRenewal } from '../ca/server-renewal.js';
import { assertNoPassphraseChangePending } from '../ca/passphrase-change.js';
import { resolveCaPassphrase } from '../../io/ca-passphrase.js';
import { DEFAULT_TOKEN_TTL_MS } from '../ca/tokens.js';
import { baseUrlOf, normalizePublicUrl } from '../../io/ca-files.js';
import { isLoopbackHost } from '../../io/console/access.js';
import { kdsVersion } from '../../io/package-version.js';
import { KDC_HANDLERS } from '../kdc-handlers/index.js';
import { startKeyService } from '../keys/start.js';
import { EventBus } from '../events/bus.js';
import { CrlWatch } from '../events/crl-watch.js';
import { KdcMetrics, METRICS_CONTENT_TYPE } from '../events/metrics.js';
import { startMetricsServer, type MetricsServer } from '../events/metrics-server.js';
import { AuditHeadSigner } from '../audit/head-signer.js';
import type { ConnectionLimit } from '../../shared/events/kdc-events.js';
import type { KeyLimits } from '../keys/key-quotas.js';
import { CertificateCache } from '../../shared/pki/certificate-cache.js';
import {
  CACHE_LIMIT,
  CertificateRecordCache,
  checkClientCertificate,
  checkResumedIdentity,
} from './cert-check.js';
import { DeferredTicketKeys, REFRESH_MS, TicketKeys } from './ticket-keys.js';
import { KeyEncryptionKeys } from '../keys/kek.js';
import { closeAfterCloseHandshake } from './socket-close.js';
import { Connection, type ConnectionHost } from './connection.js';
import { UnsentBudget } from './unsent-budget.js';
import { HandlerRegistry, type KdcServices, type SessionHandle } from './dispatch.js';
import { boundPipelining, createHttpHandler, isLoopback } from './http.js';
import {
  ConnectionCounter,
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  DEFAULT_MAX_UNAUTHENTICATED,
  DEFAULT_RATE_LIMIT,
  HandshakeRateLimiter,
  HandshakeSlots,
  type RateLimitOptions,
} from './limits.js';
import { SessionTable } from './session-table.js';
import { StoreHealth } from './store-health.js';
import { CLOCK_CHECK_MS } from '../store/clock-skew.js';
import { listenAcrossNodes } from './cluster-push.js';
import {
  ALL_DEFENCES_ON,
  labOff,
  switchedOff,
  type Defences,
  type LabSwitch,
} from '../../shared/lab-switches.js';

const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_PORT = 8443;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_ANONYMOUS_SESSION_MS = 60_000;
const WS_PATH = '/kds';
/**
 * How often revocations committed by OTHER processes (`kds cert revoke`) are picked up. Nodes on one
 * PostgreSQL store are told at once (cluster-push.ts); this is their safety net.
 */
const REVOCATION_SYNC_MS = 2_000;
/** close(): how long sessions get to answer the 1001 close before their sockets are destroyed. */
const SHUTDOWN_GRACE_MS = 3_000;
/** How often Node's HTTP server looks for connections past the headers timeout (its default: 30 s). */
const HEADERS_CHECK_INTERVAL_MS = 1_000;
/**
 * How often the sessions whose certificate has expired are closed. A sweep rather than a timer per
 * session: a Timeout per session cost ~0.17 KiB of heap per idle session (bench/sessions.ts heap per
 * session, two consecutive runs: 6.35-6.43 KiB with it, 6.18-6.27 without), the sweep nothing but one
 * comparison per session per second. Requests are checked against notAfter at dispatch anyway
 * (connection.ts), so the moment a session may outlive its certificate serves nothing.
 */
const EXPIRY_SWEEP_MS = 1_000;
/** How often a running KDC looks again at its certificate's and the root's expiry (EXPIRY_WARNING_MS). */
const EXPIRY_CHECK_MS = 86_400_000;
/** Keys are deleted this long after their expiry unless startKdc is told otherwise (docs/keys.md "Retention"). */
const DEFAULT_KEY_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;
/** How often the retention runs; the first pass comes one interval after the start, not amid a reconnect storm. */
const KEY_RETENTION_SWEEP_MS = 60 * 60 * 1000;

export interface KdcOptions {
  dataDir: string;
  /** Issue and accept resumption tickets (default true; docs/protocol.md "Resumption"). */
  resumption?: boolean;
  host?: string;
  port?: number;
  /** Accepted DH groups: one group, or 'any' (default: both x25519 and ffdhe2048). */
  dh?: DhGroup | 'any';
  /** Accept the MITM lab's unauthenticated 'insecure' handshake (default false). */
  allowInsecure?: boolean;
  /**
   * The MITM lab's ablation switches (shared/lab-switches.ts; `kds server start --lab-disable`):
   * default ALL_DEFENCES_ON. Enrollment sessions always run with every defence on.
   */
  defences?: Defences;
  handshakeTimeoutMs?: number;
  /** Lifetime of anonymous (enrollment) sessions (default 60 s). */
  anonymousSessionMs?: number;
  /** Cap on connections in their handshake plus anonymous sessions (default 256). */
  maxUnauthenticated?: number;
  /** Per-IP handshake token bucket; false disables it (benchmarks from one address). */
  rateLimit?: RateLimitOptions | false;
  /** Concurrent TCP connections in all, in any phase (default 4096; keep it below `ulimit -n`). */
  maxConnections?: number;
  /** Concurrent TCP connections from one address, counted before any HTTP is parsed (default 256). */
  maxConnectionsPerAddress?: number;
  /** Milliseconds a connection has to send its HTTP request headers, the upgrade's included (default 10 s). */
  headersTimeoutMs?: number;
  /**
   * Bytes all sessions together may have sent and their peers not read (default 256 MiB); over it the
   * session that has left its output unread longest is closed (server/kdc/unsent-budget.ts).
   */
  maxUnsentBytes?: number;
  /**
   * Requests an anonymous (enrollment) session may send in all (default 3: `kds client enroll` sends
   * one). Only the issuance benchmark raises it, to spread enrollments over sessions opened in advance.
   */
  maxAnonymousRequests?: number;
  /** CA passphrase (else --passphrase-file, KDS_CA_PASSPHRASE, or <dataDir>/ca/passphrase). */
  passphrase?: string;
  passphraseFile?: string;
  /** The store's URL (postgres://..., docs/deployment.md); undefined: the data directory's SQLite file. */
  storeUrl?: string | undefined;
  /** Default lifetime of enrollment tokens (15 minutes). */
  tokenTtlMs?: number;
  /**
   * The public base URL (--public-url, KDS_PUBLIC_URL) put in what the CA issues from now on (CRL
   * distribution points, the Freshest CRL) and stored. Default: the one stored by an earlier explicit
   * choice (init --public-url / --host, or start --public-url), else `http://<listen address>:<port>`.
   */
  publicUrl?: string;
  /** The key service's per-peer bounds (default DEFAULT_KEY_LIMITS, docs/keys.md "Quotas"). */
  keyLimits?: Partial<KeyLimits>;
  /** The handlers to serve (default: the KDC's own, server/kdc-handlers/index.ts). */
  registry?: HandlerRegistry;
  /** Diagnostics (default: stderr). Never receives key material. Each line is also a kdc.warning event. */
  log?: (line: string) => void;
  /**
   * The event bus the KDC reports its decisions on (shared/events/kdc-events.ts). Pass one with readers
   * already subscribed to see kdc.started; default: a bus of its own, with no readers (`kdc.events`).
   */
  events?: EventBus;
  /**
   * GET /metrics (Prometheus): true (default) serves it on the KDC's port to loopback clients only;
   * false serves none and counts nothing.
   */
  metrics?: boolean;
  /** Serve GET /metrics on this address instead (every client reaching it may read; the KDC port: 404). */
  metricsListen?: { host: string; port: number };
  /** Serve the live console at /console (server/console; docs/console.md). Off by default. */
  console?: boolean;
  /**
   * Milliseconds between periodic revocation syncs (default 2 s). Tests lengthen it to show that a
   * revocation on another node arrives by notification, not by this sync.
   */
  revocationSyncMs?: number;
  /**
   * Keys are deleted this long after they expired (default DEFAULT_KEY_RETENTION_MS, 30 days; 0: kept
   * for ever). docs/keys.md "Retention".
   */
  keyRetentionMs?: number;
  /** Milliseconds between two retention passes (default 1 hour; tests shorten it). */
  keyRetentionSweepMs?: number;
  /** Milliseconds between two looks at the expiry of the KDC's and the root CA's certificates (default 1 day; tests shorten it). */
  expiryCheckMs?: number;
  /**
   * The node's clock (default Date.now), for what the CA and the key service stamp and decide, and for
   * its comparison with a PostgreSQL store's clock. Tests skew it.
   */
  clock?: () => number;
  /**
   * On a PostgreSQL store, how far the node's clock may be from the database server's (default
   * CLOCK_SKEW_REFUSE_MS, 30 s): beyond it the KDC refuses to start (`clock_skew`), and a running one
   * stops its CRL issue and key retention (docs/deployment.md "Clocks").
   */
  maxClockSkewMs?: number;
  /** Milliseconds between two measurements of the clock against the store's (default 1 minute; tests shorten it). */
  clockCheckMs?: number;
}

export interface Kdc {
  /** ws://host:port/kds */
  readonly url: string;
  /** http://host:port */
  readonly httpUrl: string;
  /** The public base URL in what the CA issues (CRL distribution point `<publicUrl>/crl.pem`). */
  readonly publicUrl: string;
  readonly host: string;
  readonly port: number;
  /** SHA-256 (hex) of the root CA certificate's DER: what clients pin with --ca-fingerprint. */
  readonly fingerprint: string;
  readonly ca: CertificateAuthority;
  readonly services: KdcServices;
  readonly sessions: SessionTable;
  /** Where the KDC reports what it decides: subscribe to read it (docs/operations.md). */
  readonly events: EventBus;
  /** Where GET /metrics answers ('' when metrics are off). */
  readonly metricsUrl: string;
  /** The live console's URL (`console: true` only). */
  readonly consoleUrl?: string;
  /** Open connections, in any phase. */
  connectionCount(): number;
  /** fn runs at stop, after the last session closed and before the store is closed. */
  onClose(fn: () => void | Promise<void>): void;
  /** The MITM lab switches this KDC runs with: [] unless `--lab-disable` (also in /healthz). */
  readonly labDisabled: readonly LabSwitch[];
  /** Graceful: stop accepting, close sessions with 1001, close the store. Idempotent. */
  close(): Promise<void>;
  /**
   * Resolves (never rejects) with the reason this KDC cannot serve, found after it started listening:
   * the CA passphrase opened the CA and KDC keys but not the key-encryption keys, opened after the
   * listen for speed (docs/performance.md "startup"). Its runner stops it (`kds server start` exits 7).
   */
  readonly unusable: Promise<Error>;
}

function positiveInteger(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= 1)) {
    throw new InputError('bad_request', `${name} must be a positive integer, got ${String(value)}`);
  }
}

export async function startKdc(opts: KdcOptions): Promise<Kdc> {
  // A bad limit is the caller's typo: refused before the CA is opened.
  positiveInteger('maxConnections', opts.maxConnections);
  positiveInteger('maxConnectionsPerAddress', opts.maxConnectionsPerAddress);
  positiveInteger('headersTimeoutMs', opts.headersTimeoutMs);
  positiveInteger('maxUnsentBytes', opts.maxUnsentBytes);
  positiveInteger('handshakeTimeoutMs', opts.handshakeTimeoutMs);
  positiveInteger('maxUnauthenticated', opts.maxUnauthenticated);
  positiveInteger('maxAnonymousRequests', opts.maxAnonymousRequests);
  positiveInteger('revocationSyncMs', opts.revocationSyncMs);
  positiveInteger('keyRetentionSweepMs', opts.keyRetentionSweepMs);
  positiveInteger('expiryCheckMs', opts.expiryCheckMs);
  positiveInteger('clockCheckMs', opts.clockCheckMs);
  if (opts.maxClockSkewMs !== undefined && !(opts.maxClockSkewMs > 0)) {
    throw new InputError(
      'bad_request',
      `maxClockSkewMs must be a positive number, got ${String(opts.maxClockSkewMs)}`,
    );
  }
  if (
    opts.keyRetentionMs !== undefined &&
    !(Number.isSafeInteger(opts.keyRetentionMs) && opts.keyRetentionMs >= 0)
  ) {
    throw new InputError(
      'bad_request',
      `keyRetentionMs must be a non-negative integer, got ${String(opts.keyRetentionMs)}`,
    );
  }
  const host = opts.host ?? DEFAULT_HOST;
  const events = opts.events ?? new EventBus();
  const writeLog = opts.log ?? ((line: string) => process.stderr.write(`kds server: ${line}\n`));
  const log = (line: string): void => {
    events.emit({ type: 'kdc.warning', message: line });
    writeLog(line);
  };
  const passphraseOptions = {
    ...(opts.passphrase === undefined ? {} : { passphrase: opts.passphrase }),
    ...(opts.passphraseFile === undefined ? {} : { passphraseFile: opts.passphraseFile }),
  };
  // A bad --public-url is the user's typo: refused before anything is opened.
  const publicUrl = opts.publicUrl === undefined ? undefined : normalizePublicUrl(opts.publicUrl);
  // A passphrase change a crash interrupted left secrets under two passphrases: refuse (one stat), rather
  // than start and fail KDC-generated keys at request time (server/ca/passphrase-change.ts).
  assertNoPassphraseChangePending(opts.dataDir);
  const ca = await CertificateAuthority.open(opts.dataDir, {
    ...passphraseOptions,
    storeUrl: opts.storeUrl,
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    ...(opts.maxClockSkewMs === undefined ? {} : { maxClockSkewMs: opts.maxClockSkewMs }),
  });
  try {
    return await serve(ca, opts, host, log, events, passphraseOptions, publicUrl);
  } catch (err) {
    await ca.close();
    throw err;
  }
}

async function serve(
  ca: CertificateAuthority,
  opts: KdcOptions,
  host: string,
  log: (line: string) => void,
  events: EventBus,
  passphraseOptions: { passphrase?: string; passphraseFile?: string },
  publicUrl: string | undefined,
): Promise<Kdc> {
  // The published copies were checked against the store when the CA opened (docs/security.md): say what was rebuilt.
  if (ca.caFileRepair !== 'ok') log(`root_ca.pem was ${ca.caFileRepair}: rewritten from the store`);
  if (ca.clockSkewWarning !== undefined) log(ca.clockSkewWarning);
  for (const line of ca.crlFileWarnings()) log(line);
  const { passphrase } = resolveCaPassphrase(opts.dataDir, passphraseOptions);
  // A `kds server renew` a crash interrupted is finished (or discarded) before the pair is loaded.
  if ((await recoverServerRenewal(ca, passphrase)) === 'installed')
    log('finished an interrupted `kds server renew`');
  const credential = loadCredential(opts.dataDir, 'server', passphrase);
  // Refuse to serve with a KDC certificate clients would refuse anyway (expired, not ours, revoked), or
  // that the CRL lists as superseded: a server/ older than a `kds server renew` (restored from an old
  // backup, or copied from another node) would otherwise serve a key its operator retired.
  const own = verifyCertificate(credential.cert, ca.caCert, {
    usage: 'serverAuth',
    revocation: (s) => ca.crlStatusOf(s),
  });
  if (own.code === 'revoked') {
    const fix =
      own.reason === 'superseded'
        ? `${opts.dataDir}/server is older than the store (a \`kds server renew\` replaced it): restore server/ from the backup the store came from, or run \`kds server renew\``
        : 'run `kds server renew` for a new key and certificate';
    throw new EnvironmentError(
      'config',
      `the KDC certificate in ${opts.dataDir}/server (serial ${credential.cert.serialHex}) is revoked ${own.detail}: ${fix}`,
      { serialHex: credential.cert.serialHex, reason: own.reason },
    );
  }
  if (own.code !== 'ok') {
    throw new EnvironmentError(
      'config',
      `the KDC certificate in ${opts.dataDir}/server is not usable: ${own.detail}`,
    );
  }
  // Say it a week ahead: a KDC whose certificate expired refuses to start (above), and every client
  // refuses it. The lines carry no "warning:" of their own: the log writes kdc.warning events with it.
  const warnExpiry = (now: number): void => {
    const when = (notAfter: number): string =>
      `${now < notAfter ? 'expires' : 'expired'} on ${new Date(notAfter).toISOString()}`;
    if (credential.cert.notAfter - now < EXPIRY_WARNING_MS) {
      log(`the KDC certificate ${when(credential.cert.notAfter)}: run \`kds server renew\` (then restart)`);
    }
    if (ca.caCert.notAfter - now < EXPIRY_WARNING_MS) {
      log(
        `the root CA certificate ${when(ca.caCert.notAfter)}: nothing it issued is valid after that; a new CA (kds server init --force) means every client enrolls again`,
      );
    }
  };
  warnExpiry(Date.now());
  const serverKey = credential.privateKey;
  const groups: readonly DhGroup[] = opts.dh === undefined || opts.dh === 'any' ? DH_GROUPS : [opts.dh];
  const registry = opts.registry ?? new HandlerRegistry(KDC_HANDLERS);
  const sessions = new SessionTable();
  const connections = new Set<Connection>();
  // Fair per-address slots (limits.ts HandshakeSlots): a flood that fills the cap cannot lock others out.
  const unauthenticated = new HandshakeSlots<Connection>(
    opts.maxUnauthenticated ?? DEFAULT_MAX_UNAUTHENTICATED,
  );
  const rateLimiter =
    opts.rateLimit === false ? undefined : new HandshakeRateLimiter(opts.rateLimit ?? DEFAULT_RATE_LIMIT);
  const defences = opts.defences ?? ALL_DEFENCES_ON;
  const labDisabled = Object.freeze(switchedOff(defences));
  const certCache = new CertificateCache(CACHE_LIMIT);
  const certRecords = new CertificateRecordCache(ca.store);
  const publicKeys = new WeakMap<ParsedCertificate, KeyObject>();
  const startedAt = Date.now();
  const version = kdsVersion();
  let closing: Promise<void> | undefined;
  let reportUnusable!: (err: Error) => void;
  const unusable = new Promise<Error>((resolve) => (reportUnusable = resolve));
  /** Run at stop after the last session closed, before the store closes (the audit signer's last head). */
  const beforeClose: (() => void | Promise<void>)[] = [];

  /**
   * Renewals installed (here, or by another process and read here) since the start: a handshake that
   * checked its certificate before one of them looks at it again before it enters the session table.
   */
  let renewalsSeen = 0;
  const endSupersededSessions = (serialHex: string): void => {
    for (const s of sessions.bySerial(serialHex))
      void s.close('cert_revoked', 'certificate superseded by a renewal');
  };
  // Another node's (or process's) renewal: its installer ended the renewed certificate's sessions on its
  // own node only, so the catch-up that reads its CRL entry ends them here.
  ca.onSuperseded((serialHex) => {
    renewalsSeen += 1;
    endSupersededSessions(serialHex);
  });

  const endSessionsOf = async (
    serialHex: string,
    code: ErrorCode,
    except?: SessionHandle,
    info?: RevocationInfo,
  ): Promise<number> => {
    // A session revoking its own certificate gets its reply first and closes right after it.
    const targets = sessions.bySerial(serialHex).filter((s) => s !== except && !s.closingAfterReply);
    const revocation = info ?? ca.revocationOf(serialHex);
    for (const session of targets) {
      if (revocation !== undefined && !session.closed) {
        try {
          session.push('cert.revoked', {
            serial: serialHex,
            reason: revocation.reason,
            revokedAt: revocation.revokedAt,
          });
        } catch (err) {
          // Telling is best effort; closing (below) is not.
          log(`cert.revoked push failed: ${(err as Error).message}`);
        }
      }
    }
    await Promise.all(
      targets.map((s) => s.close(code, code === 'cert_revoked' ? 'certificate revoked' : code)),
    );
    return targets.length;
  };

  // One KEK ring for the ticket keys and the symmetric keys, opened at the first use of either: opening
  // derives each KEK version from the passphrase (scrypt, ~0.1 s of CPU and 32 MiB), which two rings
  // paid twice (the first key request after a start waited for its own). Both only add versions to it
  // (reload), a failed opening is retried by the next use.
  let kekRing: Promise<KeyEncryptionKeys> | undefined;
  const openKek = (): Promise<KeyEncryptionKeys> => {
    if (kekRing === undefined) {
      const opening = KeyEncryptionKeys.open(opts.dataDir, passphrase);
      kekRing = opening;
      opening.catch(() => {
        if (kekRing === opening) kekRing = undefined;
      });
    }
    return kekRing;
  };
  // Resumption tickets (docs/protocol.md "Resumption"): keys in the store, wrapped under the KEK, so
  // a ticket opens on every node and after a restart. Without them (resumption off) every session is
  // a full handshake.
  // Opened once the KDC listens (below): DeferredTicketKeys says why.
  const tickets =
    opts.resumption === false
      ? undefined
      : new DeferredTicketKeys(async () => TicketKeys.open(ca.store, await openKek()));
  if (tickets !== undefined) {
    const ticketTimer = setInterval(() => {
      tickets.refresh().catch((err: unknown) => log(`ticket keys not refreshed: ${(err as Error).message}`));
    }, REFRESH_MS);
    ticketTimer.unref();
    beforeClose.push(() => clearInterval(ticketTimer));
  }
  const crlWatch = new CrlWatch(ca, events);
  const metrics = opts.metrics === false ? undefined : new KdcMetrics(events);
  // Durable group commits (keys, issuance), timed for kds_store_commit_duration_seconds.
  ca.store.observeCommits((callers, durationMs) => {
    if (events.wants('store.commit')) events.emit({ type: 'store.commit', callers, durationMs });
  });
  // The CA awaits its listeners before revoke() returns: sessions are closed before any reply.
  ca.onRevoked((serialHex, name, info) =>
    endSessionsOf(serialHex, 'cert_revoked', undefined, info).then((closed) => {
      events.emit({
        type: 'cert.revoked',
        name,
        serial: serialHex,
        reason: info?.reason ?? ca.revocationOf(serialHex)?.reason ?? 'unspecified',
        sessionsClosed: closed,
      });
      crlWatch.check();
    }),
  );
  // Key service and revocation cascade (docs/keys.md).
  const keys = await startKeyService(
    { ca, sessions, events },
    {
      dataDir: opts.dataDir,
      passphrase,
      openKek,
      ...(opts.keyLimits === undefined ? {} : { limits: opts.keyLimits }),
      ...(opts.clock === undefined ? {} : { now: opts.clock }),
      defences,
    },
  );
  const services: KdcServices = {
    ...(tickets === undefined ? {} : { tickets }),
    ca,
    store: ca.store,
    keys,
    sessions,
    events,
    startedAt,
    endSessionsOf,
    tokenTtlMs: opts.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS,
  };
  // Other nodes' revocations and queued notices, pushed to this node's sessions (PostgreSQL only).
  const stopListening = await listenAcrossNodes({ store: ca.store, ca, keys, sessions, log });
  beforeClose.push(stopListening);
  // A complete CRL that the delta CRL has outgrown is re-issued at start (and stop, and on the
  // delta's schedule by the timer below), never on a revocation's acknowledgement path.
  try {
    await ca.publishFullCrlIfStale();
  } catch (err) {
    log(`complete CRL re-issue failed: ${(err as Error).message}`);
  }
  crlWatch.check();
  let maintaining = false;
  const storeHealth = new StoreHealth(log);
  const syncTimer = setInterval(() => {
    // One round at a time: on a slow or unreachable store the next tick waits for this one.
    if (maintaining) return;
    maintaining = true;
    void (async () => {
      try {
        await ca.syncRevocations();
        storeHealth.answered();
      } catch (err) {
        storeHealth.failed('revocation sync failed', err);
      }
      try {
        await ca.maintainCrl();
      } catch (err) {
        storeHealth.failed('complete CRL re-issue failed', err);
      }
      try {
        crlWatch.check();
      } catch (err) {
        log(`CRL state unreadable: ${(err as Error).message}`);
      }
    })().finally(() => (maintaining = false));
  }, opts.revocationSyncMs ?? REVOCATION_SYNC_MS);
  syncTimer.unref();
  const expirySweep = setInterval(() => {
    const now = Date.now();
    const expired: SessionHandle[] = [];
    for (const session of sessions.values()) {
      const { expiresAt } = session.identity;
      if (expiresAt > 0 && !session.closed && pastNotAfter(expiresAt, now)) expired.push(session);
    }
    for (const session of expired) void session.close('cert_expired', 'certificate expired');
  }, EXPIRY_SWEEP_MS);
  expirySweep.unref();
  // A KDC runs for months: the check of the start is made again every day, so the week's notice reaches
  // the log of one that was started long before.
  const expiryWarning = setInterval(() => warnExpiry(Date.now()), opts.expiryCheckMs ?? EXPIRY_CHECK_MS);
  expiryWarning.unref();
  // The clock against the store's, again and again (docs/deployment.md "Clocks"): a clock that drifts
  // or is set by hand while the node runs stops its CRL issue (the CA reads clockSkew) and its retention.
  // One measurement at a time; a failed one (the store away) changes nothing and is reported as such.
  let clockChecking: Promise<void> | undefined;
  const checkClock = (): Promise<void> => {
    const clockSkew = ca.clockSkew;
    if (clockSkew === undefined) return Promise.resolve();
    clockChecking ??= clockSkew
      .check()
      .then(
        (line) => {
          if (line !== undefined) log(line);
        },
        (err: unknown) => storeHealth.failed('clock check failed', err),
      )
      .finally(() => (clockChecking = undefined));
    return clockChecking;
  };
  const clockTimer = setInterval(() => {
    if (closing === undefined) void checkClock();
  }, opts.clockCheckMs ?? CLOCK_CHECK_MS);
  clockTimer.unref();
  // Retention (docs/keys.md "Retention"): the key table grows by every key any client creates, up to
  // one a second each; keys long expired answer nothing a client still needs.
  const keyRetentionMs = opts.keyRetentionMs ?? DEFAULT_KEY_RETENTION_MS;
  let retaining: Promise<void> | undefined;
  const runRetention = (): void => {
    if (keyRetentionMs === 0 || retaining !== undefined || closing !== undefined) return;
    retaining = (async () => {
      // What is old enough to delete is this node's clock's call alone, and deleted is for good: measured
      // right before (once an hour), not up to a minute ago, and nothing while the clock is off. A
      // measurement already under way may have read the clock before it moved: a new one after it.
      await clockChecking;
      await checkClock();
      if (ca.clockSkew?.inSync === false) return;
      const n = await keys.pruneExpired(keyRetentionMs, ca.clockSkew?.databaseNow());
      if (n > 0) events.emit({ type: 'key.pruned', keys: n, expiredBefore: Date.now() - keyRetentionMs });
    })()
      .catch((err: unknown) => storeHealth.failed('key retention failed', err))
      .finally(() => (retaining = undefined));
  };
  const retentionTimer = setInterval(runRetention, opts.keyRetentionSweepMs ?? KEY_RETENTION_SWEEP_MS);
  retentionTimer.unref();
  beforeClose.push(async () => {
    clearInterval(retentionTimer);
    clearInterval(clockTimer);
    await retaining;
    await clockChecking;
  });

  const credentials = {
    certificateDer: credential.cert.der,
    sign: pssSigner(serverKey), // callback form: the thread pool, not the event loop
  };
  // The audit chain's head, signed with the KDC key now, periodically and (below, at stop) last.
  const auditSigner = new AuditHeadSigner({
    store: ca.store,
    sign: credentials.sign,
    certSerial: credential.cert.serialHex,
    events,
  });
  auditSigner.start();
  beforeClose.push(() =>
    auditSigner.stop().catch((err: unknown) => log(`audit head not signed: ${(err as Error).message}`)),
  );
  // Loaded only when asked for: without a console no module, timer or object of it exists.
  const kdcConsole =
    opts.console === true
      ? await (
          await import('../console/kdc-console.js')
        ).startKdcConsole({
          ca,
          sessions,
          events,
          log,
          labDisabled,
        })
      : undefined;
  const connectionHost: ConnectionHost = {
    ...(kdcConsole === undefined ? {} : { watch: kdcConsole.watch }),
    unsent: new UnsentBudget<Connection>(opts.maxUnsentBytes),
    registry,
    services,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    anonymousSessionMs: opts.anonymousSessionMs ?? DEFAULT_ANONYMOUS_SESSION_MS,
    ...(opts.maxAnonymousRequests === undefined ? {} : { maxAnonymousRequests: opts.maxAnonymousRequests }),
    createHandshake: (onChecked, onPresented) =>
      new ServerHandshake({
        groups,
        credentials,
        allowInsecure: opts.allowInsecure === true,
        defences,
        parseCertificate: (der) => {
          const cert = certCache.parse(der);
          onPresented?.(cert.subjectCN);
          return cert;
        },
        // The client's signature came from the network: verified on the thread pool.
        verifySignature: (data, signature, cert) => {
          let key = publicKeys.get(cert);
          if (key === undefined) {
            key = createPublicKey(cert.publicKeyPem);
            publicKeys.set(cert, key);
          }
          return verifyPssAsync(data, signature, key);
        },
        checkClientCertificate: async (cert, mode) => {
          if (mode !== 'auth') return;
          onChecked(await checkClientCertificate(ca, cert, Date.now(), certRecords, defences));
        },
        ...(tickets === undefined
          ? {}
          : {
              resumption: {
                keys: () => tickets.ring(),
                check: (ticket) => checkResumedIdentity(ca, ticket, certRecords, defences),
              },
            }),
      }),
    installRenewal: async (serialHex) => {
      const { install, listed } = await ca.installRenewal(serialHex, 'kdc');
      renewalsSeen += 1; // before the sweep below, in the same turn (connection.ts #lastLook)
      listed.catch((err: unknown) =>
        log(`listing superseded certificates failed: ${(err as Error).message}`),
      );
      // Sessions of the renewed certificate cannot write any more (caller-status.ts): end them with a
      // reason their client can act on.
      for (const serial of [install.superseded, ...install.abandoned]) endSupersededSessions(serial);
    },
    renewals: {
      seen: () => renewalsSeen,
      isActive: async (serialHex) => (await certRecords.get(serialHex))?.status === 'active',
    },
    defences,
    authenticated: (conn) => {
      // Anonymous (enrollment) sessions keep counting against the cap until they close.
      if (conn.holdsSlot && conn.identity.role !== 'anonymous') {
        conn.holdsSlot = false;
        unauthenticated.release(conn);
      }
      if (conn.identity.serialHex !== '') sessions.add(conn);
    },
    closed: (conn) => {
      if (conn.holdsSlot) {
        conn.holdsSlot = false;
        unauthenticated.release(conn);
      }
      sessions.delete(conn);
      connections.delete(conn);
    },
    log,
  };

  const handleHttp = createHttpHandler({
    caPem: () => ca.caCertPem,
    crlPem: () => ca.currentCrlPem(),
    deltaCrlPem: () => ca.currentDeltaCrlPem(),
    health: () => ({
      ok: closing === undefined && ca.clockSkew?.inSync !== false,
      version,
      protocol: PROTOCOL_VERSION,
      sessions: [...connections].filter((c) => c.established).length,
      authenticated: sessions.size,
      connections: connections.size,
      uptimeMs: Date.now() - startedAt,
      // Only a node on a PostgreSQL store has the field: its clock against the database's.
      ...(ca.clockSkew?.reading === undefined
        ? {}
        : { clock: { skewMs: ca.clockSkew.reading.skewMs, inSync: ca.clockSkew.inSync } }),
      // Only a MITM lab KDC has the field: which defences `--lab-disable` switched off.
      ...(labDisabled.length > 0 ? { labDisabled } : {}),
    }),
    ...(metrics === undefined || opts.metricsListen !== undefined
      ? {}
      : {
          metrics: {
            // Loopback only on the KDC's own port (docs/security.md "Metrics"): what a scraper on the
            // host needs, and nothing for the network, whose peers are not authenticated on HTTP. The
            // Host too, as for the console: a page on another site can make a browser on this host
            // fetch 127.0.0.1 under the site's own name (DNS rebinding) and read the answer.
            allow: (req: IncomingMessage) =>
              isLoopback(req.socket.remoteAddress) && isLoopbackHost(req.headers.host),
            contentType: METRICS_CONTENT_TYPE,
            render: () => metrics.render(),
          },
        }),
  });
  // Node's defaults would hold a connection that never finishes its headers for 60 s (checked every
  // 30 s), with no cap on how many: limits before the upgrade (limits.ts, "TCP connection limits").
  const headersTimeout = opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const server: Server = createServer(
    {
      headersTimeout,
      // No request body is ever read: a request is complete once its headers are.
      requestTimeout: headersTimeout,
      connectionsCheckingInterval: Math.min(HEADERS_CHECK_INTERVAL_MS, headersTimeout),
    },
    boundPipelining(
      kdcConsole === undefined
        ? handleHttp
        : (req, res) => {
            if (!kdcConsole.routes.handle(req, res)) handleHttp(req, res);
          },
    ),
  );
  // Over the global cap, Node closes a new connection before it emits 'connection'.
  server.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const perAddress = new ConnectionCounter(
    opts.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  );
  // Counted when the socket is accepted, before a byte of HTTP is read from it. An address at its cap
  // gets its new connection closed at once, so it can hold no more file descriptors than that. One
  // shared 'close' listener, not a closure per socket (socket.once with a closure cost ~0.3 KiB of heap
  // per idle session in bench/sessions.ts): the address read at accept stays cached on the socket
  // (net.Socket keeps its _peername) after close.
  function releaseAddress(this: Socket): void {
    perAddress.release(this.remoteAddress ?? 'unknown');
  }
  server.on('connection', (socket: Socket) => {
    if (!perAddress.admit(socket.remoteAddress ?? 'unknown')) {
      socket.destroy();
      events.emit({
        type: 'connection.refused',
        address: socket.remoteAddress ?? 'unknown',
        code: 'too_many_connections',
        limit: 'per_address_cap',
      });
      return;
    }
    socket.on('close', releaseAddress);
  });
  // Per-message deflate is off: compression before encryption leaks plaintext lengths (CRIME), and
  // inflating is a memory-amplification vector. ws enforces maxPayload and closes with 1009 itself.
  const wss = new WebSocketServer({
    noServer: true,
    // LAB SWITCH frame-limits: ws reads messages up to 1 MiB (the handshake then decides).
    maxPayload: labOff(defences, 'frame-limits') ? LAB_MAX_FRAME_BYTES : MAX_FRAME_BYTES,
    perMessageDeflate: false,
    clientTracking: false,
  });

  const onConnection = (ws: WebSocket, req: IncomingMessage): void => {
    const address = req.socket.remoteAddress ?? 'unknown';
    const conn = new Connection(ws, address, connectionHost);
    connections.add(conn);
    let refusal: KdsError | undefined;
    let limit: ConnectionLimit = 'shutting_down';
    // The rate limit comes first: a refused peer costs no slot and can evict nobody.
    let evicted: Connection | undefined;
    if (closing !== undefined) {
      refusal = new EnvironmentError('unavailable', 'server shutting down');
    } else if (rateLimiter !== undefined && !rateLimiter.take(address)) {
      refusal = new PolicyError('rate_limited', 'too many handshakes from this address; retry later');
      limit = 'handshake_rate';
    } else {
      const admission = unauthenticated.admit(conn, address);
      if (!admission.admitted) {
        refusal = new PolicyError(
          'too_many_connections',
          'too many connections in their handshake; retry later',
        );
        limit = 'unauthenticated_cap';
      } else {
        conn.holdsSlot = true;
        evicted = admission.evicted;
      }
    }
    if (refusal !== undefined) {
      events.emit({ type: 'connection.refused', address, code: refusal.code, limit });
    }
    conn.start(refusal);
    if (evicted !== undefined) {
      // Its slot now belongs to the newcomer (released inside admit).
      evicted.holdsSlot = false;
      events.emit({
        type: 'connection.refused',
        address: evicted.remoteAddress,
        code: 'too_many_connections',
        limit: 'evicted',
      });
      evicted.fail(
        new PolicyError('too_many_connections', 'evicted: too many connections in their handshake'),
      );
    }
  };

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== WS_PATH) {
      rejectUpgrade(socket, 404, 'Not Found');
      return;
    }
    // Browsers send Origin on every WebSocket upgrade, and WebSockets are not under the same-origin
    // policy: a page on any site could reach a KDC its visitor's network reaches (cross-site WebSocket
    // hijacking). kds clients are programs, which send none.
    if (req.headers.origin !== undefined) {
      rejectUpgrade(socket, 403, 'Forbidden');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      closeAfterCloseHandshake(ws, socket);
      onConnection(ws, req);
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket | Duplex) => {
    // Answer if the socket can still take it, then close it for good: end() alone would leave it
    // half-closed (a file descriptor) until a peer that may never answer sends its FIN.
    if ((socket as Socket).writable) {
      const status =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? '408 Request Timeout'
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? '431 Request Header Fields Too Large'
            : '400 Bad Request';
      socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
    }
    socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      kdcConsole?.close();
      reject(
        new EnvironmentError(
          'io_error',
          `cannot listen on ${host}:${opts.port ?? DEFAULT_PORT}: ${err.code ?? err.message}`,
        ),
      );
    };
    server.once('error', onError);
    server.listen(opts.port ?? DEFAULT_PORT, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost =
    address.family === 'IPv6' || address.address.includes(':') ? `[${address.address}]` : address.address;
  const httpUrl = `http://${urlHost}:${address.port}`;
  // What the CA puts in what it issues from now on: an explicit choice (this start's, or a stored one),
  // else the address this KDC answers on. A wildcard bind names no reachable host: the stored CRL host
  // (init's first --host, default 127.0.0.1) with the port bound.
  const explicit = publicUrl ?? (ca.settings.publicUrlExplicit === true ? ca.settings.publicUrl : undefined);
  const wildcard = address.address === '0.0.0.0' || address.address === '::';
  try {
    await ca.usePublicUrl(
      explicit ?? (wildcard ? baseUrlOf(ca.settings.crlHost, address.port) : httpUrl),
      explicit !== undefined,
    );
  } catch (err) {
    clearInterval(syncTimer);
    clearInterval(expirySweep);
    clearInterval(expiryWarning);
    clearInterval(retentionTimer);
    clearInterval(clockTimer);
    kdcConsole?.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw err;
  }

  const close = (): Promise<void> => {
    closing ??= (async () => {
      clearInterval(syncTimer);
      clearInterval(expirySweep);
      clearInterval(expiryWarning);
      clearInterval(retentionTimer);
      clearInterval(clockTimer);
      kdcConsole?.close();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      const all = [...connections];
      const done = Promise.all(all.map((c) => c.shutdown()));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        done,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS))),
      ]);
      clearTimeout(timer);
      for (const c of connections) c.terminate();
      server.closeAllConnections();
      await stopped;
      await metricsServer?.close();
      wss.close();
      try {
        await ca.publishFullCrlIfStale();
        crlWatch.check();
      } catch (err) {
        log(`complete CRL re-issue failed: ${(err as Error).message}`);
      }
      for (const stopping of beforeClose) {
        try {
          await stopping();
        } catch (err) {
          log(`at stop: ${(err as Error).message}`);
        }
      }
      events.emit({ type: 'kdc.stopped', uptimeMs: Date.now() - startedAt });
      certRecords.dispose();
      await ca.close();
    })();
    return closing;
  };

  const url = `ws://${urlHost}:${address.port}${WS_PATH}`;
  let metricsServer: MetricsServer | undefined;
  if (metrics !== undefined && opts.metricsListen !== undefined) {
    try {
      metricsServer = await startMetricsServer(opts.metricsListen.host, opts.metricsListen.port, {
        contentType: METRICS_CONTENT_TYPE,
        render: () => metrics.render(),
      });
    } catch (err) {
      clearInterval(syncTimer);
      clearInterval(expirySweep);
      clearInterval(expiryWarning);
      clearInterval(retentionTimer);
      clearInterval(clockTimer);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
  }
  const metricsUrl = metrics === undefined ? '' : (metricsServer?.url ?? `${httpUrl}/metrics`);
  metrics?.bind({
    ca,
    sessionCount: () => sessions.size,
    connectionCount: () => connections.size,
    requestTypes: registry.types(),
    readerErrors: () => events.readerErrors,
  });
  beforeClose.push(() => {
    ca.store.observeCommits(undefined);
    metrics?.close();
  });
  events.emit({
    type: 'kdc.started',
    url,
    httpUrl,
    metricsUrl,
    version,
    pid: process.pid,
  });
  // Work that can wait until the caller has had its turn to announce the URL: the ticket keys
  // (DeferredTicketKeys) and prom-client (metrics.ts load()).
  setImmediate(() => {
    if (closing !== undefined) return;
    // Fail closed on a half-changed set of files (the PEMs re-encrypted by hand, the KEKs not: the CA
    // and KDC keys opened above): every KDC-generated key would fail with `bad_passphrase`. Checked
    // here, not before listening: opening the KEK is a scrypt, deferred for speed; a cheaper check
    // would need a check value as cheap to test as the passphrase is to guess, which would undo the
    // scrypt. A start after an interrupted `kds server passphrase` is refused before the CA opens.
    const opening = Date.now();
    openKek().then(
      (ring) => {
        if (closing === undefined) {
          events.emit({
            type: 'kek.opened',
            versions: ring.versions.length,
            durationMs: Date.now() - opening,
          });
        }
      },
      (err: unknown) => {
        if (err instanceof AuthError && err.code === 'bad_passphrase') {
          log(
            'the CA passphrase opens the CA key but not the key-encryption keys (kek/): were the keys re-encrypted by hand? Change the passphrase with `kds server passphrase`; stopping',
          );
          reportUnusable(err);
        }
      },
    );
    tickets?.open().catch((err: unknown) => log(`ticket keys not opened: ${(err as Error).message}`));
    metrics?.load().catch((err: unknown) => log(`metrics not loaded: ${(err as Error).message}`));
  });
  return {
    url,
    httpUrl,
    publicUrl: ca.publicUrl,
    host: address.address,
    port: address.port,
    fingerprint: ca.caCert.fingerprint256,
    ca,
    services,
    sessions,
    events,
    metricsUrl,
    ...(kdcConsole === undefined ? {} : { consoleUrl: kdcConsole.urlFor(httpUrl, address.address) }),
    connectionCount: () => connections.size,
    onClose: (fn: () => void) => beforeClose.push(fn),
    labDisabled,
    close,
    unusable,
  };
}

function rejectUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
