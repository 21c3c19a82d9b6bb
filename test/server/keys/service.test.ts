// The KDC key service (server/keys/service.ts) on a real sqlite store: both flows, verification
// verdicts, revocation by parties/admin/certificate cascade, no-oracle lookups, expiry, rotation,
// messages and the durable delivery queue.
import t from 'tap';
import { KeyService } from '../../../server/keys/service.js';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { generatePrekey } from '../../../shared/keys/prekey.js';
import {
  acceptKdcKey,
  runReceiverExchange,
  runSenderExchange,
  type E2eDelivery,
} from '../../../shared/keys/exchange.js';
import { ciphertextDigest, kdcKeyDigest } from '../../../shared/keys/digest.js';
import { newKeySerial } from '../../../shared/keys/serial.js';
import { sealMessage } from '../../../shared/keys/message.js';
import { harness, type Client, type Harness, type Pushed } from './fixtures.js';
import { issuedState } from '../../../server/keys/key-lookup.js';
import { MAX_HELD_PREKEYS } from '../../../shared/protocol/messages-keys.js';

t.setTimeout(120_000);

async function uploadPrekeys(h: Harness, who: Client, n = 3) {
  const owner = { name: who.name, certSerial: who.cert.serialHex };
  const made = await Promise.all(
    Array.from({ length: n }, () => generatePrekey(owner, who.keys.privateKeyPem)),
  );
  const r = await h.service.putPrekeys(
    who.caller,
    made.map((p) => ({ prekeyId: p.id, publicKey: p.publicKey, signature: p.signature })),
  );
  return { made, r };
}

/** Alice -> Bob end to end through the service; returns what each side holds. */
async function e2e(h: Harness, opts: { ttl?: number; replaces?: string } = {}) {
  const { made } = await uploadPrekeys(h, h.bob, 1);
  const res = await h.service.reserve(h.alice.caller, { peer: 'bob', ...opts });
  const sent = await runSenderExchange(
    { name: 'alice', certSerial: h.alice.cert.serialHex, privateKey: h.alice.keys.privateKeyPem },
    {
      serial: res.serial,
      expiresAt: res.expiresAt,
      peer: res.peer,
      peerCert: res.peerCert,
      prekey: res.prekey,
    },
    { ca: h.ca, now: h.clock.now },
  );
  const dep = await h.service.deposit(h.alice.caller, sent.deposit);
  const pk = made.find((p) => p.id === res.prekey.id)!;
  return { res, sent, dep, pk };
}

function bodyOf(
  list: Pushed[] | undefined,
  type: string,
  serial: string,
): Record<string, unknown> | undefined {
  return list?.find((p) => p.type === type && p.body.serial === serial)?.body;
}

async function bobReceives(
  h: Harness,
  body: Record<string, unknown>,
  pk: { id: string; publicKey: Buffer; privateKey: Buffer },
) {
  return runReceiverExchange(
    { name: 'bob', certSerial: h.bob.cert.serialHex, privateKey: h.bob.keys.privateKeyPem },
    body as unknown as E2eDelivery,
    { id: pk.id, certSerial: h.bob.cert.serialHex, publicKey: pk.publicKey, privateKey: pk.privateKey },
    { ca: h.ca, now: h.clock.now },
  );
}

t.test('flow 1: reserve, deposit, live delivery, verify with the receiver signature', async (t) => {
  const h = await harness(t);
  h.online.set('bob', []);
  h.online.set('alice', []);
  const { r } = await uploadPrekeys(h, h.bob, 3);
  t.same(r, { stock: 3, wanted: 7 });
  const { res, sent, dep } = await e2e(h);
  t.equal(h.store.countPrekeys('bob', h.bob.cert.serialHex), 3, 'one of four prekeys consumed');
  t.ok(dep.digest.equals(sent.digest));
  const delivered = bodyOf(h.online.get('bob'), 'key.delivered', res.serial)!;
  t.ok(delivered, 'pushed to bob at once');
  t.equal(delivered.mode, 'e2e');
  t.notOk('key' in delivered, 'an e2e delivery never carries a key');
  const pk = (await uploadPrekeys(h, h.bob, 0)).made; // no-op upload: stock unchanged
  t.equal(pk.length, 0);
  const stored = h.store.getSymKey(res.serial)!;
  t.equal(stored.state, 'active');
  t.ok(stored.digest!.equals(ciphertextDigest(sent.deposit.ciphertext)));
  t.equal(stored.wrappedKey, null, 'the KDC holds no key for an e2e exchange');
});

