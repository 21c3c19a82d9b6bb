// key.create.batch and key.verify.batch (docs/keys.md "Batches") through the key service: n keys in one
// commit, all or nothing under every quota; per-item verdicts that one bad item does not poison; the
// caller's certificate re-checked in the commit; audit rows and notices as the single-key paths write them.
import t from 'tap';
import { acceptKdcKey } from '../../../shared/keys/exchange.js';
import { kdcKeyDigest } from '../../../shared/keys/digest.js';
import { newKeySerial } from '../../../shared/keys/serial.js';
import { getAppType } from '../../../shared/protocol/catalog.js';
import { validate } from '../../../shared/protocol/schema.js';
import { MAX_KEYS_PER_BATCH } from '../../../shared/protocol/messages-keys.js';
import { openStore } from '../../../server/store/store.js';
import { harness, pgHarness, type Client, type Harness, type Pushed } from './fixtures.js';

t.setTimeout(120_000);

/** What bob signs for each KDC-generated key delivered to him (flow 2), with its delivery id. */
async function accepted(h: Harness, pushes: Pushed[]) {
  const me = { name: 'bob', certSerial: h.bob.cert.serialHex, privateKey: h.bob.keys.privateKeyPem };
  return Promise.all(
    pushes
      .filter((p) => p.type === 'key.delivered')
      .map(async (p) => ({ d: p.body.d as number, ...(await acceptKdcKey(me, p.body as never)) })),
  );
}

/** A revocation committed by another process: only the store knows (the caller re-check must see it). */
function revokeElsewhere(h: Harness, who: Client): void {
  const other = openStore(h.dir);
  try {
    other.transaction(() => {
      other.insertRevocation({
        serialHex: who.cert.serialHex,
        revokedAt: h.clock.now,
        reason: 'keyCompromise',
      });
      other.setCertificateStatus(who.cert.serialHex, 'revoked');
    });
  } finally {
    other.close();
  }
}

function schemaError(type: string, body: unknown): string | undefined {
  try {
    validate(getAppType(type)!.request!, body, 'b');
    return undefined;
  } catch (err) {
    return `${(err as { code: string }).code}: ${(err as Error).message}`;
  }
}

t.test(
  'a batch of KDC-generated keys: created, delivered one notice per key, verified in one request',
  async (t) => {
    const h = await harness(t);
    const bobBox: Pushed[] = [];
    const aliceBox: Pushed[] = [];
    h.online.set('bob', bobBox);
    h.online.set('alice', aliceBox);
    const c = await h.service.createBatch(h.alice.caller, { peer: 'bob', count: 5, ttl: 3_600_000 });
    t.equal(c.keys.length, 5);
    t.equal(new Set(c.keys.map((k) => k.serial)).size, 5, 'five serials');
    t.equal(c.expiresAt - c.createdAt, 3_600_000);
    t.equal(c.ownerCertSerial, h.alice.cert.serialHex);
    t.equal(c.peerCertSerial, h.bob.cert.serialHex);
    for (const k of c.keys) {
      const rec = h.store.getSymKey(k.serial)!;
      t.equal(rec.state, 'active');
      t.equal(rec.mode, 'kdc');
      t.notOk(rec.wrappedKey!.includes(k.key), 'not plaintext at rest');
      t.ok(rec.digest!.equals(kdcKeyDigest(k.serial, k.key)));
    }
    t.same(
      h.store.listAudit({ action: 'key.create' }).map((a) => a.subject),
      c.keys.map((k) => k.serial),
      'one key.create audit row per key, in order',
    );
    t.same(
      bobBox.map((p) => `${p.type}:${String(p.body.serial)}`),
      c.keys.map((k) => `key.delivered:${k.serial}`),
      'one key.delivered push per key',
    );
    t.ok((bobBox[0]!.body.key as Buffer).equals(c.keys[0]!.key));
    t.equal(h.store.countDeliveries('bob'), 5);

    const signed = await accepted(h, bobBox);
    const v = await h.service.verifyBatch(h.bob.caller, {
      items: signed.map((s, i) => ({ serial: c.keys[i]!.serial, digest: s.digest, signature: s.signature })),
      ack: signed.map((s) => s.d),
    });
    t.same(
      v.map((r) => ('verdict' in r ? [r.serial, r.verdict, r.peerVerified] : r)),
      c.keys.map((k) => [k.serial, 'valid', true]),
    );
    t.equal(h.store.countDeliveries('bob'), 0, 'the acks were applied');
    t.same(
      aliceBox.filter((p) => p.type === 'key.verified').map((p) => p.body.serial),
      c.keys.map((k) => k.serial),
      'alice learns of each key verified',
    );
    t.equal(h.store.listAudit({ action: 'key.verify' }).length, 5, 'one key.verify audit row per key');
    for (const k of c.keys) t.not(h.store.getSymKey(k.serial)!.peerVerifiedAt, null);

    // Verifying again changes nothing and writes nothing.
    const again = await h.service.verifyBatch(h.bob.caller, {
      items: signed.map((s, i) => ({ serial: c.keys[i]!.serial, digest: s.digest, signature: s.signature })),
    });
    t.ok(again.every((r) => 'verdict' in r && r.verdict === 'valid' && r.peerVerified));
    t.equal(h.store.listAudit({ action: 'key.verify' }).length, 5, 'no second acceptance recorded');
    t.equal(aliceBox.filter((p) => p.type === 'key.verified').length, 5, 'no second notice');
  },
);

