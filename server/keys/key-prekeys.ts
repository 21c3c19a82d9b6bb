// The prekey stock the KDC keeps for each client (docs/keys.md "Prekey stock and the last-resort
// prekey", "Prekey housekeeping"): uploads, the status query with the ids still held, and the
// key.prekeys.low push when a reservation drains the stock.
import { InputError, PolicyError } from '../../shared/errors.js';
import { MAX_PREKEY_STOCK, PREKEY_STOCK } from '../../shared/keys/prekey.js';
import { MAX_HELD_PREKEYS } from '../../shared/protocol/messages-keys.js';
import { assertCallerCurrent } from '../kdc/caller-status.js';
import type { NewPrekey } from '../store/store.js';
import type { Caller, KeyContext, LiveSessions } from './key-context.js';
import { RESERVATION_TTL_MS } from './ttl.js';

/**
 * Store signed prekeys for the caller's current certificate (and, with `lastResort`, replace its
 * last-resort prekey); returns the stock and how many to add, the id of the last-resort prekey the KDC
 * holds for that certificate (`lastResort`, absent when none), and, for a status query (no prekeys)
 * with `listHeld`, `held`: every prekey id of the caller this KDC still needs (stock, last-resort,
 * open reservations, queued e2e deliveries), so the client can delete the privates of the others
 * (docs/keys.md "Prekey housekeeping"). Left out when there are more than MAX_HELD_PREKEYS: the client
 * then deletes nothing, which only keeps orphans longer.
 */
export async function putPrekeys(
  ctx: KeyContext,
  caller: Caller,
  prekeys: readonly NewPrekey[],
  opts: { listHeld?: boolean; lastResort?: NewPrekey } = {},
): Promise<{ stock: number; wanted: number; held?: string[]; lastResort?: string }> {
  // A prekey id names one prekey of this client for good (UNIQUE (owner, prekey_id) in the store): a
  // repeated id is the client's mistake and gets bad_request, not the store's constraint error
  // (found by test/hardening/fuzz-app.test.ts).
  const ids = prekeys.map((p) => p.prekeyId);
  if (opts.lastResort !== undefined) ids.push(opts.lastResort.prekeyId);
  if (new Set(ids).size !== ids.length) {
    throw new InputError('bad_request', 'prekey ids must be distinct');
  }
  let stock: number;
  try {
    // Through the group commit, as reserve and deposit: a client tops its stock up with two requests
    // (the status query, then the upload) while keys are being exchanged, and each of them was a
    // transaction of its own with its own WAL sync on the event loop. The answer still follows the
    // durable commit.
    stock = await ctx.store.batch(async (tx) => {
      await assertCallerCurrent(tx, caller.serialHex, ctx.now());
      // Prekeys signed under an older certificate of this name can no longer be verified by senders.
      await tx.deletePrekeys(caller.name, caller.serialHex);
      const before = await tx.countPrekeys(caller.name, caller.serialHex);
      if (before + prekeys.length > MAX_PREKEY_STOCK) {
        throw new PolicyError('rate_limited', `at most ${MAX_PREKEY_STOCK} prekeys are kept per client`);
      }
      const now = ctx.now();
      if (prekeys.length > 0) await tx.insertPrekeys(caller.name, caller.serialHex, prekeys, now);
      if (opts.lastResort !== undefined) {
        await tx.putLastResortPrekey(caller.name, caller.serialHex, opts.lastResort, now);
      }
      return before + prekeys.length;
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: unknown } }).cause;
    // SQLite's and PostgreSQL's codes for a UNIQUE violation (pg-store.ts keeps the driver's error as the cause).
    if (cause?.code === 'SQLITE_CONSTRAINT_UNIQUE' || cause?.code === '23505') {
      throw new InputError('bad_request', 'a prekey with this id is already stocked');
    }
    throw err;
  }
  const lastResort = (await ctx.store.getLastResortPrekey(caller.name, caller.serialHex))?.prekeyId;
  const answer = {
    stock,
    wanted: Math.max(0, PREKEY_STOCK - stock),
    ...(lastResort === undefined ? {} : { lastResort }),
  };
  if (prekeys.length > 0 || opts.lastResort !== undefined || opts.listHeld !== true) return answer;
  const held = await ctx.store.heldPrekeyIds(
    caller.name,
    caller.serialHex,
    ctx.now() - RESERVATION_TTL_MS,
    MAX_HELD_PREKEYS + 1,
  );
  return held.length > MAX_HELD_PREKEYS ? answer : { ...answer, held };
}

/**
 * After the commit of a reservation that left `stock` one-time prekeys: ask the owner's live sessions
 * to top up (`key.prekeys.low`). Not queued: an offline client tops up at its next session anyway, and
 * the last-resort prekey serves meanwhile.
 */
export function tellPrekeysLow(sessions: LiveSessions, owner: string, stock: number): void {
  for (const session of sessions.byName(owner)) {
    if (session.closed) continue;
    try {
      session.push('key.prekeys.low', { stock, wanted: Math.max(0, PREKEY_STOCK - stock) });
    } catch {
      // best effort: the stock is checked again at every session start and after every key received
    }
  }
}