t.test('flow 1 end to end with verification and key.verified to the owner', async (t) => {
  const h = await harness(t);
  h.online.set('bob', []);
  h.online.set('alice', []);
  const { res, sent, pk } = await e2e(h);
  const got = await bobReceives(h, bodyOf(h.online.get('bob'), 'key.delivered', res.serial)!, pk);
  t.ok(got.key.equals(sent.key));
  const carolView = await h.service.verify(h.carol.caller, { serial: res.serial, digest: got.digest });
  t.same(
    carolView,
    { serial: res.serial, verdict: 'not_found', peerVerified: false },
    'a third party learns nothing',
  );
  const v = await h.service.verify(h.bob.caller, {
    serial: res.serial,
    digest: got.digest,
    signature: got.signature,
  });
  t.equal(v.verdict, 'valid');
  t.equal(v.peerVerified, true);
  t.ok(bodyOf(h.online.get('alice'), 'key.verified', res.serial), 'alice is told bob accepted the key');
  const va = await h.service.verify(h.alice.caller, { serial: res.serial, digest: sent.digest });
  t.equal(va.verdict, 'valid');
  t.equal(va.peerVerified, true);
  await t.rejects(
    h.service.verify(h.alice.caller, { serial: res.serial, digest: sent.digest, signature: got.signature }),
    { code: 'bad_request' },
    'only the receiver signs a verification',
  );
  const forged = Buffer.from(got.signature);
  forged[5]! ^= 1;
  await t.rejects(
    h.service.verify(h.bob.caller, { serial: res.serial, digest: got.digest, signature: forged }),
    { code: 'bad_signature' },
  );
  t.equal(
    (await h.service.verify(h.bob.caller, { serial: res.serial, digest: Buffer.alloc(32) })).verdict,
    'mismatch',
  );
  t.same(
    (await h.service.list(h.bob.caller)).map((k) => [k.serial, k.state, k.peerVerified]),
    [[res.serial, 'active', true]],
  );
  t.same(await h.service.list(h.carol.caller), []);
});

t.test('deposit checks: owner only, signature over the KDC view, reservation single use', async (t) => {
  const h = await harness(t);
  await uploadPrekeys(h, h.bob, 2);
  const res = await h.service.reserve(h.alice.caller, { peer: 'bob' });
  const sent = await runSenderExchange(
    { name: 'alice', certSerial: h.alice.cert.serialHex, privateKey: h.alice.keys.privateKeyPem },
    { serial: res.serial, expiresAt: res.expiresAt, peer: 'bob', peerCert: res.peerCert, prekey: res.prekey },
    { ca: h.ca, now: h.clock.now },
  );
  await t.rejects(
    async () => h.service.deposit(h.carol.caller, sent.deposit),
    { code: 'not_found' },
    'someone else cannot deposit',
  );
  const other = Buffer.from(sent.deposit.ephemeral);
  other[0]! ^= 1;
  await t.rejects(
    async () => h.service.deposit(h.alice.caller, { ...sent.deposit, ephemeral: other }),
    { code: 'bad_signature' },
    'relay-swapped ephemeral',
  );
  const blob = Buffer.from(sent.deposit.ciphertext);
  blob[20]! ^= 1;
  await t.rejects(
    async () => h.service.deposit(h.alice.caller, { ...sent.deposit, ciphertext: blob }),
    { code: 'bad_signature' },
    'relay-swapped ciphertext',
  );
  await t.rejects(
    async () => h.service.deposit(h.alice.caller, { ...sent.deposit, ciphertext: blob.subarray(1) }),
    {
      code: 'malformed',
    },
  );
  t.equal(h.store.getSymKey(res.serial)!.state, 'reserved', 'nothing stored by failed deposits');
  await h.service.deposit(h.alice.caller, sent.deposit);
  await t.rejects(
    async () => h.service.deposit(h.alice.caller, sent.deposit),
    { code: 'not_found' },
    'a reservation is used once',
  );
  await t.rejects(
    async () => h.service.deposit(h.alice.caller, { ...sent.deposit, serial: newKeySerial() }),
    {
      code: 'not_found',
    },
  );
  // an old reservation cannot be deposited
  const late = await h.service.reserve(h.alice.caller, { peer: 'bob' });
  h.clock.now += 6 * 60 * 1000;
  await t.rejects(async () => h.service.deposit(h.alice.caller, { ...sent.deposit, serial: late.serial }), {
    code: 'not_found',
  });
});

