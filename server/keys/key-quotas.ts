// The per-peer bounds of the key service (docs/keys.md "Quotas", docs/security.md "Hostile enrolled
// clients"): what one client may queue for another, the active keys and open reservations of one pair.
// Each check runs inside the transaction that makes the write it bounds; the creation rate
// (creation-rate.ts) is taken before any work.
import { PolicyError } from '../../shared/errors.js';
import {
  KEY_CREATION_BURST,
  KEY_CREATION_PER_SECOND,
  MAX_ACTIVE_KEYS_PER_PAIR,
  MAX_OPEN_RESERVATIONS_PER_PAIR,
  MAX_QUEUED_KEY_NOTICES_PER_PAIR,
  MAX_QUEUED_MESSAGES_PER_PAIR,
} from '../../shared/keys/quotas.js';
import type { AsyncStoreTx } from '../store/async-store.js';
import type { CreationRateOptions } from './creation-rate.js';

/** docs/keys.md "Quotas"; the defaults are shared/keys/quotas.ts. */
export interface KeyLimits {
  activeKeysPerPair: number;
  queuedKeyNoticesPerPair: number;
  queuedMessagesPerPair: number;
  openReservationsPerPair: number;
  creation: CreationRateOptions;
}

export const DEFAULT_KEY_LIMITS: Readonly<KeyLimits> = Object.freeze({
  activeKeysPerPair: MAX_ACTIVE_KEYS_PER_PAIR,
  queuedKeyNoticesPerPair: MAX_QUEUED_KEY_NOTICES_PER_PAIR,
  queuedMessagesPerPair: MAX_QUEUED_MESSAGES_PER_PAIR,
  openReservationsPerPair: MAX_OPEN_RESERVATIONS_PER_PAIR,
  creation: Object.freeze({ burst: KEY_CREATION_BURST, perSecond: KEY_CREATION_PER_SECOND }),
});

/**
 * Inside a transaction: refuse the `adding` new key notices (one per key of a batch) `sender` would
 * queue for `recipient` past its quota.
 */
export async function checkKeyNoticeQuota(
  tx: AsyncStoreTx,
  limits: KeyLimits,
  sender: string,
  recipient: string,
  adding = 1,
): Promise<void> {
  const waiting = await tx.countQueuedFrom(recipient, sender, 'key');
  if (waiting + adding > limits.queuedKeyNoticesPerPair) {
    throw new PolicyError(
      'quota_exceeded',
      `${recipient} has ${waiting} undelivered key notices from you (at most ${limits.queuedKeyNoticesPerPair}${adding === 1 ? '' : `, ${adding} more asked for`}): they are delivered when ${recipient} connects`,
    );
  }
}

/** Inside a transaction: refuse one more message `sender` would queue for `recipient` past its quota. */
export async function checkMessageQuota(
  tx: AsyncStoreTx,
  limits: KeyLimits,
  sender: string,
  recipient: string,
): Promise<void> {
  // Per (sender, recipient): one sender's backlog never refuses another sender's message.
  const waiting = await tx.countQueuedFrom(recipient, sender, 'msg');
  if (waiting >= limits.queuedMessagesPerPair) {
    throw new PolicyError(
      'quota_exceeded',
      `${recipient} has ${waiting} undelivered messages from you (at most ${limits.queuedMessagesPerPair}): they are delivered when ${recipient} connects`,
    );
  }
}

/** Inside a transaction: refuse `adding` more active keys of `owner` with `peer` past the pair's bound. */
export async function checkActiveKeys(
  tx: AsyncStoreTx,
  limits: KeyLimits,
  owner: string,
  peer: string,
  now: number,
  adding = 1,
): Promise<void> {
  const active = await tx.countActiveKeys(owner, peer, now);
  if (active + adding > limits.activeKeysPerPair) {
    throw adding === 1 ? tooManyActive(limits, peer) : tooManyForBatch(limits, peer, active, adding);
  }
}

/**
 * Inside a reservation's transaction: the reservation becomes an active key at its deposit, so refuse
 * now what the deposit would refuse (open reservations and active keys of the pair together, a rotation
 * freeing one place), before one of the peer's prekeys is consumed for nothing.
 */
export async function checkReservationRoom(
  tx: AsyncStoreTx,
  limits: KeyLimits,
  owner: string,
  peer: string,
  opts: { now: number; staleBefore: number; replacing: boolean },
): Promise<void> {
  const reserved = await tx.countOpenReservations(owner, peer, opts.staleBefore);
  if (reserved >= limits.openReservationsPerPair) {
    throw new PolicyError(
      'quota_exceeded',
      `you already hold ${reserved} open reservations on ${peer}'s prekeys (at most ${limits.openReservationsPerPair}): deposit or let them expire`,
    );
  }
  const active = await tx.countActiveKeys(owner, peer, opts.now);
  if (active + reserved - (opts.replacing ? 1 : 0) >= limits.activeKeysPerPair) {
    throw tooManyActive(limits, peer);
  }
}

function tooManyActive(limits: KeyLimits, peer: string): PolicyError {
  return new PolicyError(
    'quota_exceeded',
    `you already hold ${limits.activeKeysPerPair} active keys with ${peer}: rotate (--replaces) or revoke one`,
  );
}

function tooManyForBatch(limits: KeyLimits, peer: string, active: number, adding: number): PolicyError {
  return new PolicyError(
    'quota_exceeded',
    `you hold ${active} active keys with ${peer} (at most ${limits.activeKeysPerPair}): ${adding} more do not fit, none was created`,
  );
}
