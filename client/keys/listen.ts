// `kds client listen`: stay connected, receive and verify keys, print messages and revocation
// notices, and reconnect with exponential backoff (with jitter) when the connection drops, e.g.
// while the server restarts (issue 4: "reconnects with backoff if the server restarts").
//
// Only transient failures are retried (the server unreachable, going away, timing out or rate
// limiting); anything that will not fix itself by waiting (a revoked or wrong certificate, a bad
// passphrase, missing credentials) ends the loop with that error.
import { KdsError, toKdsError } from '../../shared/errors.js';
import { openKeyClient, type OpenKeyClientOptions, type OpenedKeyClient } from './open.js';
import type { KeyEvent } from './key-client.js';

export type ListenEvent =
  | KeyEvent
  | { event: 'connected'; name: string; serial: string; session: string }
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
}

export const DEFAULT_INITIAL_BACKOFF_MS = 250;
export const DEFAULT_MAX_BACKOFF_MS = 8_000;

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
  const { onEvent, signal, open: _o, initialBackoffMs: _i, maxBackoffMs: _m, ...clientOpts } = opts;
  while (!signal?.aborted) {
    let opened: OpenedKeyClient | undefined;
    let failure: KdsError | undefined;
    try {
      opened = await open({ ...clientOpts, acceptMessages: true, onEvent });
      delay = undefined; // a good connection resets the backoff
      const facts = opened.session.facts;
      onEvent({
        event: 'connected',
        name: facts.identity.name,
        serial: facts.identity.serialHex,
        session: facts.sessionId,
      });
      const stop = new Promise<'stopped'>((resolve) => {
        if (signal === undefined) return;
        if (signal.aborted) resolve('stopped');
        signal.addEventListener('abort', () => resolve('stopped'), { once: true });
      });
      const outcome = await Promise.race([opened.session.closed, stop]);
      if (outcome === 'stopped') {
        await opened.close().catch(() => undefined);
        break;
      }
      failure = outcome.error ?? new KdsError('session_closed', 'the session ended');
    } catch (err) {
      failure = toKdsError(err);
      await opened?.close().catch(() => undefined);
    }
    if (signal?.aborted) break;
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