t.test('peers: unknown, revoked, self, no prekeys; ttl bounds', async (t) => {
  const h = await harness(t);
  await t.rejects(async () => h.service.reserve(h.alice.caller, { peer: 'nobody' }), {
    code: 'peer_unavailable',
  });
  await t.rejects(
    async () => h.service.reserve(h.alice.caller, { peer: 'bob' }),
    {
      code: 'peer_unavailable',
      // What bob must do (a key command, not just any session), and what works meanwhile.
      message: /bob has no prekeys: bob publishes them when it runs a key command .*--mode kdc\) needs none/,
    },
    'bob has no prekeys yet',
  );
  await t.rejects(async () => h.service.reserve(h.alice.caller, { peer: 'alice' }), { code: 'bad_request' });
  await t.rejects(async () => h.service.reserve(h.alice.caller, { peer: 'Bad Name' }), { code: 'bad_name' });
  await t.rejects(h.service.create(h.alice.caller, { peer: 'bob', ttl: 10 }), { code: 'bad_request' });
  await t.rejects(
    h.service.create(h.admin, { peer: 'bob' }),
    { code: 'bad_request' },
    'the admin is not a key party',
  );
  const peer = await h.service.peer(h.alice.caller, 'bob');
  t.equal(peer.serial, h.bob.cert.serialHex);
  t.equal(peer.status, 'good');
  h.revocations.set(h.bob.cert.serialHex, { reason: 'keyCompromise', revokedAt: h.clock.now });
  await t.rejects(async () => h.service.peer(h.alice.caller, 'bob'), { code: 'peer_revoked' });
  await t.rejects(h.service.create(h.alice.caller, { peer: 'bob' }), { code: 'peer_revoked' });
  h.revocations.clear();
  h.store.setCertificateStatus(h.carol.cert.serialHex, 'revoked');
  await t.rejects(
    async () => h.service.peer(h.alice.caller, 'carol'),
    { code: 'peer_revoked' },
    'no active certificate, latest revoked',
  );
  h.clock.now = h.bob.cert.notAfter + 1;
  await t.rejects(
    async () => h.service.peer(h.alice.caller, 'bob'),
    { code: 'peer_unavailable' },
    'expired certificate',
  );
});

t.test('flow 2: KDC-generated key wrapped under the KEK, delivered when bob syncs', async (t) => {
  const h = await harness(t);
  const c = await h.service.create(h.alice.caller, { peer: 'bob' });
  t.equal(c.key.length, 32);
  const rec = h.store.getSymKey(c.serial)!;
  t.equal(rec.mode, 'kdc');
  t.equal(rec.kekVersion, 1);
  t.notOk(rec.wrappedKey!.includes(c.key), 'not plaintext at rest');
  t.ok(rec.digest!.equals(kdcKeyDigest(c.serial, c.key)));
  const pushed: Pushed[] = [];
  const sync = await h.service.sync(h.bob.caller, (type, body) => pushed.push({ type, body }));
  t.same(sync, { pushed: 1, remaining: 0 });
  const body = pushed[0]!.body;
  t.equal(pushed[0]!.type, 'key.delivered');
  t.ok((body.key as Buffer).equals(c.key), 'the key reaches bob (inside the record layer)');
  const acc = await acceptKdcKey(
    { name: 'bob', certSerial: h.bob.cert.serialHex, privateKey: h.bob.keys.privateKeyPem },
    body as never,
  );
  const v = await h.service.verify(h.bob.caller, {
    serial: c.serial,
    digest: acc.digest,
    signature: acc.signature,
  });
  t.equal(v.verdict, 'valid');
  // unacknowledged deliveries survive a restart; acknowledged ones are gone
  const again: Pushed[] = [];
  await h.restart().sync(h.bob.caller, (type, b) => again.push({ type, body: b }));
  t.equal(again.filter((p) => p.type === 'key.delivered').length, 1, 'redelivered until acknowledged');
  t.same(
    await h.service.ack(h.carol.caller, [body.d as number]),
    { acknowledged: 0 },
    "nobody acknowledges another's delivery",
  );
  t.same(await h.service.ack(h.bob.caller, [body.d as number]), { acknowledged: 1 });
  const after: Pushed[] = [];
  await h.restart().sync(h.bob.caller, (type, b) => after.push({ type, body: b }));
  t.same(
    after.map((p) => p.type),
    [],
    'bob has nothing left',
  );
  const alicePushes: Pushed[] = [];
  await h.service.sync(h.alice.caller, (type, b) => alicePushes.push({ type, body: b }));
  t.same(
    alicePushes.map((p) => p.type),
    ['key.verified'],
  );
});

