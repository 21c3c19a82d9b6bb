// KDC-generated keys, flow 2 (docs/keys.md "Requirements"): the KDC draws the key, stores it wrapped
// under the current KEK (kek.ts), queues its delivery to the peer and answers the owner with the key.
import { randomBytes } from '../../shared/crypto/random.js';
import { kdcKeyDigest, AES_KEY_BYTES } from '../../shared/keys/digest.js';
import { newKeySerial } from '../../shared/keys/serial.js';
import { assertCallerCurrent } from '../kdc/caller-status.js';
import type { DeliveryRecord } from '../store/store.js';
import { deliveredPush, type Push } from './deliveries.js';
import type { Caller, KeyContext, NewKeyRequest } from './key-context.js';
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
    const record = {
      serial,
      mode: 'kdc' as const,
      owner: caller.name,
      ownerCert: caller.serialHex,
      peer: req.peer,
      peerCert: peerCert.serialHex,
      createdAt: now,
      expiresAt: now + ttl,
      prekeyId: null,
      ephemeral: null,
      ciphertext: null,
      senderSignature: null,
    };
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
}
