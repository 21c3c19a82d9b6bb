// This client's key records as the commands and the inbox both change them: a new record, expiry
// applied on read, the key a message may use, and the KDC's verdict on our copy applied locally
// (docs/keys.md "Local key states": a key is usable only once active).
import { InputError, StateError } from '../../shared/errors.js';
import { signPss } from '../../shared/crypto/rsa.js';
import { keyFingerprint } from '../../shared/keys/digest.js';
import { signedContent } from '../../shared/keys/transcript.js';
import type { Verdict } from '../../shared/keys/verdict.js';
import type { RequestBody, ResponseBody } from '../../shared/protocol/catalog.js';
import type { KeyParty } from './key-party.js';
import type { LocalKeyState, StoredKey } from './key-store.js';

export interface VerifyKeyResult {
  serial: string;
  verdict: Verdict;
  peerVerified: boolean;
  state: LocalKeyState | 'none';
  reason?: string;
}

const ZERO_DIGEST = Buffer.alloc(32);

/**
 * What one key's verification sends: our digest (zeros for a key we do not hold) and, for a key we
 * received, our receiver signature over its transcript (docs/keys.md, flow 1 step 6); the same in
 * `key.verify` and in each item of `key.verify.batch`.
 */
async function verifyItem(
  party: KeyParty,
  serial: string,
  rec: StoredKey | undefined,
): Promise<{ serial: string; digest: Buffer; signature?: Buffer }> {
  const digest = rec === undefined ? ZERO_DIGEST : Buffer.from(rec.digest, 'hex');
  const item: { serial: string; digest: Buffer; signature?: Buffer } = { serial, digest };
  if (
    rec !== undefined &&
    rec.role === 'receiver' &&
    rec.transcriptHash !== undefined &&
    rec.key !== undefined
  ) {
    item.signature = await signPss(
      signedContent('receiver', Buffer.from(rec.transcriptHash, 'hex'), digest),
      party.identityKey,
    );
  }
  return item;
}

/**
 * Ask the KDC for its verdict on our copy of `serial` and apply it locally (without waiting for queued
 * pushes: the inbox calls it while it processes one). `ack`: delivery ids the KDC forgets in the same
 * commit (the key.delivered notice of this key, once stored).
 */
export async function verifyAtKdc(party: KeyParty, serial: string, ack?: number): Promise<VerifyKeyResult> {
  const rec = party.store.getKey(serial);
  const body: RequestBody<'key.verify'> = await verifyItem(party, serial, rec);
  if (ack !== undefined) body.ack = [ack];
  return applyAnswer(party, serial, rec, await party.session.request('key.verify', body));
}

/** The KDC's answer about one key applied to our record of it (if we hold one), as callers report it. */
function applyAnswer(
  party: KeyParty,
  serial: string,
  rec: StoredKey | undefined,
  v: ResponseBody<'key.verify'>,
): VerifyKeyResult {
  const after = rec === undefined ? undefined : applyVerdict(party, rec, v.verdict, v);
  return {
    serial,
    verdict: v.verdict,
    peerVerified: v.peerVerified,
    state: after?.state ?? 'none',
    ...(v.reason === undefined ? {} : { reason: v.reason }),
  };
}

/**
 * verifyAtKdc for several keys in one `key.verify.batch` (docs/keys.md "Batches"; at most
 * MAX_KEYS_PER_BATCH): each verdict applied locally as verifyAtKdc applies one. An item the KDC could
 * not verify (`error`: a signature it refused) is left as it is, as a failed verifyAtKdc leaves it.
 */
export async function verifyManyAtKdc(
  party: KeyParty,
  serials: readonly string[],
  ack: readonly number[] = [],
): Promise<(VerifyKeyResult | { serial: string; error: string; message: string })[]> {
  const recs = serials.map((serial) => party.store.getKey(serial));
  const items = await Promise.all(serials.map((serial, i) => verifyItem(party, serial, recs[i])));
  const body: RequestBody<'key.verify.batch'> = { items };
  if (ack.length > 0) body.ack = [...ack];
  const r = await party.session.request('key.verify.batch', body);
  if (r.results.length !== serials.length || r.results.some((v, i) => v.serial !== serials[i])) {
    throw new InputError('bad_request', 'the KDC answered about other keys than it was asked about');
  }
  return r.results.map((v, i) => {
    const serial = serials[i]!;
    if (v.verdict === undefined || v.peerVerified === undefined) {
      return { serial, error: v.error ?? 'internal', message: v.message ?? '' };
    }
    const one: ResponseBody<'key.verify'> = { serial, verdict: v.verdict, peerVerified: v.peerVerified };
    if (v.state !== undefined) one.state = v.state;
    if (v.reason !== undefined) one.reason = v.reason;
    if (v.revokedAt !== undefined) one.revokedAt = v.revokedAt;
    return applyAnswer(party, serial, recs[i], one);
  });
}