t.test('tampering with the stored record gives mismatch', async (t) => {
  const h = await harness(t);
  h.online.set('bob', []);
  const { res, sent } = await e2e(h);
  const c = await h.service.create(h.alice.caller, { peer: 'bob' });
  const db = new Database(join(h.dir, 'kds.sqlite'));
  t.teardown(() => db.close());
  t.equal(
    (await h.service.verify(h.alice.caller, { serial: res.serial, digest: sent.digest })).verdict,
    'valid',
  );
  db.prepare('UPDATE sym_keys SET ciphertext = ? WHERE serial = ?').run(Buffer.alloc(60, 1), res.serial);
  t.equal(
    (await h.service.verify(h.alice.caller, { serial: res.serial, digest: sent.digest })).verdict,
    'mismatch',
    'ciphertext changed',
  );
  db.prepare('UPDATE sym_keys SET ciphertext = ?, digest = ? WHERE serial = ?').run(
    sent.deposit.ciphertext,
    Buffer.alloc(32, 2),
    res.serial,
  );
  t.equal(
    (await h.service.verify(h.alice.caller, { serial: res.serial, digest: sent.digest })).verdict,
    'mismatch',
    'digest changed',
  );
  const kdcDigest = kdcKeyDigest(c.serial, c.key);
  t.equal((await h.service.verify(h.alice.caller, { serial: c.serial, digest: kdcDigest })).verdict, 'valid');
  const wrapped = h.store.getSymKey(c.serial)!.wrappedKey!;
  const bad = Buffer.from(wrapped);
  bad[30]! ^= 1;
  db.prepare('UPDATE sym_keys SET wrapped_key = ? WHERE serial = ?').run(bad, c.serial);
  t.equal(
    (await h.service.verify(h.alice.caller, { serial: c.serial, digest: kdcDigest })).verdict,
    'mismatch',
    'wrapped key changed',
  );
});

