// Expiry of symmetric keys: lazily on listings and lookups (expireDue), and the sweep at service start
// that catches up with what happened while the KDC was not running.
import type { SymKeyRecord } from '../store/store.js';
import type { KeyContext } from './key-context.js';

/** Active keys past their expiry become `expired` (lazily, on every listing and lookup). */
export async function expireDue(ctx: KeyContext): Promise<void> {
  await ctx.store.expireSymKeys(ctx.now());
}

/**
 * At service start: expire, cascade revocations committed while the KDC was not running
 * (`checkParties`, key-revoke.ts), and drop the reservations of the sessions that ended with the
 * previous run. A client deposits on the session that reserved (client/keys/key-client.ts sendKey), so
 * after a restart none of them can be deposited; left in place they would only count against their
 * requesters' open reservations for 5 minutes (a KDC killed mid-exchange a few times would lock its
 * clients out of end-to-end keys for that long). Their prekeys were consumed either way; their owners'
 * housekeeping drops the privates.
 */
export async function sweep(
  ctx: KeyContext,
  checkParties: (rec: SymKeyRecord) => Promise<SymKeyRecord>,
): Promise<void> {
  await expireDue(ctx);
  for (const rec of await ctx.store.listSymKeys({ states: ['active'] })) await checkParties(rec);
  await ctx.store.deleteStaleReservations(Number.MAX_SAFE_INTEGER);
}
