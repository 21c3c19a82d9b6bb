// `kds client listen`: stay connected, receive and verify keys, print messages and revocation
// notices, and reconnect with exponential backoff (with jitter) when the connection drops, e.g.
// while the server restarts (a listener outlives a KDC restart: it reconnects with backoff).
//
// Only transient failures are retried (the server unreachable, going away, timing out or rate
// limiting); anything that will not fix itself by waiting (a revoked or wrong certificate, a bad
// passphrase, missing credentials) ends the loop with that error.
import { KdsError, StateError, toKdsError } from '../../shared/errors.js';
import { openKeyClient, type OpenKeyClientOptions, type OpenedKeyClient } from './open.js';
import type { KeyEvent } from './key-client.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import { readClientCertificates, resolveHome, type HomeLocation } from '../home.js';
import { nextRenewalAfter, renewClient, renewalTime } from '../renew.js';
import { CLOCK_SKEW_WARN_MS, clockSkewOf } from '../../shared/pki/clock-skew.js';

export type ListenEvent =
  | KeyEvent
  | {
      event: 'connected';
      /** The KDC node that answered (one of `--server`'s URLs). */
      server: string;
      name: string;
      serial: string;
      session: string;
      expiresAt?: number;
      renewAt?: number;
    }
  | { event: 'renewed'; serial: string; previous: string; notAfter: number }
  /**
   * After a renewal: this machine's clock disagrees with the CA's by `skewMs` (positive: ahead),
   * measured from the new certificate's notBefore (the CA's clock at issuance minus its backdate).
   */
  | { event: 'clock.skew'; skewMs: number; serial: string }
  | { event: 'renew.failed'; code: string; message: string; retryInMs: number }
  | { event: 'disconnected'; code: string; retryInMs: number }
  | { event: 'stopped'; code?: string };

export interface ListenOptions extends Omit<OpenKeyClientOptions, 'onEvent' | 'acceptMessages'> {
  onEvent: (event: ListenEvent) => void;
  /** Stops the loop (SIGINT/SIGTERM in the CLI). */
  signal?: AbortSignal;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Test hook: the session opener (default openKeyClient). */
  open?: (opts: OpenKeyClientOptions) => Promise<OpenedKeyClient>;
  /** Renew the certificate at 2/3 of its lifetime (default: true, except in insecure mode). */
  autoRenew?: boolean;
  /** Milliseconds between two housekeeping passes of a session (default 5 minutes; tests shorten it). */
  housekeepingMs?: number;
  /** This machine's clock, for the renewal schedule (default Date.now; tests skew it). */
  now?: () => number;
  /** Test hook: the renewal (default renewClient). */
  renew?: typeof renewClient;
}

const DEFAULT_INITIAL_BACKOFF_MS = 250;
const DEFAULT_MAX_BACKOFF_MS = 8_000;
/**
 * A session that lasts runs KeyClient.housekeeping this often: keys that expired meanwhile are retired
 * and orphaned prekey privates deleted, as a new session would (a listener may stay connected for days
 * while a peer sends it a short-lived key every second).
 */
const DEFAULT_HOUSEKEEPING_MS = 5 * 60_000;

const TRANSIENT = new Set([
  'unavailable',
  'session_closed',
  'timeout',
  'handshake_timeout',
  'rate_limited',
  'too_many_connections',
  'internal',
  'store_error',
]);

export function isTransient(err: KdsError): boolean {
  return TRANSIENT.has(err.code);
}

/** Next delay: exponential, capped, with up to 25% random jitter so clients do not reconnect in step. */
export function nextBackoff(previousMs: number | undefined, initialMs: number, maxMs: number): number {
  const base = previousMs === undefined ? initialMs : Math.min(maxMs, previousMs * 2);
  return Math.min(maxMs, Math.round(base * (1 + Math.random() * 0.25)));
}

