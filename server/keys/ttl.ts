// Key lifetimes (docs/keys.md "Requirements": "expired (default lifetime 24 h, `--ttl`)").
import { InputError } from '../../shared/errors.js';
import { MAX_KEY_TTL_MS, MIN_KEY_TTL_MS } from '../../shared/keys/lifetime.js';

const DEFAULT_KEY_TTL_MS = 24 * 60 * 60 * 1000;
/** An e2e reservation (a claimed prekey) must be deposited within this time, or it is dropped. */
export const RESERVATION_TTL_MS = 5 * 60 * 1000;

export function checkTtl(ttlMs: number | undefined): number {
  if (ttlMs === undefined) return DEFAULT_KEY_TTL_MS;
  if (!Number.isSafeInteger(ttlMs) || ttlMs < MIN_KEY_TTL_MS || ttlMs > MAX_KEY_TTL_MS) {
    throw new InputError(
      'bad_request',
      `key lifetime must be between ${MIN_KEY_TTL_MS} ms and ${MAX_KEY_TTL_MS} ms, got ${String(ttlMs)}`,
    );
  }
  return ttlMs;
}
