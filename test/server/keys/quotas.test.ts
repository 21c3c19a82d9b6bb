// The per-peer bounds of the key service (docs/keys.md "Quotas"), one by one, with small limits so each
// edge is reached in a few requests: what is refused and with which code, what is never refused
// (revocations of usable keys, verifications), what a refusal leaves untouched, and that a notice once
// accepted is delivered (or replaced by a newer notice about the same key), never lost.
import t from 'tap';
import { generatePrekey } from '../../../shared/keys/prekey.js';
import { runSenderExchange } from '../../../shared/keys/exchange.js';
import { acceptKdcKey } from '../../../shared/keys/exchange.js';
import { sealMessage } from '../../../shared/keys/message.js';
import { DEFAULT_KEY_LIMITS } from '../../../server/keys/key-quotas.js';
import {
  KEY_CREATION_BURST,
  MAX_ACTIVE_KEYS_PER_PAIR,
  MAX_OPEN_RESERVATIONS_PER_PAIR,
  MAX_QUEUED_KEY_NOTICES_PER_PAIR,
  MAX_QUEUED_MESSAGES_PER_PAIR,
} from '../../../shared/keys/quotas.js';
import { harness, type Client, type Harness, type Pushed } from './fixtures.js';

t.setTimeout(120_000);

type Sync = { type: string; body: Record<string, unknown> }[];

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
  const sealed = sealMessage(key, { serial, from, to, seq }, Buffer.from(`m${seq}`));
  return { to, serial, seq, nonce: sealed.nonce, ciphertext: sealed.ciphertext };
}

async function sync(h: Harness, who: Client, ack = true): Promise<Sync> {
  const got: Sync = [];
  for (;;) {
    const batch: Sync = [];
    const r = await h.service.sync(who.caller, (type, body) => batch.push({ type, body }));
    got.push(...batch);
    if (!ack) return got;
    if (batch.length > 0)
      await h.service.ack(
        who.caller,
        batch.map((p) => Number(p.body.d)),
      );
    if (r.remaining === 0 || batch.length === 0) return got;
  }
}

async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
    return 'ok';
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
}

t.test('the defaults are the named constants', async (t) => {
  t.same(DEFAULT_KEY_LIMITS, {
    activeKeysPerPair: MAX_ACTIVE_KEYS_PER_PAIR,
    queuedKeyNoticesPerPair: MAX_QUEUED_KEY_NOTICES_PER_PAIR,
    queuedMessagesPerPair: MAX_QUEUED_MESSAGES_PER_PAIR,
    openReservationsPerPair: MAX_OPEN_RESERVATIONS_PER_PAIR,
    creation: { burst: KEY_CREATION_BURST, perSecond: 1 },
  });
  t.ok(
    MAX_QUEUED_KEY_NOTICES_PER_PAIR >= MAX_ACTIVE_KEYS_PER_PAIR,
    'a pair can always queue its active keys',
  );
});

t.test('messages: per (sender, recipient), so one backlog never refuses another sender', async (t) => {
  const h = await harness(t, { limits: { queuedMessagesPerPair: 3 } });
  const a = await h.service.create(h.alice.caller, { peer: 'bob' });
  const c = await h.service.create(h.carol.caller, { peer: 'bob' });
  for (let seq = 1; seq <= 3; seq++)
    await h.service.sendMessage(h.alice.caller, message(a.key, a.serial, 'alice', 'bob', seq));
  await t.rejects(
    async () => h.service.sendMessage(h.alice.caller, message(a.key, a.serial, 'alice', 'bob', 4)),
    { code: 'quota_exceeded', message: /bob has 3 undelivered messages from you \(at most 3\)/ },
    'the 4th message from alice waits for bob',
  );
  t.equal(h.store.countQueuedFrom('bob', 'alice', 'msg'), 3, 'the refused message left nothing behind');
  await h.service.sendMessage(h.carol.caller, message(c.key, c.serial, 'carol', 'bob', 1));
  // bob (the recipient) can still message alice: the bound is per direction
  await h.service.sendMessage(h.bob.caller, message(a.key, a.serial, 'bob', 'alice', 1));
  const got = await sync(h, h.bob);
  t.same(
    got.filter((p) => p.type === 'msg').map((p) => `${String(p.body.from)}:${String(p.body.seq)}`),
    ['alice:1', 'alice:2', 'alice:3', 'carol:1'],
    'every accepted message delivered, in order',
  );
  await h.service.sendMessage(h.alice.caller, message(a.key, a.serial, 'alice', 'bob', 4));
  t.pass('once bob acknowledged them, alice may send again');
});

