// Hostile enrolled peers against the key service (docs/security.md "Hostile peers"): a client that floods
// another's delivery queue, one that drains another's one-time prekeys, and writes made on a session
// whose certificate another process has just revoked. Service level, on a real sqlite store; the clock
// is the harness's (it only moves when a test moves it).
import t from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { generatePrekey } from '../../../shared/keys/prekey.js';
import { acceptKdcKey, runSenderExchange } from '../../../shared/keys/exchange.js';
import { sealMessage } from '../../../shared/keys/message.js';
import { openStore } from '../../../server/store/store.js';
import { harness, type Client, type Harness } from './fixtures.js';

t.setTimeout(240_000);

async function uploadPrekeys(h: Harness, who: Client, n: number) {
  const owner = { name: who.name, certSerial: who.cert.serialHex };
  const made = await Promise.all(
    Array.from({ length: n }, () => generatePrekey(owner, who.keys.privateKeyPem)),
  );
  await h.service.putPrekeys(
    who.caller,
    made.map((p) => ({ prekeyId: p.id, publicKey: p.publicKey, signature: p.signature })),
  );
  return made;
}

function message(key: Buffer, serial: string, from: string, to: string, seq: number) {
  const sealed = sealMessage(key, { serial, from, to, seq }, Buffer.from(`hello ${seq}`));
  return { to, serial, seq, nonce: sealed.nonce, ciphertext: sealed.ciphertext };
}

async function drain(h: Harness, who: Client): Promise<{ type: string; body: Record<string, unknown> }[]> {
  const got: { type: string; body: Record<string, unknown> }[] = [];
  for (;;) {
    const batch: { type: string; body: Record<string, unknown> }[] = [];
    const r = await h.service.sync(who.caller, (type, body) => batch.push({ type, body }));
    got.push(...batch);
    if (batch.length > 0)
      await h.service.ack(
        who.caller,
        batch.map((p) => Number(p.body.d)),
      );
    if (r.remaining === 0 || batch.length === 0) return got;
  }
}

t.test(
  'a key.create flood to an offline bob is bounded; alice and carol can still message him; nothing accepted is dropped',
  async (t) => {
    const h = await harness(t);
    // Honest keys first, each sender's own: alice's and carol's messages to bob ride on them.
    const aliceKey = await h.service.create(h.alice.caller, { peer: 'bob' });
    const carolKey = await h.service.create(h.carol.caller, { peer: 'bob' });
    // The flood: as fast as the service takes it, in concurrent batches (one group commit each).
    const accepted: string[] = [aliceKey.serial];
    const refused = new Map<string, number>();
    for (let round = 0; round < 20 && refused.size === 0; round++) {
      const batch = await Promise.allSettled(
        Array.from({ length: 500 }, () => h.service.create(h.alice.caller, { peer: 'bob' })),
      );
      for (const r of batch) {
        if (r.status === 'fulfilled') accepted.push(r.value.serial);
        else {
          const code = String((r.reason as { code?: unknown }).code);
          refused.set(code, (refused.get(code) ?? 0) + 1);
        }
      }
    }
    t.ok(refused.size > 0, `the flood was refused at some point (${accepted.length} keys accepted)`);
    for (const code of refused.keys()) {
      t.ok(['rate_limited', 'quota_exceeded'].includes(code), `refused with a stable code: ${code}`);
    }
    t.ok(accepted.length <= 300, `at most a few hundred of alice's keys queued for bob: ${accepted.length}`);
    t.ok(h.store.countDeliveries('bob') <= 600, `bob's queue stays small: ${h.store.countDeliveries('bob')}`);

    // The honest traffic still goes through: alice's own message, carol's message and carol's new key.
    const m1 = await h.service.sendMessage(
      h.alice.caller,
      message(aliceKey.key, aliceKey.serial, 'alice', 'bob', 1),
    );
    t.equal(m1.queued, true, "alice's message to bob is accepted");
    const m2 = await h.service.sendMessage(
      h.carol.caller,
      message(carolKey.key, carolKey.serial, 'carol', 'bob', 1),
    );
    t.equal(m2.queued, true, "carol's message to bob is accepted");
    const carolSecond = await h.service.create(h.carol.caller, { peer: 'bob' });

    // Bob comes back: every key accepted for him and both messages arrive; nothing accepted was dropped.
    const got = await drain(h, h.bob);
    const delivered = new Set(
      got.filter((p) => p.type === 'key.delivered').map((p) => String(p.body.serial)),
    );
    for (const s of [...accepted, carolKey.serial, carolSecond.serial]) {
      if (!delivered.has(s)) t.fail(`accepted key ${s} was not delivered`);
    }
    t.equal(delivered.size, accepted.length + 2, 'every accepted key delivered once');
    t.same(
      got
        .filter((p) => p.type === 'msg')
        .map((p) => p.body.from)
        .sort(),
      ['alice', 'carol'],
      'both messages delivered',
    );
  },
);

