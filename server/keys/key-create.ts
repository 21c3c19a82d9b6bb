// KDC-generated keys, flow 2 (docs/keys.md "Requirements"): the KDC draws the key, stores it wrapped
// under the current KEK (kek.ts), queues its delivery to the peer and answers the owner with the key;
// `key.create.batch` does the same for n keys in one commit (docs/keys.md "Batches").
import { randomBytes } from '../../shared/crypto/random.js';
import { kdcKeyDigest, AES_KEY_BYTES } from '../../shared/keys/digest.js';
import { newKeySerial } from '../../shared/keys/serial.js';
import { assertCallerCurrent } from '../kdc/caller-status.js';
import type { DeliveryRecord, NewSymKey } from '../store/store.js';
import { deliveredPush, type Push } from './deliveries.js';
import type { Caller, KeyContext, NewKeyRequest } from './key-context.js';
import type { KeyEncryptionKeys } from './kek.js';
import type { KeyParties } from './key-parties.js';
import { checkActiveKeys, checkKeyNoticeQuota } from './key-quotas.js';
import type { KeyRevocation } from './key-revoke.js';
import { checkTtl } from './ttl.js';

export class KdcKeyCreation {
  readonly #ctx: KeyContext;
  readonly #parties: KeyParties;
  readonly #revocation: KeyRevocation;

  constructor(ctx: KeyContext, parties: KeyParties, revocation: KeyRevocation) {
    this.#ctx = ctx;
    this.#parties = parties;
    this.#revocation = revocation;
  }

  /** Flow 2: the KDC generates the key, stores it wrapped under the current KEK, and delivers it. */
  async create(
    caller: Caller,
    req: NewKeyRequest,
  ): Promise<{
    serial: string;
    key: Buffer;
    createdAt: number;
    expiresAt: number;
    peer: string;
    ownerCertSerial: string;
    peerCertSerial: string;
  }> {
    const ctx = this.#ctx;
    const ttl = checkTtl(req.ttl);
    const peerCert = await this.#parties.peerCertificate(caller, req.peer);
    if (req.replaces !== undefined) await this.#parties.replaceable(caller, req.replaces, req.peer, 'kdc');
    ctx.creation.take(caller.name);
    const kek = await ctx.kek();
    const now = ctx.now();
    const serial = newKeySerial();
    const key = randomBytes(AES_KEY_BYTES);
    const { wrapped, version } = kek.wrap(serial, key);
    // Group commit (server/store/group-commit.ts): concurrent creates share one WAL sync; this one still
    // returns (and pushes) only after its own rows committed. bench/keys.ts measured the per-commit
    // fsync as the largest part of the KDC's cost per key.
    const record = { ...kdcKeyRecord(caller, req.peer, peerCert.serialHex, now, ttl), serial };
    const pushes = await ctx.store.batch(async (tx) => {
      const at = ctx.now();
      await assertCallerCurrent(tx, caller.serialHex, at);
      await checkKeyNoticeQuota(tx, ctx.limits, caller.name, req.peer);
      // Old key first (see e2e-deposit.ts deposit), then the bound on active keys, which a rotation keeps.
      const ids: (DeliveryRecord | Push)[] =
        req.replaces === undefined
          ? []
          : await this.#revocation.supersede(tx, req.replaces, serial, caller, at);
      await checkActiveKeys(tx, ctx.limits, caller.name, req.peer, at);
      await tx.insertSymKey({
        ...record,
        state: 'active',
        replaces: req.replaces ?? null,
        digest: kdcKeyDigest(serial, key),
        wrappedKey: wrapped,
        kekVersion: version,
      });
      const delivery = await ctx.enqueue(tx, req.peer, 'key.delivered', serial, null, caller.name);
      // Pushed from the key in hand: the plaintext we just wrapped, not an unwrap of the stored copy.
      ids.push(deliveredPush(delivery, record, { key }) ?? delivery);
      await ctx.audit(tx, caller.name, 'key.create', serial, {
        peer: req.peer,
        mode: 'kdc',
        kekVersion: version,
      });
      if (req.ack !== undefined && req.ack.length > 0) await tx.deleteDeliveries(caller.name, req.ack);
      return ids;
    });
    await ctx.pushAll(pushes);
    return {
      serial,
      key,
      createdAt: now,
      expiresAt: now + ttl,
      peer: req.peer,
      ownerCertSerial: caller.serialHex,
      peerCertSerial: peerCert.serialHex,
    };
  }