t.test(
  'active keys per (owner, peer): bounded, rotation allowed at the bound, other pairs apart',
  async (t) => {
    const h = await harness(t, { limits: { activeKeysPerPair: 3 } });
    const keys = [];
    for (let i = 0; i < 3; i++) keys.push(await h.service.create(h.alice.caller, { peer: 'bob' }));
    await t.rejects(h.service.create(h.alice.caller, { peer: 'bob' }), {
      code: 'quota_exceeded',
      message: /already hold 3 active keys with bob/,
    });
    t.equal(h.store.listSymKeys({ party: 'alice' }).length, 3, 'nothing stored by the refusal');
    const rotated = await h.service.create(h.alice.caller, { peer: 'bob', replaces: keys[0]!.serial });
    t.equal(h.store.getSymKey(keys[0]!.serial)!.state, 'superseded', 'a rotation at the bound is allowed');
    t.ok(await h.service.create(h.alice.caller, { peer: 'carol' }), 'another peer: its own bound');
    t.ok(await h.service.create(h.bob.caller, { peer: 'alice' }), 'the other direction: its own bound');
    await h.service.revoke(h.alice.caller, { serial: rotated.serial, reason: 'unspecified' });
    t.ok(await h.service.create(h.alice.caller, { peer: 'bob' }), 'a revoked key frees its place');
    h.clock.now = keys[1]!.expiresAt + 1;
    t.ok(await h.service.create(h.alice.caller, { peer: 'bob' }), 'so does an expired one');
    // The end-to-end flow: refused at the reservation, before one of bob's prekeys is spent.
    await uploadPrekeys(h, h.bob, 3);
    await h.service.create(h.alice.caller, { peer: 'bob' });
    await h.service.create(h.alice.caller, { peer: 'bob' });
    await t.rejects(async () => h.service.reserve(h.alice.caller, { peer: 'bob' }), {
      code: 'quota_exceeded',
    });
    t.equal(h.store.countPrekeys('bob', h.bob.cert.serialHex), 3, 'no prekey consumed');
  },
);

t.test('open reservations per (requester, peer) are bounded; deposits and expiry free them', async (t) => {
  const h = await harness(t, { limits: { openReservationsPerPair: 2 } });
  await uploadPrekeys(h, h.bob, 10);
  const first = await h.service.reserve(h.carol.caller, { peer: 'bob' });
  await h.service.reserve(h.carol.caller, { peer: 'bob' });
  await t.rejects(async () => h.service.reserve(h.carol.caller, { peer: 'bob' }), {
    code: 'quota_exceeded',
    message: /2 open reservations on bob's prekeys/,
  });
  t.equal(h.store.countPrekeys('bob', h.bob.cert.serialHex), 8, 'the refused one consumed nothing');
  t.ok(await h.service.reserve(h.alice.caller, { peer: 'bob' }), 'another requester is not affected');
  const sent = await runSenderExchange(
    { name: 'carol', certSerial: h.carol.cert.serialHex, privateKey: h.carol.keys.privateKeyPem },
    { ...first, prekey: first.prekey },
    { ca: h.ca, now: h.clock.now },
  );
  await h.service.deposit(h.carol.caller, sent.deposit);
  t.ok(await h.service.reserve(h.carol.caller, { peer: 'bob' }), 'a deposit frees its place');
  await t.rejects(async () => h.service.reserve(h.carol.caller, { peer: 'bob' }), { code: 'quota_exceeded' });
  h.clock.now += 5 * 60 * 1000 + 1;
  t.ok(await h.service.reserve(h.carol.caller, { peer: 'bob' }), 'so does the expiry of the reservations');
  const orphan = await h.service.reserve(h.carol.caller, { peer: 'bob' });
  await t.rejects(async () => h.service.reserve(h.carol.caller, { peer: 'bob' }), { code: 'quota_exceeded' });
  // A KDC restart: the sessions that reserved are gone, and so are their reservations.
  const restarted = h.restart();
  await restarted.sweep();
  t.equal(h.store.getSymKey(orphan.serial), undefined, 'reservations of the previous run dropped');
  t.ok(await restarted.reserve(h.carol.caller, { peer: 'bob' }), 'so carol may reserve again at once');
});

t.test('key creation rate: a token bucket per client (key.create and key.reserve)', async (t) => {
  const h = await harness(t, { limits: { creation: { burst: 3, perSecond: 1 } } });
  await uploadPrekeys(h, h.bob, 5);
  await h.service.create(h.alice.caller, { peer: 'bob' });
  await h.service.create(h.alice.caller, { peer: 'carol' });
  await h.service.reserve(h.alice.caller, { peer: 'bob' });
  await t.rejects(h.service.create(h.alice.caller, { peer: 'carol' }), {
    code: 'rate_limited',
    message: /too many keys created by alice: at most 3 at once, then 1 per second/,
  });
  await t.rejects(async () => h.service.reserve(h.alice.caller, { peer: 'bob' }), { code: 'rate_limited' });
  t.equal(h.store.countPrekeys('bob', h.bob.cert.serialHex), 4, 'a refused reservation took no prekey');
  t.ok(await h.service.create(h.carol.caller, { peer: 'bob' }), "carol's bucket is her own");
  h.clock.now += 1000;
  t.ok(await h.service.create(h.alice.caller, { peer: 'bob' }), 'one more after a second');
  await t.rejects(h.service.create(h.alice.caller, { peer: 'bob' }), { code: 'rate_limited' });
});