t.test('verify batch: per-item verdicts, one bad item does not poison the others', async (t) => {
  const h = await harness(t);
  const bobBox: Pushed[] = [];
  h.online.set('bob', bobBox);
  const c = await h.service.createBatch(h.alice.caller, { peer: 'bob', count: 3 });
  const theirs = await h.service.create(h.carol.caller, { peer: 'alice' });
  const signed = await accepted(h, bobBox);
  const badSignature = Buffer.from(signed[1]!.signature);
  badSignature[10]! ^= 1;
  const unknown = newKeySerial();
  const results = await h.service.verifyBatch(h.bob.caller, {
    items: [
      { serial: c.keys[0]!.serial, digest: signed[0]!.digest, signature: signed[0]!.signature },
      { serial: c.keys[1]!.serial, digest: signed[1]!.digest, signature: badSignature },
      { serial: theirs.serial, digest: kdcKeyDigest(theirs.serial, theirs.key) },
      { serial: unknown, digest: Buffer.alloc(32) },
      { serial: c.keys[2]!.serial, digest: Buffer.alloc(32, 7), signature: signed[2]!.signature },
    ],
    ack: [signed[0]!.d],
  });
  t.same(results[0], { serial: c.keys[0]!.serial, verdict: 'valid', peerVerified: true, state: 'active' });
  t.same(results[1], {
    serial: c.keys[1]!.serial,
    error: 'bad_signature',
    message: 'signature verification failed',
  });
  t.same(
    results[2],
    { serial: theirs.serial, verdict: 'not_found', peerVerified: false },
    "another pair's key: not_found, as key.verify answers",
  );
  t.same(results[3], { serial: unknown, verdict: 'not_found', peerVerified: false });
  t.same(results[4], {
    serial: c.keys[2]!.serial,
    verdict: 'mismatch',
    peerVerified: false,
    state: 'active',
  });
  t.not(h.store.getSymKey(c.keys[0]!.serial)!.peerVerifiedAt, null, 'the valid item was recorded');
  t.equal(h.store.getSymKey(c.keys[1]!.serial)!.peerVerifiedAt, null, 'the bad one was not');
  t.equal(h.store.countDeliveries('bob'), 2, 'the ack of the batch applied');

  // The single request answers the same items the same way.
  t.same(
    await h.service.verify(h.bob.caller, {
      serial: theirs.serial,
      digest: kdcKeyDigest(theirs.serial, theirs.key),
    }),
    results[2],
  );
  await t.rejects(
    h.service.verify(h.bob.caller, {
      serial: c.keys[1]!.serial,
      digest: signed[1]!.digest,
      signature: badSignature,
    }),
    { code: 'bad_signature' },
  );

  // The owner signing is the single path's bad_request, here for that item only.
  const owner = await h.service.verifyBatch(h.alice.caller, {
    items: [
      { serial: c.keys[1]!.serial, digest: signed[1]!.digest, signature: signed[1]!.signature },
      { serial: c.keys[1]!.serial.replace(/^./, (x) => (x === 'a' ? 'b' : 'a')), digest: Buffer.alloc(32) },
    ],
  });
  t.match(owner[0], { error: 'bad_request', message: /only the receiver/ });
  t.match(owner[1], { verdict: 'not_found' });
});

