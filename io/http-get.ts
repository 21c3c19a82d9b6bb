// A GET with a deadline that keeps the process alive until it passes. `AbortSignal.timeout` arms an
// unreferenced timer; Node 20's fetch can wait forever on a server that closes the connection without
// an answer (a KDC at its per-address connection cap does), and then nothing held the event loop: a
// CLI command exited with code 13 (an unsettled top-level await) and not a word. Here the timer is
// referenced, so such a request fails with `unavailable` when its time is up.
import { EnvironmentError, InputError } from '../shared/errors.js';

export interface HttpText {
  status: number;
  text: string;
}

/**
 * GET `url` (no redirects), its body as text, all within `timeoutMs`; a body over `maxBytes` is
 * `malformed_pem` (these are PEM documents). A network failure or the deadline is `unavailable`.
 */
export async function httpGetText(url: string, timeoutMs: number, maxBytes: number): Promise<HttpText> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const res = await fetch(url, { signal: controller.signal, redirect: 'error' });
    const length = Number(res.headers.get('content-length') ?? '0');
    if (length > maxBytes) throw new InputError('malformed_pem', `${url}: response too large`);
    const text = await res.text();
    if (text.length > maxBytes) throw new InputError('malformed_pem', `${url}: response too large`);
    return { status: res.status, text };
  } catch (err) {
    if (err instanceof InputError) throw err;
    const cause = controller.signal.aborted
      ? `no answer within ${Math.round(timeoutMs / 1000)} s`
      : ((err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message);
    throw new EnvironmentError('unavailable', `cannot fetch ${url}: ${cause}`);
  } finally {
    clearTimeout(timer);
  }
}