t.test("eve's reservations cannot drain bob's prekeys: alice can still reserve", async (t) => {
  const h = await harness(t);
  await uploadPrekeys(h, h.bob, 10);
  const eve = h.carol;
  const codes: string[] = [];
  for (let i = 0; i < 10; i++) {
    try {
      await h.service.reserve(eve.caller, { peer: 'bob' });
      codes.push('ok');
    } catch (err) {
      codes.push(String((err as { code?: unknown }).code));
    }
  }
  t.ok(codes.includes('quota_exceeded'), `eve's open reservations are bounded: ${codes.join(' ')}`);
  const res = await h.service.reserve(h.alice.caller, { peer: 'bob' });
  const sent = await runSenderExchange(
    { name: 'alice', certSerial: h.alice.cert.serialHex, privateKey: h.alice.keys.privateKeyPem },
    { serial: res.serial, expiresAt: res.expiresAt, peer: 'bob', peerCert: res.peerCert, prekey: res.prekey },
    { ca: h.ca, now: h.clock.now },
  );
  t.equal(
    (await h.service.deposit(h.alice.caller, sent.deposit)).serial,
    res.serial,
    "alice's exchange completes",
  );
});

/** Revoke `who`'s certificate through another connection to the same database (`kds cert revoke`). */
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

t.test(
  'a certificate revoked by another process: the writes of its live session are refused inside their transaction',
  async (t) => {
    const h = await harness(t);
    await uploadPrekeys(h, h.bob, 3);
    const before = await h.service.create(h.alice.caller, { peer: 'bob' });
    const reserved = await h.service.reserve(h.alice.caller, { peer: 'bob' });
    const sent = await runSenderExchange(
      { name: 'alice', certSerial: h.alice.cert.serialHex, privateKey: h.alice.keys.privateKeyPem },
      {
        serial: reserved.serial,
        expiresAt: reserved.expiresAt,
        peer: 'bob',
        peerCert: reserved.peerCert,
        prekey: reserved.prekey,
      },
      { ca: h.ca, now: h.clock.now },
    );
    // The KDC's in-memory revocation list (h.revocations) has not caught up: only the store knows.
    revokeElsewhere(h, h.alice);
    await t.rejects(
      h.service.create(h.alice.caller, { peer: 'bob' }),
      { code: 'cert_revoked' },
      'key.create',
    );
    await t.rejects(
      async () => h.service.reserve(h.alice.caller, { peer: 'bob' }),
      { code: 'cert_revoked' },
      'key.reserve',
    );
    await t.rejects(
      async () => h.service.deposit(h.alice.caller, sent.deposit),
      { code: 'cert_revoked' },
      'key.deposit',
    );
    await t.rejects(
      async () => h.service.putPrekeys(h.alice.caller, []),
      { code: 'cert_revoked' },
      'key.prekeys',
    );
    await t.rejects(
      async () =>
        h.service.sendMessage(h.alice.caller, message(before.key, before.serial, 'alice', 'bob', 1)),
      { code: 'cert_revoked' },
      'msg.send',
    );
    await t.rejects(
      async () => h.service.revoke(h.alice.caller, { serial: before.serial, reason: 'keyCompromise' }),
      { code: 'cert_revoked' },
      'key.revoke',
    );
    t.same(
      (await h.service.list(h.bob.caller)).map((k) => k.serial),
      [before.serial],
      'no key was created after the revocation',
    );
    t.equal(h.store.getSymKey(reserved.serial)?.state, 'reserved', 'the deposit stored nothing');
  },
);

t.test("the receiver's stored verdict, acknowledgements and the admin's writes re-check too", async (t) => {
  const h = await harness(t);
  const k = await h.service.create(h.alice.caller, { peer: 'bob' });
  const pushes: { type: string; body: Record<string, unknown> }[] = [];
  await h.service.sync(h.bob.caller, (type, body) => pushes.push({ type, body }));
  const got = await acceptKdcKey(
    { name: 'bob', certSerial: h.bob.cert.serialHex, privateKey: h.bob.keys.privateKeyPem },
    pushes[0]!.body as never,
  );
  const d = Number(pushes[0]!.body.d);
  revokeElsewhere(h, h.bob);
  await t.rejects(
    h.service.verify(h.bob.caller, { serial: k.serial, digest: got.digest, signature: got.signature }),
    { code: 'cert_revoked' },
    'key.verify with a signature: the verdict is not stored',
  );
  t.equal(h.store.getSymKey(k.serial)!.peerVerifiedAt, null, 'not marked verified');
  t.same(h.store.listDeliveries('alice'), [], 'no key.verified notice for alice');
  await t.rejects(
    async () => h.service.ack(h.bob.caller, [d]),
    { code: 'cert_revoked' },
    'key.ack (group commit)',
  );
  t.equal(h.store.countDeliveries('bob'), 1, 'nothing acknowledged');

  // The admin: a revoked admin certificate revokes no key.
  const other = openStore(h.dir);
  other.transaction(() => {
    other.insertRevocation({ serialHex: h.admin.serialHex, revokedAt: h.clock.now, reason: 'keyCompromise' });
    other.setCertificateStatus(h.admin.serialHex, 'revoked');
  });
  other.close();
  await t.rejects(async () => h.service.revoke(h.admin, { serial: k.serial, reason: 'keyCompromise' }), {
    code: 'cert_revoked',
  });
  t.equal(h.store.getSymKey(k.serial)!.state, 'active', 'admin.key.revoke changed nothing');
});