t.test('verify batch: a revoked caller writes nothing, not even its acks', async (t) => {
  const h = await harness(t);
  const bobBox: Pushed[] = [];
  h.online.set('bob', bobBox);
  const c = await h.service.createBatch(h.alice.caller, { peer: 'bob', count: 2 });
  const signed = await accepted(h, bobBox);
  revokeElsewhere(h, h.bob);
  await t.rejects(
    h.service.verifyBatch(h.bob.caller, {
      items: signed.map((s, i) => ({ serial: c.keys[i]!.serial, digest: s.digest, signature: s.signature })),
      ack: signed.map((s) => s.d),
    }),
    { code: 'cert_revoked' },
  );
  for (const k of c.keys) t.equal(h.store.getSymKey(k.serial)!.peerVerifiedAt, null);
  t.equal(h.store.countDeliveries('bob'), 2, 'the deliveries stay queued');
  t.equal(h.store.listAudit({ action: 'key.verify' }).length, 0);
  // Acks alone (no verdict to record) are a write too.
  await t.rejects(
    h.service.verifyBatch(h.bob.caller, {
      items: [{ serial: c.keys[0]!.serial, digest: signed[0]!.digest }],
      ack: [signed[0]!.d],
    }),
    { code: 'cert_revoked' },
  );
});

t.test('create batch: a revoked caller creates nothing', async (t) => {
  const h = await harness(t);
  revokeElsewhere(h, h.alice);
  await t.rejects(h.service.createBatch(h.alice.caller, { peer: 'bob', count: 3 }), { code: 'cert_revoked' });
  t.equal(h.store.listSymKeys({ party: 'alice' }).length, 0);
  t.equal(h.store.countDeliveries('bob'), 0);
  t.equal(h.store.listAudit({ action: 'key.create' }).length, 0);
});

t.test('create batch: all or nothing under the active-key and notice bounds', async (t) => {
  const h = await harness(t, { limits: { activeKeysPerPair: 10, queuedKeyNoticesPerPair: 100 } });
  await h.service.createBatch(h.alice.caller, { peer: 'bob', count: 8 });
  await t.rejects(h.service.createBatch(h.alice.caller, { peer: 'bob', count: 3 }), {
    code: 'quota_exceeded',
    message: 'you hold 8 active keys with bob (at most 10): 3 more do not fit, none was created',
  });
  t.equal(h.store.listSymKeys({ party: 'alice' }).length, 8, 'no key of the refused batch');
  t.equal(h.store.countQueuedFrom('bob', 'alice', 'key'), 8, 'no notice of it');
  t.equal(h.store.listAudit({ action: 'key.create' }).length, 8, 'no audit row of it');
  t.equal(
    (await h.service.createBatch(h.alice.caller, { peer: 'bob', count: 2 })).keys.length,
    2,
    'what fits',
  );

  const q = await harness(t, { limits: { activeKeysPerPair: 100, queuedKeyNoticesPerPair: 6 } });
  await q.service.createBatch(q.alice.caller, { peer: 'bob', count: 4 });
  await t.rejects(q.service.createBatch(q.alice.caller, { peer: 'bob', count: 3 }), {
    code: 'quota_exceeded',
    message: /bob has 4 undelivered key notices from you \(at most 6, 3 more asked for\)/,
  });
  t.equal(q.store.listSymKeys({ party: 'alice' }).length, 4);
  t.equal(q.store.countQueuedFrom('bob', 'alice', 'key'), 4);
  t.equal((await q.service.createBatch(q.alice.caller, { peer: 'bob', count: 2 })).keys.length, 2);
});

t.test('create batch: the creation rate spends n tokens, or none', async (t) => {
  const h = await harness(t, { limits: { creation: { burst: 5, perSecond: 1 } } });
  await h.service.create(h.alice.caller, { peer: 'bob' });
  await t.rejects(h.service.createBatch(h.alice.caller, { peer: 'bob', count: 5 }), {
    code: 'rate_limited',
    message: /too many keys created by alice: at most 5 at once, then 1 per second \(5 more in 1 s\)/,
  });
  t.equal(h.store.listSymKeys({ party: 'alice' }).length, 1, 'nothing created');
  t.equal(
    (await h.service.createBatch(h.alice.caller, { peer: 'bob', count: 4 })).keys.length,
    4,
    'nothing spent',
  );
  await t.rejects(h.service.create(h.alice.caller, { peer: 'bob' }), { code: 'rate_limited' });
});

