// Messages relayed under a shared key (docs/keys.md "Requirements"): the KDC never sees their plaintext,
// queues them for the other party of the key (bounded per pair, key-quotas.ts) and pushes them to its
// live sessions. "Stale (revoked) keys are refused by both the KDC (`key_revoked`) and the clients."
import { InputError, StateError } from '../../shared/errors.js';
import { labOff } from '../../shared/lab-switches.js';
import { assertMessageSeq } from '../../shared/keys/replay-window.js';
import { assertCallerCurrent } from '../kdc/caller-status.js';
import { encodeMessagePayload } from './deliveries.js';
import type { Caller, KeyContext } from './key-context.js';
import { refuseUnusable, type KeyLookup } from './key-lookup.js';
import { checkMessageQuota } from './key-quotas.js';

/** Relay a message encrypted with a shared key to the other party of that key. */
export async function sendMessage(
  ctx: KeyContext,
  lookup: KeyLookup,
  caller: Caller,
  req: { to: string; serial: string; seq: number; nonce: Buffer; ciphertext: Buffer },
): Promise<{ delivered: number; queued: boolean; sentAt: number }> {
  // The KDC only relays `seq` (bound into the AAD, checked by the receiver); 0 is not a sequence number.
  assertMessageSeq(req.seq);
  const rec = await lookup.find(caller, req.serial);
  if (rec === undefined) throw new StateError('not_found', 'no such key');
  const other = rec.owner === caller.name ? rec.peer : rec.owner;
  if (req.to !== other || caller.role !== 'client') {
    throw new InputError('bad_request', `key ${rec.serial} is shared with ${other}, not ${req.to}`);
  }
  // LAB SWITCH revocation: a message under a revoked key is relayed.
  if (!labOff(ctx.defences, 'revocation')) refuseUnusable(rec);
  const sentAt = ctx.now();
  const payload = encodeMessagePayload({
    from: caller.name,
    to: req.to,
    serial: rec.serial,
    seq: req.seq,
    nonce: req.nonce,
    ciphertext: req.ciphertext,
    sentAt,
  });
  const queued = await ctx.store.transaction(async (tx) => {
    await assertCallerCurrent(tx, caller.serialHex, ctx.now());
    await checkMessageQuota(tx, ctx.limits, caller.name, req.to);
    return ctx.enqueue(tx, req.to, 'msg', rec.serial, payload, caller.name);
  });
  const delivered = await ctx.pushAll([queued]);
  return { delivered, queued: true, sentAt };
}