t.test('revocation by either party or the admin: durable, notices to both, no oracle', async (t) => {
  const h = await harness(t);
  const a = await h.service.create(h.alice.caller, { peer: 'bob' });
  const b = await h.service.create(h.alice.caller, { peer: 'bob' });
  const c = await h.service.create(h.bob.caller, { peer: 'alice' });
  h.online.set('alice', []);
  h.online.set('bob', []);
  await t.rejects(
    async () => h.service.revoke(h.carol.caller, { serial: a.serial, reason: 'keyCompromise' }),
    {
      code: 'not_found',
    },
  );
  await t.rejects(async () => h.service.get(h.carol.caller, a.serial), { code: 'not_found' });
  await t.rejects(
    async () => h.service.get(h.carol.caller, newKeySerial()),
    { code: 'not_found' },
    'same answer for an unknown serial',
  );
  await t.rejects(
    async () => h.service.revoke(h.alice.caller, { serial: a.serial, reason: 'certificateRevoked' }),
    { code: 'bad_reason' },
    'reserved for the cascade',
  );
  // A symmetric key is revoked for good: a certificate-only reason (a temporary hold, a CA's or an
  // attribute authority's compromise) is refused, not recorded.
  for (const reason of ['certificateHold', 'cACompromise', 'aACompromise']) {
    await t.rejects(
      async () => h.service.revoke(h.alice.caller, { serial: a.serial, reason }),
      { code: 'bad_reason' },
      `${reason} is not a reason for a key`,
    );
  }
  const r1 = await h.service.revoke(h.alice.caller, { serial: a.serial, reason: 'keyCompromise' });
  t.equal(r1.status, 'revoked');
  t.ok(bodyOf(h.online.get('alice'), 'key.revoked', a.serial));
  t.equal(bodyOf(h.online.get('bob'), 'key.revoked', a.serial)!.reason, 'keyCompromise');
  t.equal(
    (await h.service.revoke(h.bob.caller, { serial: a.serial, reason: 'unspecified' })).status,
    'already_revoked',
  );
  t.equal(
    (await h.service.revoke(h.bob.caller, { serial: b.serial, reason: 'superseded' })).status,
    'revoked',
    'the receiver may revoke',
  );
  t.equal(
    (await h.service.revoke(h.admin, { serial: c.serial, reason: 'cessationOfOperation' })).status,
    'revoked',
    'the admin may revoke',
  );
  t.equal((await h.restart().get(h.alice.caller, a.serial)).state, 'revoked', 'durable across a restart');
  t.equal(
    (await h.service.verify(h.bob.caller, { serial: a.serial, digest: kdcKeyDigest(a.serial, a.key) }))
      .verdict,
    'revoked',
  );
  await t.rejects(
    async () =>
      await h.service.sendMessage(h.alice.caller, {
        to: 'bob',
        serial: a.serial,
        seq: 1,
        nonce: Buffer.alloc(12),
        ciphertext: Buffer.alloc(20),
      }),
    { code: 'key_revoked' },
  );
  const revoked = await h.service.adminList(h.admin, { revoked: true });
  t.same(
    revoked.map((k) => [k.serial, k.reason]).sort(),
    [
      [a.serial, 'keyCompromise'],
      [b.serial, 'superseded'],
      [c.serial, 'cessationOfOperation'],
    ].sort(),
  );
  t.ok(revoked.every((k) => typeof k.revokedAt === 'number'));
  t.equal((await h.service.adminList(h.admin)).length, 3);
});

t.test('certificate revocation cascades to every key of that identity', async (t) => {
  const h = await harness(t);
  const ab = await h.service.create(h.alice.caller, { peer: 'bob' });
  const ba = await h.service.create(h.bob.caller, { peer: 'alice' });
  const ac = await h.service.create(h.alice.caller, { peer: 'carol' });
  await uploadPrekeys(h, h.bob, 2);
  h.online.set('alice', []);
  t.equal(await h.service.onCertificateRevoked(h.bob.cert.serialHex, 'bob'), 2);
  for (const s of [ab.serial, ba.serial]) {
    const k = await h.service.get(h.alice.caller, s);
    t.equal(k.state, 'revoked');
    t.equal(k.reason, 'certificateRevoked');
    t.ok(bodyOf(h.online.get('alice'), 'key.revoked', s), 'the other party is told at once');
  }
  t.equal((await h.service.get(h.alice.caller, ac.serial)).state, 'active', 'keys of others untouched');
  t.equal(h.store.countPrekeys('bob', h.bob.cert.serialHex), 0, "bob's prekeys are dropped");
  // a revocation committed elsewhere (e.g. `kds cert revoke` while the KDC ran) is applied on next use
  h.revocations.set(h.carol.cert.serialHex, { reason: 'keyCompromise', revokedAt: h.clock.now });
  const v = await h.service.verify(h.alice.caller, {
    serial: ac.serial,
    digest: kdcKeyDigest(ac.serial, ac.key),
  });
  t.equal(v.verdict, 'revoked');
  t.equal(v.reason, 'certificateRevoked');
});