t.test('create batch: the peer is checked as key.create checks it', async (t) => {
  const h = await harness(t);
  await t.rejects(h.service.createBatch(h.alice.caller, { peer: 'nobody', count: 2 }), {
    code: 'peer_unavailable',
  });
  await t.rejects(h.service.createBatch(h.alice.caller, { peer: 'alice', count: 2 }), {
    code: 'bad_request',
  });
  h.revocations.set(h.bob.cert.serialHex, { reason: 'keyCompromise', revokedAt: h.clock.now });
  await t.rejects(h.service.createBatch(h.alice.caller, { peer: 'bob', count: 2 }), { code: 'peer_revoked' });
  await t.rejects(h.service.createBatch(h.alice.caller, { peer: 'carol', count: 2, ttl: 10 }), {
    code: 'bad_request',
  });
  await t.rejects(h.service.createBatch(h.admin, { peer: 'carol', count: 2 }), { code: 'bad_request' });
  t.equal(h.store.listSymKeys({ party: 'alice' }).length, 0);
});

t.test('batch shapes: count 1..N, items 1..N, each serial once (schema, before any work)', async (t) => {
  const digest = Buffer.alloc(32);
  const serial = newKeySerial();
  t.equal(schemaError('key.create.batch', { peer: 'bob', count: 1 }), undefined);
  t.equal(schemaError('key.create.batch', { peer: 'bob', count: MAX_KEYS_PER_BATCH }), undefined);
  t.equal(schemaError('key.create.batch', { peer: 'bob', count: 0 }), 'schema: b: count must be at least 1');
  t.match(
    schemaError('key.create.batch', { peer: 'bob', count: MAX_KEYS_PER_BATCH + 1 }),
    /^schema: b\.count/,
  );
  t.match(schemaError('key.create.batch', { peer: 'bob', count: 2, replaces: serial }), /^schema: /);
  const items = Array.from({ length: MAX_KEYS_PER_BATCH }, () => ({ serial: newKeySerial(), digest }));
  t.equal(schemaError('key.verify.batch', { items }), undefined);
  t.match(schemaError('key.verify.batch', { items: [] }), /^schema: b\.items/);
  t.match(
    schemaError('key.verify.batch', { items: [...items, { serial: newKeySerial(), digest }] }),
    /^schema: b\.items/,
  );
  t.equal(
    schemaError('key.verify.batch', {
      items: [
        { serial, digest },
        { serial: newKeySerial(), digest },
        { serial, digest },
      ],
    }),
    'schema: b: a serial appears twice in `items`',
  );
});

t.test(
  'PostgreSQL: a batch commits whole, a refused one leaves nothing, verify batch records each',
  async (t) => {
    const h = await pgHarness(t, { limits: { activeKeysPerPair: 6 } });
    const bobBox: Pushed[] = [];
    h.online.set('bob', bobBox);
    const c = await h.service.createBatch(h.alice.caller, { peer: 'bob', count: 4 });
    await t.rejects(h.service.createBatch(h.alice.caller, { peer: 'bob', count: 3 }), {
      code: 'quota_exceeded',
    });
    t.same(
      (await h.store.listSymKeys({ party: 'alice' })).map((k) => k.serial).sort(),
      c.keys.map((k) => k.serial).sort(),
      'only the first batch',
    );
    t.equal(await h.store.countDeliveries('bob'), 4);
    t.equal((await h.store.listAudit({ action: 'key.create' })).length, 4);
    const me = { name: 'bob', certSerial: h.bob.cert.serialHex, privateKey: h.bob.keys.privateKeyPem };
    const signed = await Promise.all(
      bobBox.map(async (p) => ({ d: p.body.d as number, ...(await acceptKdcKey(me, p.body as never)) })),
    );
    const v = await h.service.verifyBatch(h.bob.caller, {
      items: signed.map((s, i) => ({ serial: c.keys[i]!.serial, digest: s.digest, signature: s.signature })),
      ack: signed.map((s) => s.d),
    });
    t.ok(v.every((r) => 'verdict' in r && r.verdict === 'valid' && r.peerVerified));
    t.equal(await h.store.countDeliveries('bob'), 0);
    t.equal(await h.store.countDeliveries('alice'), 4, 'four key.verified notices');
    t.equal((await h.store.listAudit({ action: 'key.verify' })).length, 4);
    for (const k of c.keys) t.not((await h.store.getSymKey(k.serial))!.peerVerifiedAt, null);
  },
);
