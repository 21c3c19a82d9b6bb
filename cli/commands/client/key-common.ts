// Shared by the key-distribution subcommands of `kds client` (docs/keys.md): open a key client for the
// home (session + encrypted key store; prekeys topped up and queued notices applied first), run the
// command, then close after pending notices are applied.
import type { ClientArgs } from './common.js';
import { homeOf } from './common.js';
import type { KeyClient } from '../../../client/keys/key-client.js';

export async function withKeyClient<T>(argv: ClientArgs, fn: (client: KeyClient) => Promise<T>): Promise<T> {
  const { openKeyClient } = await import('../../../client/keys/open.js');
  const { clientDefences } = await import('../../lab-switches.js');
  const { labOff } = await import('../../../shared/lab-switches.js');
  const defences = clientDefences(argv);
  const opened = await openKeyClient({
    ...homeOf(argv),
    server: argv.server,
    dh: argv.dh,
    // LAB SWITCH authentication: the same unauthenticated session as --insecure-dh.
    insecure: labOff(defences, 'authentication') || argv['insecure-dh'] === true,
    defences,
  });
  try {
    return await fn(opened.client);
  } finally {
    await opened.close();
  }
}

/** `--ttl 24h` -> ms (undefined keeps the KDC default of 24 h). */
export async function ttlOf(ttl: string | undefined): Promise<number | undefined> {
  if (ttl === undefined) return undefined;
  const { parseDuration } = await import('../../duration.js');
  const { MAX_KEY_TTL_MS, MIN_KEY_TTL_MS } = await import('../../../shared/keys/lifetime.js');
  return parseDuration(ttl, '--ttl', { minMs: MIN_KEY_TTL_MS, maxMs: MAX_KEY_TTL_MS });
}

/** A time from the KDC or the key store as ISO 8601; one no Date can hold is shown as its number. */
export function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? `${String(ms)} (not a valid time)` : d.toISOString();
}