t.test('expiry, rotation and messages', async (t) => {
  const h = await harness(t);
  const k = await h.service.create(h.alice.caller, { peer: 'bob', ttl: 60_000 });
  h.online.set('bob', []);
  const sealed = sealMessage(
    k.key,
    { serial: k.serial, from: 'alice', to: 'bob', seq: 1 },
    Buffer.from('hello'),
  );
  const sent = await h.service.sendMessage(h.alice.caller, { to: 'bob', serial: k.serial, ...sealed });
  t.equal(sent.delivered, 1);
  const msg = bodyOf(h.online.get('bob'), 'msg', k.serial)!;
  t.same([msg.from, msg.to, msg.seq], ['alice', 'bob', 1], 'seq relayed as is');
  await t.rejects(
    async () => h.service.sendMessage(h.alice.caller, { to: 'bob', serial: k.serial, ...sealed, seq: 0 }),
    {
      code: 'malformed',
    },
  );
  t.ok((msg.ciphertext as Buffer).equals(sealed.ciphertext), 'relayed as is');
  await t.rejects(
    async () => h.service.sendMessage(h.alice.caller, { to: 'carol', serial: k.serial, ...sealed }),
    {
      code: 'bad_request',
    },
  );
  await t.rejects(
    async () => h.service.sendMessage(h.carol.caller, { to: 'bob', serial: k.serial, ...sealed }),
    {
      code: 'not_found',
    },
  );
  // rotation: a new serial, the old one superseded, both told
  h.online.set('alice', []);
  const r = await h.service.create(h.alice.caller, { peer: 'bob', replaces: k.serial });
  t.equal((await h.service.get(h.bob.caller, k.serial)).state, 'superseded');
  t.equal((await h.service.get(h.bob.caller, k.serial)).supersededBy, r.serial);
  t.equal(bodyOf(h.online.get('bob'), 'key.revoked', k.serial)!.state, 'superseded');
  t.equal((await h.service.get(h.bob.caller, r.serial)).replaces, k.serial);
  await t.rejects(
    h.service.create(h.alice.caller, { peer: 'bob', replaces: k.serial }),
    { code: 'key_revoked' },
    'cannot rotate twice',
  );
  await t.rejects(
    h.service.create(h.alice.caller, { peer: 'carol', replaces: r.serial }),
    { code: 'not_found' },
    'rotation keeps the peer',
  );
  t.equal(
    (await h.service.verify(h.bob.caller, { serial: k.serial, digest: kdcKeyDigest(k.serial, k.key) }))
      .verdict,
    'revoked',
  );
  h.clock.now += 25 * 3600 * 1000;
  t.equal(
    (await h.service.verify(h.bob.caller, { serial: r.serial, digest: kdcKeyDigest(r.serial, r.key) }))
      .verdict,
    'expired',
  );
  await t.rejects(
    async () => h.service.sendMessage(h.alice.caller, { to: 'bob', serial: r.serial, ...sealed }),
    {
      code: 'key_expired',
    },
  );
  t.equal((await h.service.list(h.alice.caller)).find((x) => x.serial === r.serial)!.state, 'expired');
});

t.test('storage bounds: prekey stock', async (t) => {
  const h = await harness(t);
  const p = await generatePrekey({ name: 'bob', certSerial: h.bob.cert.serialHex }, h.bob.keys.privateKeyPem);
  const many = Array.from({ length: 101 }, (_, i) => ({
    prekeyId: i.toString(16).padStart(16, '0'),
    publicKey: p.publicKey,
    signature: p.signature,
  }));
  await t.rejects(async () => h.service.putPrekeys(h.bob.caller, many), { code: 'rate_limited' });
  t.equal(h.store.countPrekeys('bob', h.bob.cert.serialHex), 0, 'nothing stored');
  t.same(await h.service.putPrekeys(h.bob.caller, many.slice(0, 100)), { stock: 100, wanted: 0 });
});