t.test('a certificate that expired mid-session: its writes are refused (cert_expired)', async (t) => {
  const h = await harness(t);
  await uploadPrekeys(h, h.bob, 3);
  // Alice's certificate ends one second from now (the store's row is what the KDC issued); bob's stays valid.
  const db = new Database(join(h.dir, 'kds.sqlite'));
  db.prepare('UPDATE certificates SET not_after = ? WHERE serial = ?').run(
    Math.floor(h.clock.now / 1000) * 1000 + 1000,
    h.alice.cert.serialHex,
  );
  db.close();
  t.ok(await h.service.create(h.alice.caller, { peer: 'bob' }), 'still valid: accepted');
  h.clock.now += 2000;
  await t.rejects(h.service.create(h.alice.caller, { peer: 'bob' }), { code: 'cert_expired' });
  await t.rejects(async () => h.service.reserve(h.alice.caller, { peer: 'bob' }), { code: 'cert_expired' });
});

t.test(
  'last-resort prekey: only when the one-time stock is empty, never consumed, replaceable, held',
  async (t) => {
    const h = await harness(t);
    h.online.set('bob', []);
    const owner = { name: 'bob', certSerial: h.bob.cert.serialHex };
    const [oneTime] = await uploadPrekeys(h, h.bob, 1);
    t.equal((await h.service.putPrekeys(h.bob.caller, [])).lastResort, undefined, 'none held yet');
    const last = await generatePrekey(owner, h.bob.keys.privateKeyPem, { lastResort: true });
    const wire = { prekeyId: last.id, publicKey: last.publicKey, signature: last.signature };
    t.same(await h.service.putPrekeys(h.bob.caller, [], { lastResort: wire }), {
      stock: 1,
      wanted: 9,
      lastResort: last.id,
    });
    await t.rejects(
      async () => h.service.putPrekeys(h.bob.caller, [{ ...wire }], { lastResort: wire }),
      { code: 'bad_request' },
      'one id for a one-time and the last-resort prekey',
    );

    const first = await h.service.reserve(h.alice.caller, { peer: 'bob' });
    t.equal(first.prekey.id, oneTime!.id, 'the one-time prekey first');
    t.equal(first.prekey.lastResort, undefined);
    const low = h.online.get('bob')!.filter((p) => p.type === 'key.prekeys.low');
    t.same(
      low.map((p) => p.body),
      [{ stock: 0, wanted: 10 }],
      'bob is told his stock ran out',
    );

    const serials: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await h.service.reserve(i === 2 ? h.carol.caller : h.alice.caller, { peer: 'bob' });
      t.equal(r.prekey.id, last.id, `reservation ${i + 2}: the last-resort prekey`);
      t.equal(r.prekey.lastResort, true, 'flagged');
      const who = i === 2 ? h.carol : h.alice;
      const sent = await runSenderExchange(
        { name: who.name, certSerial: who.cert.serialHex, privateKey: who.keys.privateKeyPem },
        { serial: r.serial, expiresAt: r.expiresAt, peer: 'bob', peerCert: r.peerCert, prekey: r.prekey },
        { ca: h.ca, now: h.clock.now },
      );
      serials.push((await h.service.deposit(who.caller, sent.deposit)).serial);
    }
    t.ok(h.store.getLastResortPrekey('bob', h.bob.cert.serialHex), 'still held after three uses');
    const held = (await h.service.putPrekeys(h.bob.caller, [], { listHeld: true })).held!;
    t.ok(held.includes(last.id), 'listed in held, so bob keeps its private');

    // Rotation: bob replaces it; the old one is still held while deliveries that used it are queued.
    const next = await generatePrekey(owner, h.bob.keys.privateKeyPem, { lastResort: true });
    const replaced = await h.service.putPrekeys(h.bob.caller, [], {
      lastResort: { prekeyId: next.id, publicKey: next.publicKey, signature: next.signature },
    });
    t.equal(replaced.lastResort, next.id, 'replaced');
    t.equal(
      (await h.service.reserve(h.carol.caller, { peer: 'bob' })).prekey.id,
      next.id,
      'the new one is handed out',
    );
    const heldNow = (await h.service.putPrekeys(h.bob.caller, [], { listHeld: true })).held!;
    t.ok(heldNow.includes(last.id) && heldNow.includes(next.id), 'old (queued deliveries) and new held');
    h.store.deleteDeliveries(
      'bob',
      h.store.listDeliveries('bob').map((d) => d.id),
    );
    t.notOk(
      (await h.service.putPrekeys(h.bob.caller, [], { listHeld: true })).held!.includes(last.id),
      'once those deliveries are acknowledged the old one is no longer held',
    );

    // A certificate revocation drops every prekey of the name, the last-resort one too.
    await h.service.onCertificateRevoked(h.bob.cert.serialHex, 'bob');
    t.equal(h.store.getLastResortPrekey('bob', h.bob.cert.serialHex), undefined, 'gone with the certificate');
  },
);
