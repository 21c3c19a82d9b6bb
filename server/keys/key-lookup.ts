// Looking keys up (docs/keys.md "Requirements"): "Only the two parties (and the admin) may fetch, verify
// or revoke a key; anyone else gets `not_found` (no oracle telling which serials exist)": every lookup
// of the key service goes through KeyLookup.find, which answers an unknown serial and somebody else's
// key identically. Also the listings and the summary a party or the admin sees (never key material).
import { InternalError, StateError } from '../../shared/errors.js';
import { isKeySerial } from '../../shared/keys/serial.js';
import { MAX_KEYS_LISTED } from '../../shared/protocol/messages-keys.js';
import type { KeyState } from '../../shared/keys/verdict.js';
import type { SymKeyMode, SymKeyRecord } from '../store/store.js';
import type { Caller, KeyContext } from './key-context.js';
import { expireDue } from './key-sweep.js';

/** Rows a listing reads: what it shows, and one more to know whether there were more (`truncated`). */
const LISTED_KEYS = MAX_KEYS_LISTED + 1;

/** A key record as its parties and the admin see it: never key material. */
export interface KeySummary {
  serial: string;
  mode: SymKeyMode;
  owner: string;
  peer: string;
  state: KeyState;
  createdAt: number;
  expiresAt: number;
  peerVerified: boolean;
  revokedAt?: number;
  reason?: string;
  revokedBy?: string;
  replaces?: string;
  supersededBy?: string;
}

/** key-revoke.ts KeyRevocation.checkParties: a record after any certificate-revocation cascade it missed. */
type CheckParties = (rec: SymKeyRecord) => Promise<SymKeyRecord>;

export class KeyLookup {
  readonly #ctx: KeyContext;
  readonly #checkParties: CheckParties;
  /** The listing each name has running (and queued behind it): one at a time per name. */
  readonly #listing = new Map<string, Promise<unknown>>();

  constructor(ctx: KeyContext, checkParties: CheckParties) {
    this.#ctx = ctx;
    this.#checkParties = checkParties;
  }

  /** A non-reserved key the caller may see (a party, or the admin), or undefined: one answer for both. */
  async find(caller: Caller, serial: string): Promise<SymKeyRecord | undefined> {
    const ctx = this.#ctx;
    if (!isKeySerial(serial)) return undefined;
    let rec = await ctx.store.getSymKey(serial);
    // Expiry is applied lazily: only this record's expiry matters to this lookup, so the store-wide
    // UPDATE (a write statement on every verify otherwise) runs only when this key is due.
    if (rec?.state === 'active' && rec.expiresAt <= ctx.now()) {
      await expireDue(ctx);
      rec = await ctx.store.getSymKey(serial);
    }
    if (rec === undefined || rec.state === 'reserved') return undefined;
    if (caller.role !== 'admin' && rec.owner !== caller.name && rec.peer !== caller.name) return undefined;
    return this.#checkParties(rec);
  }

  /** One key's record, for its parties and the admin only. */
  async get(caller: Caller, serial: string): Promise<KeySummary> {
    const rec = await this.find(caller, serial);
    if (rec === undefined) throw new StateError('not_found', 'no such key');
    return summarize(rec);
  }

  /**
   * The caller's newest keys, at most LISTED_KEYS: a listing shows MAX_KEYS_LISTED and says when there
   * were more (one extra tells). Only those rows are read, however many keys the KDC or the caller holds.
   */
  list(caller: Caller): Promise<KeySummary[]> {
    return this.#oneAtATime(caller.name, async () => {
      await expireDue(this.#ctx);
      const out: KeySummary[] = [];
      for (const r of await this.#ctx.store.listSymKeys({ party: caller.name, newest: LISTED_KEYS }))
        out.push(summarize(await this.#checkParties(r)));
      return out;
    });
  }

  /** `kds admin keys [--revoked]`: the newest keys, or the newest revoked ones (serial, time, reason). */
  adminList(caller: Caller, opts: { revoked?: boolean } = {}): Promise<KeySummary[]> {
    return this.#oneAtATime(caller.name, async () => {
      await expireDue(this.#ctx);
      const filter = opts.revoked === true ? { states: ['revoked' as const] } : {};
      return (await this.#ctx.store.listSymKeys({ ...filter, newest: LISTED_KEYS })).map((r) => summarize(r));
    });
  }

  /**
   * Listings of one name run one after another. A listing at its bound costs the KDC ~55-69 ms of the
   * event loop (1,001 rows read, summarized, then encoded, checked and sealed as one reply); a client that
   * kept 32 in flight (one session, or many) made an honest client's ping wait 0.8-1.6 s. The next one
   * starts a turn of the event loop after the last resolved, once its reply has been written, so other
   * sessions' requests get in between.
   */
  #oneAtATime<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#listing.get(name) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const done = run.then(turn, turn);
    this.#listing.set(name, done);
    void done.then(() => {
      if (this.#listing.get(name) === done) this.#listing.delete(name);
    });
    return run;
  }
}

/** key_revoked / key_expired for a key that can no longer be used (rotated, messaged under). */
export function refuseUnusable(rec: SymKeyRecord): void {
  if (rec.state === 'revoked' || rec.state === 'superseded') {
    throw new StateError('key_revoked', `key ${rec.serial} is ${rec.state}`);
  }
  if (rec.state === 'expired') throw new StateError('key_expired', `key ${rec.serial} has expired`);
}

/**
 * A key's state as its parties see it. A reserved serial is not a key yet: find() and the listings
 * leave reserved rows out, so one reaching here is a bug (the reply's schema would refuse it too).
 */
export function issuedState(rec: SymKeyRecord): KeyState {
  if (rec.state === 'reserved') throw new InternalError('internal', `key ${rec.serial} is still reserved`);
  return rec.state;
}

function summarize(rec: SymKeyRecord): KeySummary {
  const out: KeySummary = {
    serial: rec.serial,
    mode: rec.mode,
    owner: rec.owner,
    peer: rec.peer,
    state: issuedState(rec),
    createdAt: rec.createdAt,
    expiresAt: rec.expiresAt,
    peerVerified: rec.peerVerifiedAt !== null,
  };
  if (rec.state !== 'active' && rec.stateChangedAt !== null) out.revokedAt = rec.stateChangedAt;
  if (rec.revokedReason !== null) out.reason = rec.revokedReason;
  if (rec.revokedBy !== null) out.revokedBy = rec.revokedBy;
  if (rec.replaces !== null) out.replaces = rec.replaces;
  if (rec.supersededBy !== null) out.supersededBy = rec.supersededBy;
  return out;
}