t.test('key.prekeys status: held = stock + open reservations + queued e2e deliveries, bounded', async (t) => {
  const h = await harness(t);
  const { made, r } = await uploadPrekeys(h, h.bob, 4);
  t.same(r, { stock: 4, wanted: 6 }, 'an upload reply carries no held list');
  const ids = made.map((p) => p.id);
  const held = async (caller = h.bob.caller): Promise<string[] | undefined> =>
    (await h.service.putPrekeys(caller, [], { listHeld: true })).held?.slice().sort();
  t.same(await held(), [...ids].sort(), 'the stock');
  t.same(await h.service.putPrekeys(h.bob.caller, []), { stock: 4, wanted: 6 }, 'listed only when asked');
  const open = await h.service.reserve(h.alice.caller, { peer: 'bob' });
  const used = await h.service.reserve(h.alice.caller, { peer: 'bob' });
  const sent = await runSenderExchange(
    { name: 'alice', certSerial: h.alice.cert.serialHex, privateKey: h.alice.keys.privateKeyPem },
    { ...used, prekey: used.prekey },
    { ca: h.ca, now: h.clock.now },
  );
  await h.service.deposit(h.alice.caller, sent.deposit);
  t.equal(h.store.countPrekeys('bob', h.bob.cert.serialHex), 2, 'two prekeys left the stock');
  t.same(await held(), [...ids].sort(), 'an open reservation and a queued delivery still hold theirs');
  t.same(await held(h.alice.caller), [], "nothing of bob's is listed to alice");

  h.clock.now += 6 * 60 * 1000; // the open reservation expires un-deposited
  t.notOk((await held())!.includes(open.prekey.id), 'an expired reservation holds nothing');
  t.ok((await held())!.includes(used.prekey.id), 'a queued delivery holds its prekey whatever its age');
  const queued = h.store.listDeliveries('bob').map((d) => d.id);
  await h.service.ack(h.bob.caller, queued);
  t.notOk((await held())!.includes(used.prekey.id), 'an acknowledged delivery holds nothing');
  t.equal((await held())!.length, 2, 'the stock remains');

  // Bound: more than MAX_HELD_PREKEYS held ids and the list is left out (the client deletes nothing).
  for (let i = 0; i <= MAX_HELD_PREKEYS; i++) {
    h.store.insertSymKey({
      serial: newKeySerial(),
      mode: 'e2e',
      owner: 'alice',
      ownerCert: h.alice.cert.serialHex,
      peer: 'bob',
      peerCert: h.bob.cert.serialHex,
      createdAt: h.clock.now,
      expiresAt: h.clock.now + 60_000,
      state: 'reserved',
      prekeyId: i.toString(16).padStart(16, '0'),
      prekeyPublic: Buffer.alloc(32),
    });
  }
  const big = await h.service.putPrekeys(h.bob.caller, [], { listHeld: true });
  t.equal(big.held, undefined, `more than ${MAX_HELD_PREKEYS}: no list`);
  t.equal(big.wanted, 8, 'the status itself still answers (two in stock)');
  t.equal(
    h.store.heldPrekeyIds('bob', h.bob.cert.serialHex, h.clock.now - 1, 5).length,
    5,
    'the store query honours its limit',
  );

  // A renewal: the status query under the new certificate drops the old stock, so nothing is held.
  h.store.setCertificateStatus(h.bob.cert.serialHex, 'superseded');
  h.store.insertIssuedCertificate({
    serialHex: 'abcdef01',
    name: 'bob',
    role: 'client',
    notBefore: h.bob.cert.notBefore,
    notAfter: h.bob.cert.notAfter,
    issuedAt: h.clock.now,
    pem: 'renewed (not parsed by this test)',
    fingerprint256: 'abcdef01',
  });
  const renewed = { ...h.bob.caller, serialHex: 'abcdef01' };
  h.clock.now += 6 * 60 * 1000; // the reservations of the bound check above expire
  t.same(await held(renewed), [], 'old-certificate stock is not held');
});

t.test('a reserved serial is no key: not listed, not found, and never summarized', async (t) => {
  const h = await harness(t);
  await uploadPrekeys(h, h.bob, 1);
  const res = await h.service.reserve(h.alice.caller, { peer: 'bob' });
  t.equal(h.store.getSymKey(res.serial)!.state, 'reserved');
  t.same(await h.service.list(h.alice.caller), [], 'not in the owner listing');
  t.same(await h.service.list(h.bob.caller), [], 'nor in the peer listing');
  await t.rejects(h.service.get(h.alice.caller, res.serial), { code: 'not_found' });
  t.same(await h.service.verify(h.alice.caller, { serial: res.serial, digest: Buffer.alloc(32) }), {
    serial: res.serial,
    verdict: 'not_found',
    peerVerified: false,
  });
  // Had one slipped through, its summary would name a state the wire's enum lacks: a bug, said so.
  t.throws(() => issuedState(h.store.getSymKey(res.serial)!), {
    code: 'internal',
    message: `key ${res.serial} is still reserved`,
  });
  const sent = await e2e(h);
  t.equal(issuedState(h.store.getSymKey(sent.res.serial)!), 'active');
});

