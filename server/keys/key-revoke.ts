// Revocation of symmetric keys (docs/keys.md "Requirements"): by a party or the admin (revoke), by the
// cascade of a certificate revocation (onCertificateRevoked, and checkParties for revocations another
// process committed), and the superseding of a rotated key. "Revocation is durable before it is
// acknowledged": the state change and the queued notices commit in one transaction before a method
// returns, and the notices are pushed after that commit.
import { InputError, StateError } from '../../shared/errors.js';
import { CERTIFICATE_REVOKED, KEY_REVOCATION_REASONS } from '../../shared/keys/verdict.js';
import { assertCallerCurrent } from '../kdc/caller-status.js';
import type { DeliveryRecord, SymKeyRecord } from '../store/store.js';
import type { AsyncStoreTx } from '../store/async-store.js';
import type { Caller, KeyContext } from './key-context.js';
import { checkKeyNoticeQuota } from './key-quotas.js';

/** What a client or the admin may give (certificateRevoked is the cascade's own). */
const CLIENT_REVOCATION_REASONS = new Set<string>(KEY_REVOCATION_REASONS);

/** A key the caller may see (key-lookup.ts KeyLookup.find): revoke goes through it like every lookup. */
type FindKey = (caller: Caller, serial: string) => Promise<SymKeyRecord | undefined>;

export class KeyRevocation {
  readonly #ctx: KeyContext;
  readonly #find: FindKey;

  constructor(ctx: KeyContext, find: FindKey) {
    this.#ctx = ctx;
    this.#find = find;
  }

  /**
   * Revoke a key (either party or the admin). Durable, with both parties' notices queued, before this
   * returns; notices go out at once to whoever is connected.
   */
  async revoke(
    caller: Caller,
    req: { serial: string; reason: string },
  ): Promise<{ serial: string; status: 'revoked' | 'already_revoked'; revokedAt: number; reason: string }> {
    const ctx = this.#ctx;
    if (!CLIENT_REVOCATION_REASONS.has(req.reason)) {
      throw new InputError(
        'bad_reason',
        `${req.reason.slice(0, 40)} is not a reason for revoking a key; expected one of ${KEY_REVOCATION_REASONS.join(', ')}`,
      );
    }
    const rec = await this.#find(caller, req.serial);
    if (rec === undefined) throw new StateError('not_found', 'no such key');
    if (rec.state === 'revoked') {
      return {
        serial: rec.serial,
        status: 'already_revoked',
        revokedAt: rec.stateChangedAt ?? 0,
        reason: rec.revokedReason ?? 'unspecified',
      };
    }
    const now = ctx.now();
    const pushes = await ctx.store.transaction(async (tx) => {
      await assertCallerCurrent(tx, caller.serialHex, ctx.now());
      // Revoking a usable key is never refused. One already unusable everywhere (expired, superseded:
      // both clients dropped or stop using it on their own) only updates its record; its notices count
      // against the revoker like any other, so revoking old keys cannot fill the other party's queue.
      const current = await tx.getSymKey(rec.serial);
      if (caller.role === 'client' && current !== undefined && current.state !== 'active') {
        await checkKeyNoticeQuota(
          tx,
          ctx.limits,
          caller.name,
          rec.owner === caller.name ? rec.peer : rec.owner,
        );
      }
      return this.revokeKey(
        tx,
        rec,
        req.reason,
        caller.name,
        now,
        caller.role === 'client' ? caller.name : null,
      );
    });
    await ctx.pushAll(pushes);
    const after = (await ctx.store.getSymKey(rec.serial))!;
    return {
      serial: rec.serial,
      status: pushes.length > 0 ? 'revoked' : 'already_revoked',
      revokedAt: after.stateChangedAt ?? now,
      reason: after.revokedReason ?? req.reason,
    };
  }

  /**
   * docs/keys.md "Requirements": "Revoking a certificate moves every key that involves that identity to revoked with
   * reason `certificateRevoked`, and notifies the other party." Called from the CA's onRevoked (in
   * the revoking request, before it is answered, and at its syncs for revocations another process or
   * node committed); when it fails the CA calls it again on its next syncs until it succeeds, so it
   * only ever revokes what is still active. A process that dies first leaves it to the sweep at the
   * next start, and to checkParties on a key's next use.
   */
  async onCertificateRevoked(serialHex: string, name: string): Promise<number> {
    const ctx = this.#ctx;
    const now = ctx.now();
    const { pushes, keys } = await ctx.store.transaction(async (tx) => {
      const ids: DeliveryRecord[] = [];
      for (const rec of await tx.listSymKeys({ party: name, states: ['active'] })) {
        ids.push(...(await this.revokeKey(tx, rec, CERTIFICATE_REVOKED, 'kdc', now, null)));
      }
      await tx.deletePrekeys(name);
      // What waits for this name can reach no one: the keys it was sent under are revoked just above,
      // and a later certificate of the name (a new enrollment) has a new identity key, which cannot
      // open them. Kept, one sender's messages (1,000 a pair, ~43 KiB each) stayed queued for good.
      // Only when the name has no active certificate left: an older certificate revoked while a newer
      // one is in use leaves its queue to it.
      let dropped = 0;
      if ((await tx.activeCertificate(name)) === undefined) dropped = await tx.deleteQueueOf(name);
      if (ids.length > 0 || dropped > 0)
        await ctx.audit(tx, 'kdc', 'key.revoke.cascade', serialHex, { name, keys: ids.length / 2, dropped });
      return { pushes: ids.filter((d) => d.recipient !== name || dropped === 0), keys: ids.length / 2 };
    });
    await ctx.pushAll(pushes);
    return keys;
  }

