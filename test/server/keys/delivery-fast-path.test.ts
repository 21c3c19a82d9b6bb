// The key service's fast paths (bench/keys.ts): live pushes built from the data in hand must be
// exactly what the durable queue would rebuild from the store; key.verify's piggybacked `ack` must keep
// the queue's semantics (a notice survives until the receiver acknowledges it, only its own); and the
// group-committed reserve/deposit must behave like their one-transaction forms.
import t from 'tap';
import { acceptKdcKey, runReceiverExchange, runSenderExchange } from '../../../shared/keys/exchange.js';
import { generatePrekey } from '../../../shared/keys/prekey.js';
import { harness, type Harness, type Pushed } from './fixtures.js';

t.setTimeout(120_000);

const bobId = (h: Harness) => ({
  name: 'bob',
  certSerial: h.bob.cert.serialHex,
  privateKey: h.bob.keys.privateKeyPem,
});

async function synced(h: Harness, who: Harness['bob']): Promise<Pushed[]> {
  const out: Pushed[] = [];
  await h.restart().sync(who.caller, (type, body) => out.push({ type, body }));
  return out;
}

t.test(
  'kdc flow: the live push equals the queued one; verify {ack} forgets it in the same commit',
  async (t) => {
    const h = await harness(t);
    h.online.set('bob', []);
    h.online.set('alice', []);
    const c = await h.service.create(h.alice.caller, { peer: 'bob' });
    const live = h.online.get('bob')!;
    t.equal(live.length, 1);
    t.equal(live[0]!.type, 'key.delivered');
    // A restarted service rebuilds the same notice from the store (record re-read, key unwrapped).
    const queued = await synced(h, h.bob);
    t.same(
      queued.map((p) => p.type),
      ['key.delivered'],
    );
    t.strictSame(live[0]!.body, queued[0]!.body, 'built from the data in hand = rebuilt from the store');
    t.ok((live[0]!.body.key as Buffer).equals(c.key));

    // Bob "disconnects" between push and verify: nothing acknowledged, the notice stays queued.
    t.equal(h.store.countDeliveries('bob'), 1);
    const acc = await acceptKdcKey(bobId(h), live[0]!.body as never);
    const d = live[0]!.body.d as number;
    // Carol cannot acknowledge bob's notice through her own verify call.
    const cv = await h.service.verify(h.carol.caller, { serial: c.serial, digest: acc.digest, ack: [d] });
    t.equal(cv.verdict, 'not_found');
    t.equal(h.store.countDeliveries('bob'), 1, "nobody acknowledges another's delivery");

    const v = await h.service.verify(h.bob.caller, {
      serial: c.serial,
      digest: acc.digest,
      signature: acc.signature,
      ack: [d],
    });
    t.equal(v.verdict, 'valid');
    t.equal(v.peerVerified, true);
    t.equal(h.store.countDeliveries('bob'), 0, 'acknowledged inside key.verify');
    t.same(await synced(h, h.bob), [], 'bob has nothing left after a restart');

    // Alice's key.verified: live push equals the queued one.
    const aliceLive = h.online.get('alice')!.filter((p) => p.type === 'key.verified');
    t.equal(aliceLive.length, 1);
    const aliceQueued = await synced(h, h.alice);
    t.strictSame(aliceLive[0]!.body, aliceQueued[0]!.body);
    t.equal(h.store.getSymKey(c.serial)!.peerVerifiedAt, aliceLive[0]!.body.verifiedAt);
  },
);

t.test('verify {ack} acknowledges whatever the verdict, and only the caller’s ids', async (t) => {
  const h = await harness(t);
  const c = await h.service.create(h.alice.caller, { peer: 'bob' });
  const queued = await synced(h, h.bob);
  const d = queued[0]!.body.d as number;
  // A wrong digest: mismatch, no peer verification, but the notice is acknowledged (bob applied it).
  const v = await h.service.verify(h.bob.caller, { serial: c.serial, digest: Buffer.alloc(32), ack: [d] });
  t.equal(v.verdict, 'mismatch');
  t.equal(v.peerVerified, false);
  t.equal(h.store.countDeliveries('bob'), 0);
  t.equal(h.store.getSymKey(c.serial)!.peerVerifiedAt, null);
  t.equal(h.store.countDeliveries('alice'), 0, 'no key.verified for a mismatch');
});

t.test('e2e flow through the group commit: reserve/deposit, live push = queued', async (t) => {
  const h = await harness(t);
  const owner = { name: 'bob', certSerial: h.bob.cert.serialHex };
  const pk = await generatePrekey(owner, h.bob.keys.privateKeyPem);
  await h.service.putPrekeys(h.bob.caller, [
    { prekeyId: pk.id, publicKey: pk.publicKey, signature: pk.signature },
  ]);
  h.online.set('bob', []);
  const res = await h.service.reserve(h.alice.caller, { peer: 'bob' });
  t.equal(h.store.getSymKey(res.serial)!.state, 'reserved', 'committed before the answer');
  t.ok(res.peerCert.equals(h.bob.cert.der));
  await t.rejects(h.service.reserve(h.alice.caller, { peer: 'bob' }), { code: 'peer_unavailable' });
  await t.rejects(h.service.reserve(h.alice.caller, { peer: 'alice' }), { code: 'bad_request' });
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
  await t.rejects(h.service.deposit(h.alice.caller, { ...sent.deposit, signature: Buffer.alloc(256, 1) }), {
    code: 'bad_signature',
  });
  t.equal(h.store.getSymKey(res.serial)!.state, 'reserved');
  await t.rejects(h.service.deposit(h.carol.caller, sent.deposit), { code: 'not_found' });
  const dep = await h.service.deposit(h.alice.caller, sent.deposit);
  t.equal(h.store.getSymKey(res.serial)!.state, 'active', 'committed before the answer');
  await t.rejects(h.service.deposit(h.alice.caller, sent.deposit), { code: 'not_found' });
  const pushes = h.online.get('bob')!;
  t.same(
    pushes.filter((p) => p.type === 'key.prekeys.low').map((p) => p.body),
    [{ stock: 0, wanted: 10 }],
    'the reservation that took the last one-time prekey told bob to top up',
  );
  const live = pushes.filter((p) => p.type === 'key.delivered');
  t.equal(live.length, 1);
  const queued = await synced(h, h.bob);
  t.strictSame(live[0]!.body, queued[0]!.body, 'built from the deposit in hand = rebuilt from the store');
  const got = await runReceiverExchange(
    bobId(h),
    live[0]!.body as never,
    { id: pk.id, certSerial: h.bob.cert.serialHex, publicKey: pk.publicKey, privateKey: pk.privateKey },
    { ca: h.ca, now: h.clock.now },
  );
  t.ok(got.digest.equals(dep.digest));
  const v = await h.service.verify(h.bob.caller, {
    serial: res.serial,
    digest: got.digest,
    signature: got.signature,
    ack: [live[0]!.body.d as number],
  });
  t.equal(v.verdict, 'valid');
  t.equal(h.store.countDeliveries('bob'), 0);
});

t.test('a lookup applies its own key’s expiry', async (t) => {
  const h = await harness(t);
  const c = await h.service.create(h.alice.caller, { peer: 'bob', ttl: 60_000 });
  const queued = await synced(h, h.bob);
  const acc = await acceptKdcKey(bobId(h), queued[0]!.body as never);
  h.clock.now += 60_000;
  const v = await h.service.verify(h.bob.caller, { serial: c.serial, digest: acc.digest });
  t.equal(v.verdict, 'expired');
  t.equal(h.store.getSymKey(c.serial)!.state, 'expired', 'stored as expired');
});