t.test('listings of one name run one at a time; different names do not wait for each other', async (t) => {
  const h = await harness(t);
  const running = new Map<string, number>();
  const most = new Map<string, number>();
  let overall = 0;
  let mostOverall = 0;
  // The harness's store, with a listing slow enough for the others to pile up behind it.
  const store = new Proxy(h.asyncStore, {
    get(target, prop) {
      const v = Reflect.get(target, prop) as unknown;
      if (prop !== 'listSymKeys') return typeof v === 'function' ? v.bind(target) : v;
      return async (filter?: { party?: string }) => {
        const party = filter?.party ?? 'admin';
        running.set(party, (running.get(party) ?? 0) + 1);
        most.set(party, Math.max(most.get(party) ?? 0, running.get(party)!));
        mostOverall = Math.max(mostOverall, ++overall);
        await new Promise((r) => setTimeout(r, 20));
        try {
          return await target.listSymKeys(filter);
        } finally {
          running.set(party, running.get(party)! - 1);
          overall -= 1;
        }
      };
    },
  });
  const service = new KeyService({
    store,
    ca: { revocationOf: () => undefined },
    sessions: { byName: () => [] },
    dataDir: h.dir,
    passphrase: () => 'test-passphrase',
  });
  await Promise.all([
    ...Array.from({ length: 8 }, () => service.list(h.alice.caller)),
    ...Array.from({ length: 3 }, () => service.list(h.bob.caller)),
    service.adminList(h.admin),
  ]);
  t.equal(
    most.get('alice'),
    1,
    "alice's eight listings ran one after another (32 in flight once froze the KDC)",
  );
  t.equal(most.get('bob'), 1, "bob's three too");
  t.equal(mostOverall, 3, 'while alice, bob and the admin each had one running at the same time');
});

t.test('a revoked identity with no active certificate left: what was queued for it is dropped', async (t) => {
  const h = await harness(t);
  const k = await h.service.create(h.alice.caller, { peer: 'bob' }); // bob offline: key.delivered queued
  for (let seq = 1; seq <= 3; seq++) {
    const sealed = sealMessage(k.key, { serial: k.serial, from: 'alice', to: 'bob', seq }, Buffer.from('hi'));
    await h.service.sendMessage(h.alice.caller, { to: 'bob', serial: k.serial, ...sealed });
  }
  await h.service.create(h.carol.caller, { peer: 'alice' }); // something queued for alice too
  t.equal(h.store.countDeliveries('bob'), 4, "bob's queue: the key and three messages");
  const aliceBefore = h.store.countDeliveries('alice');

  // An older certificate of bob revoked while his current one is active: his queue is his.
  t.equal(await h.service.onCertificateRevoked('0badc0de', 'bob'), 1, 'the keys of the name are revoked');
  t.ok(
    h.store.countDeliveries('bob') >= 4,
    'nothing of his queue dropped while he has an active certificate',
  );

  // His active certificate revoked (the CA commits the status before the cascade runs).
  h.store.setCertificateStatus(h.bob.cert.serialHex, 'revoked');
  await h.service.onCertificateRevoked(h.bob.cert.serialHex, 'bob');
  t.equal(h.store.countDeliveries('bob'), 0, "bob's queue is dropped: nothing in it can reach anyone");
  t.ok(h.store.countDeliveries('alice') >= aliceBefore, "alice's queue is untouched");
  const audit = h.store.listAudit({ action: 'key.revoke.cascade' }).at(-1);
  t.equal(audit?.detail.name, 'bob');
  t.ok((audit?.detail.dropped as number) >= 4, 'the audit entry says how many were dropped');
});