/** Resolves when stopped by the signal; rejects with the first non-transient error. */
export async function listen(opts: ListenOptions): Promise<void> {
  const open = opts.open ?? openKeyClient;
  const initial = opts.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS;
  const max = opts.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
  let delay: number | undefined;
  const {
    onEvent,
    signal,
    open: _o,
    initialBackoffMs: _i,
    maxBackoffMs: _m,
    autoRenew: _r,
    housekeepingMs: _h,
    now: _n,
    renew: _rn,
    ...clientOpts
  } = opts;
  const now = opts.now ?? Date.now;
  const renew = opts.renew ?? renewClient;
  const housekeepingMs = opts.housekeepingMs ?? DEFAULT_HOUSEKEEPING_MS;
  const autoRenew = opts.autoRenew ?? opts.insecure !== true;
  let renewRetryMs: number | undefined;
  /** Set by a renewal of this loop: no automatic renewal before it (nextRenewalAfter). */
  let renewNotBefore: number | undefined;
  while (!signal?.aborted) {
    let opened: OpenedKeyClient | undefined;
    let failure: KdsError | undefined;
    let timer: NodeJS.Timeout | undefined;
    let housekeeping: NodeJS.Timeout | undefined;
    try {
      opened = await open({ ...clientOpts, acceptMessages: true, onEvent });
      delay = undefined; // a good connection resets the backoff
      const client = opened.client;
      let tidying = false;
      housekeeping = setInterval(() => {
        if (tidying) return;
        tidying = true;
        // A failure here is the session's (it ends, and the loop reconnects) or passes by the next pass.
        client
          .housekeeping()
          .catch(() => undefined)
          .finally(() => (tidying = false));
      }, housekeepingMs);
      const facts = opened.session.facts;
      const own = facts.clientCertificate;
      const renewAt =
        autoRenew && own !== undefined
          ? Math.max(
              renewalTime(own),
              renewRetryMs === undefined ? 0 : now() + renewRetryMs,
              renewNotBefore ?? 0,
            )
          : undefined;
      onEvent({
        event: 'connected',
        server: opened.session.server,
        name: facts.identity.name,
        serial: facts.identity.serialHex,
        session: facts.sessionId,
        expiresAt: facts.identity.expiresAt,
        ...(renewAt === undefined ? {} : { renewAt }),
      });
      const stop = new Promise<'stopped'>((resolve) => {
        if (signal === undefined) return;
        if (signal.aborted) resolve('stopped');
        signal.addEventListener('abort', () => resolve('stopped'), { once: true });
      });
      const due = new Promise<'renew'>((resolve) => {
        if (renewAt === undefined) return;
        const arm = (): void => {
          // setTimeout holds at most ~24.8 days: wait in steps for longer lifetimes.
          const wait = Math.min(MAX_TIMER_MS, Math.max(0, renewAt - now()));
          timer = setTimeout(() => (now() >= renewAt ? resolve('renew') : arm()), wait);
        };
        arm();
      });
      const outcome = await Promise.race([opened.session.closed, stop, due]);
      if (outcome === 'stopped') {
        await opened.close().catch(() => undefined);
        break;
      }
      if (outcome === 'renew') {
        const session = opened.session;
        try {
          const renewed = await renew({ ...clientOpts, session, confirm: false, now });
          const renewedAt = now();
          renewRetryMs = undefined;
          renewNotBefore = nextRenewalAfter(renewed, renewedAt);
          onEvent({
            event: 'renewed',
            serial: renewed.serialHex,
            previous: renewed.previousSerialHex,
            notAfter: renewed.notAfter,
          });
          // The certificate was signed a moment ago: its notBefore is the CA's clock then (less the
          // backdate), so a gap to the local clock is the local clock's error, which moves every date
          // this client reads (the renewal schedule, key expiry).
          const skewMs = clockSkewOf(renewed, renewedAt);
          if (Math.abs(skewMs) >= CLOCK_SKEW_WARN_MS) {
            onEvent({ event: 'clock.skew', skewMs, serial: renewed.serialHex });
          }
          // The next session, with the new certificate, installs it at the KDC (which then ends this one).
          await opened.close().catch(() => undefined);
          continue;
        } catch (err) {
          const e = toKdsError(err);
          const remaining = (own?.notAfter ?? now()) - now();
          renewRetryMs = Math.max(
            MIN_RENEW_RETRY_MS,
            Math.min(MAX_RENEW_RETRY_MS, Math.floor(remaining / 10)),
          );
          onEvent({ event: 'renew.failed', code: e.code, message: e.message, retryInMs: renewRetryMs });
          // Reconnect (the next session tries again after renewRetryMs); a certificate that can no
          // longer authenticate (revoked, expired) then stops the loop with that code.
          await opened.close().catch(() => undefined);
          failure = isTransient(e) ? e : new StateError('session_closed', 'the session ended');
        }
      } else {
        failure = outcome.error ?? new StateError('session_closed', 'the session ended');
        // Renewed by another process of this client (`kds client renew`): the KDC ended this session
        // of the old certificate; reconnect at once with the new one.
        if (failure.code === 'cert_revoked' && homeRenewedSince(clientOpts, facts.identity.serialHex)) {
          continue;
        }
      }
    } catch (err) {
      failure = toKdsError(err);
      await opened?.close().catch(() => undefined);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      if (housekeeping !== undefined) clearInterval(housekeeping);
    }
    if (signal?.aborted) break;
    if (failure === undefined) continue;
    if (!isTransient(failure)) {
      onEvent({ event: 'stopped', code: failure.code });
      throw failure;
    }
    delay = nextBackoff(delay, initial, max);
    onEvent({ event: 'disconnected', code: failure.code, retryInMs: delay });
    await sleep(delay, signal);
  }
  onEvent({ event: 'stopped' });
}

const MAX_TIMER_MS = 2 ** 31 - 1;
/** A failed automatic renewal is retried after a tenth of the time left, within these bounds. */
const MIN_RENEW_RETRY_MS = 60_000;
const MAX_RENEW_RETRY_MS = 6 * 3600_000;

/** Does the home now hold a certificate other than `serialHex` (renewed by another process)? */
function homeRenewedSince(loc: HomeLocation, serialHex: string): boolean {
  try {
    const { certPem } = readClientCertificates(resolveHome(loc));
    return parseCertificate(certPem).serialHex !== serialHex;
  } catch {
    return false;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