  /**
   * `key.create.batch` (docs/keys.md "Batches"): `count` keys for one peer with one lifetime, all or
   * nothing. The peer is checked once, the creation rate spends `count` tokens (none when it holds
   * fewer), and one group-commit caller re-checks the caller's certificate, checks both per-pair bounds
   * for `count` more, and writes every key, its queued delivery and its audit row as key.create does;
   * any refusal rolls the whole savepoint back. Each key gets its own `key.delivered` notice: the queue's
   * unit (acknowledgement, coalescing with a revocation, key.sync) stays one key.
   */
  async createBatch(
    caller: Caller,
    req: { peer: string; count: number; ttl?: number; ack?: readonly number[] },
  ): Promise<{
    peer: string;
    ownerCertSerial: string;
    peerCertSerial: string;
    createdAt: number;
    expiresAt: number;
    keys: { serial: string; key: Buffer }[];
  }> {
    const ctx = this.#ctx;
    const ttl = checkTtl(req.ttl);
    const peerCert = await this.#parties.peerCertificate(caller, req.peer);
    ctx.creation.take(caller.name, req.count);
    const kek = await ctx.kek();
    const now = ctx.now();
    const made = Array.from({ length: req.count }, () => newKdcKey(kek));
    const base = kdcKeyRecord(caller, req.peer, peerCert.serialHex, now, ttl);
    const pushes = await ctx.store.batch(async (tx) => {
      const at = ctx.now();
      await assertCallerCurrent(tx, caller.serialHex, at);
      await checkKeyNoticeQuota(tx, ctx.limits, caller.name, req.peer, req.count);
      await checkActiveKeys(tx, ctx.limits, caller.name, req.peer, at, req.count);
      const out: (DeliveryRecord | Push)[] = [];
      for (const k of made) {
        const record = { ...base, serial: k.serial };
        const row: NewSymKey = {
          ...record,
          state: 'active',
          replaces: null,
          digest: kdcKeyDigest(k.serial, k.key),
          wrappedKey: k.wrapped,
          kekVersion: k.version,
        };
        await tx.insertSymKey(row);
        const delivery = await ctx.enqueue(tx, req.peer, 'key.delivered', k.serial, null, caller.name);
        out.push(deliveredPush(delivery, record, { key: k.key }) ?? delivery);
        await ctx.audit(tx, caller.name, 'key.create', k.serial, {
          peer: req.peer,
          mode: 'kdc',
          kekVersion: k.version,
        });
      }
      if (req.ack !== undefined && req.ack.length > 0) await tx.deleteDeliveries(caller.name, req.ack);
      return out;
    });
    await ctx.pushAll(pushes);
    return {
      peer: req.peer,
      ownerCertSerial: caller.serialHex,
      peerCertSerial: peerCert.serialHex,
      createdAt: now,
      expiresAt: now + ttl,
      keys: made.map((k) => ({ serial: k.serial, key: k.key })),
    };
  }
}

/** The fields of a KDC-generated key's record but its serial: none of flow 1's (docs/keys.md "Flow 2"). */
function kdcKeyRecord(caller: Caller, peer: string, peerCert: string, now: number, ttl: number) {
  return {
    mode: 'kdc' as const,
    owner: caller.name,
    ownerCert: caller.serialHex,
    peer,
    peerCert,
    createdAt: now,
    expiresAt: now + ttl,
    prekeyId: null,
    ephemeral: null,
    ciphertext: null,
    senderSignature: null,
  };
}

/** A new key drawn and wrapped under the current KEK (its plaintext stays in memory for the answer). */
function newKdcKey(kek: KeyEncryptionKeys): {
  serial: string;
  key: Buffer;
  wrapped: Buffer;
  version: number;
} {
  const serial = newKeySerial();
  const key = randomBytes(AES_KEY_BYTES);
  const { wrapped, version } = kek.wrap(serial, key);
  return { serial, key, wrapped, version };
}