function applyVerdict(
  party: KeyParty,
  rec: StoredKey,
  verdict: Verdict,
  v: ResponseBody<'key.verify'>,
): StoredKey | undefined {
  const { store } = party;
  const info = {
    ...(v.reason === undefined ? {} : { reason: v.reason }),
    ...(v.revokedAt === undefined ? {} : { revokedAt: v.revokedAt }),
  };
  switch (verdict) {
    case 'valid': {
      const confirmed = rec.role === 'receiver' || v.peerVerified;
      if (confirmed && rec.state === 'pending' && rec.key !== undefined) {
        store.putKey({ ...rec, state: 'active', updatedAt: party.now() });
      }
      return store.getKey(rec.serial);
    }
    case 'revoked':
      return store.retire(rec.serial, v.state === 'superseded' ? 'superseded' : 'revoked', info);
    case 'expired':
      return store.retire(rec.serial, 'expired', info);
    case 'mismatch':
      // Fail closed: what the KDC holds is not what we hold, so nobody can vouch for this key.
      return store.retire(rec.serial, 'mismatch', { reason: 'digest mismatch' });
    case 'not_found':
      return rec;
  }
}

/** The local record with expiry applied. */
export function localState(party: KeyParty, rec: StoredKey): StoredKey {
  if ((rec.state === 'active' || rec.state === 'pending') && rec.expiresAt <= party.now()) {
    return party.store.retire(rec.serial, 'expired', { revokedAt: rec.expiresAt }) ?? rec;
  }
  return rec;
}

/** A key we may encrypt or decrypt with: present, active, unexpired. */
export function usableKey(party: KeyParty, serial: string): StoredKey {
  const found = party.store.getKey(serial);
  if (found === undefined) throw new StateError('not_found', 'no such key in this client');
  const rec = localState(party, found);
  if (rec.state === 'revoked' || rec.state === 'superseded' || rec.state === 'mismatch') {
    throw new StateError('key_revoked', `key ${serial} is ${rec.state}`);
  }
  if (rec.state === 'expired') throw new StateError('key_expired', `key ${serial} has expired`);
  if (rec.state !== 'active' || rec.key === undefined) {
    throw new StateError('key_unverified', `key ${serial} is not verified yet by its receiver`);
  }
  return rec;
}

/**
 * The keys that may still be used, oldest first, with expiry applied: one that has expired is retired
 * on the way, so the live keys stay the ones a peer's quota and their lifetimes allow (key-store.ts).
 */
export function liveKeys(party: KeyParty): StoredKey[] {
  return party.store
    .listLiveKeys()
    .map((k) => localState(party, k))
    .filter((k) => k.state === 'pending' || k.state === 'active');
}

/** The newest active key shared with `peer`. */
export function newestKeyWith(party: KeyParty, peer: string): StoredKey {
  const shared = liveKeys(party).filter((k) => k.owner === peer || k.peer === peer);
  const active = shared.filter((k) => k.state === 'active' && k.key !== undefined);
  if (active.length > 0) return active[active.length - 1]!;
  if (shared.some((k) => k.state === 'pending')) {
    throw new StateError('key_unverified', `the key shared with ${peer} is not verified yet by its receiver`);
  }
  throw new StateError(
    'not_found',
    `no active key shared with ${peer}: run kds client send-key --to ${peer}`,
  );
}

/** A key just made or received: `pending` until the exchange is confirmed end to end. */
export function newRecord(
  now: number,
  r: {
    serial: string;
    mode: 'e2e' | 'kdc';
    role: 'sender' | 'receiver';
    owner: string;
    peer: string;
    createdAt: number;
    expiresAt: number;
    key: Buffer;
    digest: Buffer;
    transcriptHash?: Buffer;
  },
): StoredKey {
  return {
    serial: r.serial,
    mode: r.mode,
    role: r.role,
    owner: r.owner,
    peer: r.peer,
    state: 'pending',
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    digest: r.digest.toString('hex'),
    fingerprint: keyFingerprint(r.key),
    ...(r.transcriptHash === undefined ? {} : { transcriptHash: r.transcriptHash.toString('hex') }),
    key: r.key.toString('base64'),
    updatedAt: now,
  };
}