t.test('key notices per (sender, recipient): bounded; revoking a usable key is never refused', async (t) => {
  const h = await harness(t, { limits: { queuedKeyNoticesPerPair: 3, activeKeysPerPair: 100 } });
  const keys = [];
  for (let i = 0; i < 3; i++) keys.push(await h.service.create(h.alice.caller, { peer: 'bob' }));
  await t.rejects(h.service.create(h.alice.caller, { peer: 'bob' }), {
    code: 'quota_exceeded',
    message: /bob has 3 undelivered key notices from you/,
  });
  t.ok(await h.service.create(h.carol.caller, { peer: 'bob' }), "carol's key to bob is accepted");

  // Revocation of a key whose delivery is still queued: the notice replaces the delivery.
  t.equal(
    (await h.service.revoke(h.alice.caller, { serial: keys[0]!.serial, reason: 'keyCompromise' })).status,
    'revoked',
  );
  t.equal(h.store.countQueuedFrom('bob', 'alice', 'key'), 3, 'coalesced: still one notice per key');

  // Bob takes his backlog; alice's keys reach him; the revoked one only as its revocation.
  const first = await sync(h, h.bob);
  t.same(
    first.map((p) => `${p.type}:${String(p.body.serial)}`).sort(),
    [
      `key.delivered:${keys[1]!.serial}`,
      `key.delivered:${keys[2]!.serial}`,
      `key.revoked:${keys[0]!.serial}`,
      `key.delivered:${h.store.listSymKeys({ party: 'carol' })[0]!.serial}`,
    ].sort(),
    'nothing accepted is lost: every key, and the revocation in place of the revoked key',
  );

  // Bob is offline again; alice fills her quota, then revokes her usable keys: never refused.
  for (let i = 0; i < 3; i++) keys.push(await h.service.create(h.alice.caller, { peer: 'bob' }));
  for (const k of [keys[1]!, keys[2]!]) {
    t.equal(
      (await h.service.revoke(h.alice.caller, { serial: k.serial, reason: 'unspecified' })).status,
      'revoked',
    );
  }
  t.equal(h.store.countQueuedFrom('bob', 'alice', 'key'), 5, 'over the quota by the usable keys revoked');
  // A key already unusable (expired): its revocation counts like any notice, and waits.
  const stale = keys[3]!;
  h.clock.now = stale.expiresAt + 1;
  t.equal(
    await codeOf(() => h.service.revoke(h.alice.caller, { serial: stale.serial, reason: 'unspecified' })),
    'quota_exceeded',
    'revoking an expired key waits for the quota',
  );
  t.equal(h.store.getSymKey(stale.serial)!.state, 'expired', 'and changed nothing');
  const second = await sync(h, h.bob);
  t.equal(second.filter((p) => p.type === 'key.revoked').length, 2, 'both revocations delivered');
  t.equal(
    (await h.service.revoke(h.alice.caller, { serial: stale.serial, reason: 'unspecified' })).status,
    'revoked',
  );
});

t.test('revocations by the admin and the certificate cascade count against nobody', async (t) => {
  const h = await harness(t, { limits: { queuedKeyNoticesPerPair: 2 } });
  const a = await h.service.create(h.alice.caller, { peer: 'bob' });
  const b = await h.service.create(h.alice.caller, { peer: 'bob' });
  await h.service.revoke(h.admin, { serial: a.serial, reason: 'keyCompromise' });
  await h.service.onCertificateRevoked(h.alice.cert.serialHex, 'alice');
  const rows = h.store.listDeliveries('bob');
  t.same(
    rows.map((r) => [r.kind, r.keySerial, r.sender]),
    [
      ['key.revoked', a.serial, null],
      ['key.revoked', b.serial, null],
    ],
    'one notice per key for bob, queued by nobody',
  );
});

t.test("key.verified is counted against the key's owner, never refused", async (t) => {
  const h = await harness(t, { limits: { queuedKeyNoticesPerPair: 1 } });
  const k = await h.service.create(h.alice.caller, { peer: 'bob' });
  const pushes: Pushed[] = [];
  await h.service.sync(h.bob.caller, (type, body) => pushes.push({ type, body }));
  const got = await acceptKdcKey(
    { name: 'bob', certSerial: h.bob.cert.serialHex, privateKey: h.bob.keys.privateKeyPem },
    pushes[0]!.body as never,
  );
  const v = await h.service.verify(h.bob.caller, {
    serial: k.serial,
    digest: got.digest,
    signature: got.signature,
    ack: [Number(pushes[0]!.body.d)],
  });
  t.equal(v.verdict, 'valid');
  t.same(
    h.store.listDeliveries('alice').map((r) => [r.kind, r.sender]),
    [['key.verified', 'alice']],
    "alice's notice, counted against alice",
  );
  t.equal(h.store.countQueuedFrom('alice', 'bob', 'key'), 0, "nothing against bob's quota to alice");
});
