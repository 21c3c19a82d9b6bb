// Expiry of symmetric keys: lazily on listings and lookups (expireDue), the sweep at service start
// that catches up with what happened while the KDC was not running, and the retention that deletes
// keys long expired (pruneExpiredKeys).
import type { SymKeyRecord } from '../store/store.js';
import type { KeyContext } from './key-context.js';
import { RESERVATION_TTL_MS } from './ttl.js';

/** Active keys past their expiry become `expired` (lazily, on every listing and lookup). */
export async function expireDue(ctx: KeyContext): Promise<void> {
  await ctx.store.expireSymKeys(ctx.now());
}

/**
 * At service start: expire, cascade revocations committed while the KDC was not running
 * (`checkParties`, key-revoke.ts), and drop the reservations that can no longer be deposited.
 *
 * A client deposits on the session that reserved (client/keys/key-client.ts sendKey), so the sessions
 * that ended with the previous run can deposit none of theirs; left in place they would only count
 * against their requesters' open reservations for RESERVATION_TTL_MS (a KDC killed mid-exchange a few
 * times would lock its clients out of end-to-end keys for that long). Their prekeys were consumed either
 * way; their owners' housekeeping drops the privates.
 *
 * Which ones those are depends on who else writes the store. SQLite: this KDC alone (the data
 * directory's kds.pid refuses a second one, and no other command makes reservations), so every
 * reservation in it belongs to a session that is gone. PostgreSQL: the other nodes' live sessions hold
 * reservations in the same table, their senders about to deposit; a row does not say which node made
 * it, so only the stale ones go, as at every reservation. A node killed mid-exchange leaves its
 * sessions' reservations counting against their quotas until they are stale.
 */
export async function sweep(
  ctx: KeyContext,
  checkParties: (rec: SymKeyRecord) => Promise<SymKeyRecord>,
): Promise<void> {
  await expireDue(ctx);
  for (const rec of await ctx.store.listSymKeys({ states: ['active'] })) await checkParties(rec);
  const shared = ctx.store.engine === 'postgres';
  await ctx.store.deleteStaleReservations(shared ? ctx.now() - RESERVATION_TTL_MS : Number.MAX_SAFE_INTEGER);
}

/** Keys one retention transaction deletes: short transactions, so other writers interleave. */
export const KEY_RETENTION_BATCH = 500;

/**
 * Delete the keys that expired more than `retentionMs` ago (docs/keys.md "Retention"): batches of
 * KEY_RETENTION_BATCH, each its own transaction with one audit entry (how many, expired before when).
 * Only expired keys go, so no answer about a usable or revoked-but-unexpired key changes: a verdict on a
 * deleted serial is `not_found`, and every client has retired that key by its own expiry already.
 * Returns how many were deleted.
 */
export async function pruneExpiredKeys(
  ctx: KeyContext,
  retentionMs: number,
  notAfter = Number.POSITIVE_INFINITY,
): Promise<number> {
  // `notAfter`: the shared database's time on a cluster (docs/deployment.md "Clocks"), so that this
  // node's clock, if set forward, cannot delete for every node keys whose retention is not over.
  const before = Math.min(ctx.now(), notAfter) - retentionMs;
  let total = 0;
  for (;;) {
    const deleted = await ctx.store.transaction(async (tx) => {
      const n = await tx.deleteExpiredSymKeys(before, KEY_RETENTION_BATCH);
      if (n > 0) await ctx.audit(tx, 'kdc', 'key.prune', '', { keys: n, expiredBefore: before });
      return n;
    });
    total += deleted;
    if (deleted < KEY_RETENTION_BATCH) return total;
    // A backlog (a first run over a large store): let the requests waiting on the event loop through.
    await new Promise((resolve) => setImmediate(resolve));
  }
}