  /** Cascade a certificate revocation the KDC has not applied yet (revoked by another process). */
  async checkParties(rec: SymKeyRecord): Promise<SymKeyRecord> {
    const ctx = this.#ctx;
    if (rec.state !== 'active') return rec;
    if (ctx.ca.revocationOf(rec.ownerCert) === undefined && ctx.ca.revocationOf(rec.peerCert) === undefined) {
      return rec;
    }
    const now = ctx.now();
    const pushes = await ctx.store.transaction((tx) =>
      this.revokeKey(tx, rec, CERTIFICATE_REVOKED, 'kdc', now, null),
    );
    await ctx.pushAll(pushes);
    return (await ctx.store.getSymKey(rec.serial)) ?? rec;
  }

  refuseRevokedParties(rec: SymKeyRecord): void {
    const { ca } = this.#ctx;
    if (ca.revocationOf(rec.ownerCert) !== undefined || ca.revocationOf(rec.peerCert) !== undefined) {
      throw new StateError('peer_revoked', 'a certificate of this exchange has been revoked');
    }
  }

  /**
   * Inside a transaction: revoke once and queue a notice for both parties, counted against `sender` (the
   * client that revoked; null for the KDC and the admin). Returns the delivery ids.
   */
  async revokeKey(
    tx: AsyncStoreTx,
    rec: SymKeyRecord,
    reason: string,
    by: string,
    now: number,
    sender: string | null,
  ): Promise<DeliveryRecord[]> {
    if (
      !(await tx.setSymKeyState(rec.serial, ['active', 'expired', 'superseded'], 'revoked', {
        at: now,
        reason,
        by,
      }))
    ) {
      return [];
    }
    await this.#ctx.audit(tx, by, 'key.revoke', rec.serial, { reason, owner: rec.owner, peer: rec.peer });
    return [
      await this.#replaceKeyNotices(tx, rec.owner, rec.serial, sender),
      await this.#replaceKeyNotices(tx, rec.peer, rec.serial, sender),
    ];
  }

  /** Inside a transaction: the old key of a rotation becomes superseded; both parties are told. */
  async supersede(
    tx: AsyncStoreTx,
    oldSerial: string,
    newSerial: string,
    caller: Caller,
    now: number,
  ): Promise<DeliveryRecord[]> {
    const by = caller.name;
    const old = await tx.getSymKey(oldSerial);
    if (old === undefined) return [];
    if (
      !(await tx.setSymKeyState(oldSerial, ['active'], 'superseded', {
        at: now,
        reason: 'superseded',
        by,
        supersededBy: newSerial,
      }))
    ) {
      throw new StateError('key_revoked', `key ${oldSerial} is no longer active`);
    }
    await this.#ctx.audit(tx, by, 'key.rotate', oldSerial, { supersededBy: newSerial });
    return [
      await this.#replaceKeyNotices(tx, old.owner, oldSerial, by),
      await this.#replaceKeyNotices(tx, old.peer, oldSerial, by),
    ];
  }

  /**
   * Queue a key.revoked notice for `recipient` in place of whatever notice about the same key is still
   * queued for it (a key.delivered of a key it never acknowledged, a key.verified, an earlier
   * key.revoked). Nothing is lost: a queued notice is rebuilt from the key's record when it is sent, so
   * the new one says all the old ones would have (the key is no longer usable), and a delivery of a key
   * that is no longer active is dropped at key.sync anyway. So a key has at most one queued notice per
   * recipient, whatever happens to it (docs/keys.md "Quotas").
   */
  async #replaceKeyNotices(
    tx: AsyncStoreTx,
    recipient: string,
    serial: string,
    sender: string | null,
  ): Promise<DeliveryRecord> {
    await tx.deleteQueuedKeyNotices(recipient, serial);
    return this.#ctx.enqueue(tx, recipient, 'key.revoked', serial, null, sender);
  }
}
