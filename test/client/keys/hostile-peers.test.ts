// Hostile enrolled peers against real clients on an in-process KDC (docs/security.md "Hostile peers"):
// eve reserving bob's one-time prekeys while bob listens, a certificate revoked by another process
// while its session is live, and a KDC (or relay) that pushes more keys than the KDC may accept.
import t from 'tap';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readClientHome } from '../../../client/home.js';
import { listen, type ListenEvent } from '../../../client/keys/listen.js';
import { parseCertificate } from '../../../shared/pki/x509.js';
import { runSenderExchange } from '../../../shared/keys/exchange.js';
import { reservationOf } from '../../../shared/keys/wire.js';
import { ciphertextDigest } from '../../../shared/keys/digest.js';
import { signedContent } from '../../../shared/keys/transcript.js';
import { signPss } from '../../../shared/crypto/rsa.js';
import { MAX_KEYS_ACCEPTED_IN_ALL } from '../../../shared/keys/quotas.js';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import type { ClientSession } from '../../../client/session.js';
import type { KeySession } from '../../../client/keys/key-client.js';
import {
  LAST_RESORT_PREKEY_MAX_AGE_MS,
  PREKEY_LOW_WATER,
  PREKEY_UPLOAD_GRACE_MS,
} from '../../../shared/keys/prekey.js';
import { sealMessage } from '../../../shared/keys/message.js';
import { wireBytes } from '../../../shared/keys/wire.js';
import { inProcessKdc, relayRequest } from './inproc.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

t.setTimeout(180_000);

type Body = Record<string, unknown>;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
}

t.test("ten reservations by eve, then alice's send-key to a listening bob still works", async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob', 'eve']);
  const bob = await env.open('bob'); // listening: start() stocked his prekeys
  const eve = await env.open('eve');
  const codes: string[] = [];
  for (let i = 0; i < 10; i++) codes.push(await codeOf(eve.session.request('key.reserve', { peer: 'bob' })));
  t.comment(`eve's reservations: ${codes.join(' ')}`);
  const alice = await env.open('alice');
  const sent = await alice.client.sendKey({ to: 'bob' });
  await bob.client.idle();
  for (let i = 0; i < 100 && bob.client.store.getKey(sent.serial)?.state !== 'active'; i++) {
    await new Promise((r) => setTimeout(r, 50));
    await bob.client.idle();
  }
  t.equal(bob.client.store.getKey(sent.serial)?.state, 'active', "bob received and verified alice's key");
});

t.test(
  'a revocation committed by another process: key.create on the live session is refused at once',
  async (t) => {
    const env = await inProcessKdc(t, ['alice', 'bob']);
    const alice = await env.open('alice');
    await env.open('bob');
    t.equal(await codeOf(alice.session.request('key.create', { peer: 'bob' })), 'ok', 'before: accepted');
    // `kds cert revoke alice` run from a shell: its own CA object, its own store connection.
    const offline = await CertificateAuthority.open(env.dataDir, { passphrase: TEST_CA_PASSPHRASE });
    try {
      await offline.revoke({ name: 'alice' }, 'keyCompromise', 'test');
    } finally {
      await offline.close();
    }
    const store = sqliteOf(env.kdc.services.store);
    const before = store.listSymKeys({ party: 'alice' }).length;
    const code = await codeOf(alice.session.request('key.create', { peer: 'bob' }));
    t.ok(['cert_revoked', 'session_closed'].includes(code), `refused: ${code}`);
    t.equal(store.listSymKeys({ party: 'alice' }).length, before, 'no key created after the revocation');
  },
);

/**
 * A relay in front of bob's session that pushes key.delivered notices of its own making (what a KDC
 * that does not enforce its bounds could send: serials starting with f, delivery ids from 1,000,000),
 * and answers their key.verify and key.ack itself.
 */
function deliveringRelay(): { wrap: (s: ClientSession) => KeySession; inject: (body: Body) => void } {
  let push: ((body: Body) => void) | undefined;
  return {
    wrap: (s) => ({
      request: relayRequest(s, async (type, body, forward) => {
        if (type === 'key.verify' && String(body.serial).startsWith('f')) {
          return { serial: body.serial, verdict: 'valid', peerVerified: true, state: 'active' };
        }
        if (type === 'key.ack' && (body.ids as number[]).every((d) => d >= 1_000_000)) {
          return { acknowledged: (body.ids as number[]).length };
        }
        return forward();
      }),
      onPush: (type, fn) => {
        if (type === 'key.delivered') push = (b) => fn(b, type);
        return s.onPush(type, fn);
      },
    }),
    inject: (body) => {
      if (push === undefined) throw new Error('the relay has no session yet');
      push(body);
    },
  };
}

t.test("a KDC pushing more keys from one sender than it may accept: bob's home stays bounded", async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob']);
  const alice = await env.open('alice');
  const aliceSerial = alice.session.facts.identity.serialHex;
  const relay = deliveringRelay();
  const bob = await env.open('bob', { wrap: relay.wrap });
  const inject = relay.inject;
  const now = Date.now();
  const pushed = 300;
  for (let i = 0; i < pushed; i++) {
    inject({
      d: 1_000_000 + i,
      serial: `f${i.toString(16).padStart(31, '0')}`,
      mode: 'kdc',
      from: 'alice',
      fromCertSerial: aliceSerial,
      to: 'bob',
      toCertSerial: bob.session.facts.identity.serialHex,
      createdAt: now,
      expiresAt: now + 3_600_000,
      key: Buffer.alloc(32, i % 251),
    });
  }
  await bob.client.idle();
  const stored = bob.client.store.listKeys().filter((k) => k.owner === 'alice');
  t.ok(stored.length <= 256, `bob stored a bounded number of alice's keys: ${stored.length} of ${pushed}`);
  t.ok(
    bob.events.some((e) => e.event === 'key.rejected' && e.code === 'quota_exceeded'),
    'the rest were rejected, and said so',
  );
});

t.test(
  "eve's short-lived keys end in retired/: bob's session open and send read only his live keys",
  async (t) => {
    const env = await inProcessKdc(t, ['alice', 'bob', 'eve']);
    const bob = await env.open('bob');
    const alice = await env.open('alice');
    const honest = await alice.client.sendKey({ to: 'bob' });
    const eve = await env.open('eve');
    const flood = 30;
    const sent: string[] = [];
    for (let i = 0; i < flood; i++)
      sent.push((await eve.client.sendKey({ to: 'bob', mode: 'kdc', ttlMs: 1_000 })).serial);
    t.ok(
      await eventually(() => sent.every((s) => bob.client.store.getKey(s)?.state === 'active')),
      "bob received and verified all of eve's keys",
    );
    await bob.close();
    await new Promise((r) => setTimeout(r, 1_100)); // every one of eve's keys has expired
    const keysDir = join(env.home('bob'), 'keys');
    const liveFiles = (): string[] => readdirSync(keysDir).filter((f) => f.endsWith('.key'));
    t.equal(
      liveFiles().length,
      flood + 1,
      "before bob's next session: eve's expired keys are still among his live keys",
    );

    // The next session's start (the pending re-check, the per-sender bound) retires them on the way.
    const again = await env.open('bob');
    t.same(liveFiles(), [`${honest.serial}.key`], "only alice's key is left among the live keys");
    const retired = readdirSync(join(keysDir, 'retired')).filter((f) => f.endsWith('.key'));
    t.same(retired.sort(), sent.map((s) => `${s}.key`).sort(), "eve's keys are tombstones in retired/");
    t.equal(
      again.client.store.getKey(sent[0]!)?.state,
      'expired',
      'a tombstone still answers for its serial',
    );
    t.equal(again.client.store.getKey(sent[0]!)?.key, undefined, 'without the key');

    // Every tombstone made unreadable (a directory in place of each file): the hot paths never open one.
    for (const f of retired) {
      rmSync(join(keysDir, 'retired', f));
      mkdirSync(join(keysDir, 'retired', f));
    }
    await again.close();
    const third = await env.open('bob');
    const msg = await third.client.sendMessage({ to: 'alice', text: 'still here' });
    t.equal(msg.serial, honest.serial, "bob's send picks alice's key without reading a tombstone");
  },
);

t.test('messages left queued for listen never stand in front of a key notice', async (t) => {
  // More messages queued for bob than one key.sync batch (256): a command that leaves them queued (all
  // but listen) once re-asked 100 times for the same 256 messages, and a key notice queued behind them
  // never reached it.
  const env = await inProcessKdc(t, ['bob', 'carol', 'eve']);
  const eve = await env.open('eve');
  const shared = await eve.session.request('key.create', { peer: 'bob', ttl: 3_600_000 });
  await (await env.open('bob', { acceptMessages: false })).close(); // bob verifies eve's key
  const queued = 300;
  for (let seq = 1; seq <= queued; seq++) {
    const sealed = sealMessage(
      shared.key,
      { serial: shared.serial, from: 'eve', to: 'bob', seq },
      Buffer.from('x'),
    );
    await eve.session.request('msg.send', { to: 'bob', serial: shared.serial, ...sealed });
  }
  const carol = await env.open('carol');
  const late = await carol.client.sendKey({ to: 'bob', mode: 'kdc' });

  const rounds: Body[] = [];
  let messagesPushed = 0;
  const counting = (s: ClientSession): KeySession => ({
    request: relayRequest(s, async (type, body, forward) => {
      if (type === 'key.sync') rounds.push(body);
      return forward();
    }),
    onPush: (type, fn) =>
      s.onPush(type, (b, ty) => {
        if (type === 'msg') messagesPushed += 1;
        fn(b, ty);
      }),
  });
  const bob = await env.open('bob', { acceptMessages: false, wrap: counting });
  t.same(rounds, [{ messages: false }], 'one round, key notices only');
  t.equal(messagesPushed, 0, 'no message pushed to a session that leaves them queued');
  t.equal(bob.client.store.getKey(late.serial)?.state, 'active', "carol's key arrived behind the messages");
  await bob.close();

  const listener = await env.open('bob');
  t.ok(
    await eventually(() => listener.events.filter((e) => e.event === 'message').length === queued),
    'listen still gets every message',
  );
});

t.test('a KDC that pushes the same notices again on every key.sync: bob stops asking', async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob']);
  let syncs = 0;
  let inject: ((body: Body) => void) | undefined;
  // A relay answering key.sync itself: it pushes one notice it never forgets, and claims more remain.
  const repeating = (s: ClientSession): KeySession => ({
    request: relayRequest(s, async (type, _body, forward) => {
      if (type === 'key.sync') {
        syncs += 1;
        inject?.({ d: 7, serial: 'f'.repeat(32), state: 'revoked', reason: 'unspecified', revokedAt: 1 });
        return { pushed: 1, remaining: 5_000 };
      }
      if (type === 'key.ack') return { acknowledged: 0 };
      return forward();
    }),
    onPush: (type, fn) => {
      if (type === 'key.revoked') inject = (b) => fn(b, type);
      return s.onPush(type, fn);
    },
  });
  await env.open('bob', { wrap: repeating });
  t.equal(syncs, 2, 'the second round brought nothing new: the sync ends there (it once ran 100 rounds)');
});

t.test(
  "eve's deposits that do not open: bob's one-time prekey goes with each rejected delivery",
  async (t) => {
    // The KDC checks eve's signature over the ciphertext, not that the ciphertext opens: bob rejects it
    // (bad_mac). The prekey it named was claimed by eve's reservation, so no other exchange can use it;
    // bob used to keep its private until a later session's housekeeping (one file per bad deposit).
    const env = await inProcessKdc(t, ['bob', 'eve']);
    const bob = await env.open('bob');
    const eve = await env.open('eve');
    const files = readClientHome(env.home('eve'));
    const me = {
      name: 'eve',
      certSerial: eve.session.facts.identity.serialHex,
      privateKey: files.privateKey,
    };
    const prekeyDir = join(env.home('bob'), 'keys', 'prekeys');
    const named: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await eve.session.request('key.reserve', { peer: 'bob' });
      const sent = await runSenderExchange(me, reservationOf(r), { ca: parseCertificate(files.caPem) });
      const ciphertext = randomBytes(sent.deposit.ciphertext.length);
      const signature = await signPss(
        signedContent('sender', sent.transcriptHash, ciphertextDigest(ciphertext)),
        files.privateKey,
      );
      await eve.session.request('key.deposit', { ...sent.deposit, ciphertext, signature });
      named.push(String((r as { prekey: { id: string } }).prekey.id));
    }
    t.ok(
      await eventually(
        () => bob.events.filter((e) => e.event === 'key.rejected' && e.code === 'bad_mac').length === 5,
      ),
      'bob rejected all five (bad_mac)',
    );
    await bob.client.idle();
    const left = readdirSync(prekeyDir).map((f) => f.replace(/\.prekey$/, ''));
    t.same(
      named.filter((id) => left.includes(id)),
      [],
      'none of the prekeys the deliveries named is kept',
    );
  },
);

t.test("a listener retires the keys that expire while it runs (eve's 1 s keys)", async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob', 'eve']);
  const alice = await env.open('alice');
  const honest = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
  const controller = new AbortController();
  const events: ListenEvent[] = [];
  const listening = listen({
    name: 'bob',
    dataDir: env.dataDir,
    server: env.url,
    signal: controller.signal,
    housekeepingMs: 200,
    autoRenew: false,
    onEvent: (e) => events.push(e),
  });
  t.teardown(async () => {
    controller.abort();
    await listening.catch(() => undefined);
  });
  t.ok(await eventually(() => events.some((e) => e.event === 'connected')), 'bob listens');
  const eve = await env.open('eve');
  const sent: string[] = [];
  for (let i = 0; i < 10; i++)
    sent.push((await eve.client.sendKey({ to: 'bob', mode: 'kdc', ttlMs: 1_000 })).serial);
  t.ok(
    await eventually(() => sent.every((s) => events.some((e) => e.event === 'key' && e.serial === s))),
    "bob received eve's keys",
  );
  const keysDir = join(env.home('bob'), 'keys');
  t.ok(
    await eventually(
      () => readdirSync(join(keysDir, 'retired')).filter((f) => f.endsWith('.key')).length === 10,
    ),
    'once expired, they are retired by the running session',
  );
  t.same(
    readdirSync(keysDir).filter((f) => f.endsWith('.key')),
    [`${honest.serial}.key`],
    "the live keys are alice's only",
  );
  t.equal(events.filter((e) => e.event === 'connected').length, 1, 'in the same session');
});

/** Poll `check` (generous: served at all within `ms`), yielding to the clients in between. */
async function eventually(check: () => boolean | Promise<boolean>, ms = 20_000): Promise<boolean> {
  for (const until = Date.now() + ms; Date.now() < until; ) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

t.test('a listening bob tops up when told his one-time stock runs low (key.prekeys.low)', async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob', 'eve', 'carol']);
  const store = sqliteOf(env.kdc.services.store);
  const bob = await env.open('bob');
  const serial = bob.session.facts.identity.serialHex;
  t.equal(store.countPrekeys('bob', serial), 10, 'a full stock');
  const eve = await env.open('eve', { start: false });
  const carol = await env.open('carol', { start: false });
  // Eight open reservations by two requesters (four each, their bound), none deposited.
  for (const who of [eve, carol]) {
    for (let i = 0; i < 4; i++) await who.session.request('key.reserve', { peer: 'bob' });
  }
  // Without the push the stock would stay at 2 until bob's next session or next received key.
  t.ok(
    await eventually(() => store.countPrekeys('bob', serial) >= PREKEY_LOW_WATER),
    `bob topped his stock up without receiving any key (${store.countPrekeys('bob', serial)} left)`,
  );
  const local = new Set(bob.client.store.prekeyIds());
  const held = store.heldPrekeyIds('bob', serial, Date.now() - 5 * 60 * 1000, 1000);
  t.equal(held.length, store.countPrekeys('bob', serial) + 8 + 1, 'stock, 8 reservations, last-resort');
  t.ok(
    held.every((id) => local.has(id)),
    'bob has the private of every prekey the KDC holds',
  );
});

t.test(
  "with bob's one-time stock empty, exchanges use his last-resort prekey and still verify",
  async (t) => {
    const env = await inProcessKdc(t, ['alice', 'bob']);
    const store = sqliteOf(env.kdc.services.store);
    const bob = await env.open('bob');
    const serial = bob.session.facts.identity.serialHex;
    const alice = await env.open('alice');
    const lastResort = store.getLastResortPrekey('bob', serial);
    t.ok(lastResort, "bob's client uploaded a last-resort prekey at its start");
    t.equal(bob.client.store.getPrekey(lastResort!.prekeyId)?.lastResort, true, 'and keeps its private');
    for (let round = 0; round < 2; round++) {
      // What a requester that drained the stock leaves behind (bob refills it between the rounds).
      while (store.claimPrekey('bob', serial) !== undefined);
      const sent = await alice.client.sendKey({ to: 'bob' });
      t.equal(
        store.getSymKey(sent.serial)!.prekeyId,
        lastResort!.prekeyId,
        `round ${round + 1}: last-resort`,
      );
      t.ok(
        await eventually(() => bob.client.store.getKey(sent.serial)?.state === 'active'),
        'bob received and verified the key',
      );
      t.ok(
        await eventually(() => alice.client.store.getKey(sent.serial)?.state === 'active'),
        'alice was told it was verified',
      );
    }
    t.ok(bob.client.store.getPrekey(lastResort!.prekeyId), 'the last-resort private is still there');
  },
);

t.test('a last-resort prekey older than its lifetime is replaced at the next session', async (t) => {
  const env = await inProcessKdc(t, ['bob']);
  const store = sqliteOf(env.kdc.services.store);
  let clock = Date.now();
  const bob1 = await env.open('bob', { now: () => clock });
  const serial = bob1.session.facts.identity.serialHex;
  const first = store.getLastResortPrekey('bob', serial)!.prekeyId;
  await bob1.close();
  const again = await env.open('bob', { now: () => clock });
  t.equal(store.getLastResortPrekey('bob', serial)!.prekeyId, first, 'kept while young');
  await again.close();
  clock += LAST_RESORT_PREKEY_MAX_AGE_MS + 1;
  const later = await env.open('bob', { now: () => clock });
  const second = store.getLastResortPrekey('bob', serial)!.prekeyId;
  t.not(second, first, 'replaced once older than its lifetime');
  t.equal(later.client.store.getPrekey(second)?.lastResort, true);
  await later.close();
  clock += PREKEY_UPLOAD_GRACE_MS + 1;
  const last = await env.open('bob', { now: () => clock });
  t.notOk(last.client.store.getPrekey(first), 'the old private goes once the KDC no longer holds it');
  t.ok(last.client.store.getPrekey(second), 'the current one stays');
});

t.test('the honest clients are served while eve attacks bob', async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob', 'carol', 'eve']);
  const bob = await env.open('bob');
  const alice = await env.open('alice');
  const carol = await env.open('carol');
  const eve = await env.open('eve', { start: false });
  const refused = new Map<string, number>();
  let stop = false;
  // Eve: reservations on bob's prekeys and KDC-generated keys for bob, four requests at a time, as fast
  // as the KDC answers.
  const attack = Promise.all(
    Array.from({ length: 4 }, async () => {
      while (!stop) {
        for (const type of ['key.reserve', 'key.create'] as const) {
          const code = await codeOf(eve.session.request(type, { peer: 'bob' }));
          refused.set(code, (refused.get(code) ?? 0) + 1);
        }
      }
    }),
  );
  try {
    for (let i = 0; i < 3; i++) {
      const e2e = await alice.client.sendKey({ to: 'bob' });
      const kdc = await carol.client.sendKey({ to: 'bob', mode: 'kdc' });
      for (const [who, s] of [
        [alice, e2e.serial],
        [carol, kdc.serial],
      ] as const) {
        t.ok(
          await eventually(() => who.client.store.getKey(s)?.state === 'active'),
          `${who.client.name}'s key ${i + 1} verified by bob`,
        );
      }
      await alice.client.sendMessage({ to: 'bob', text: `hello ${i}` });
    }
    t.ok(
      await eventually(() => bob.events.filter((e) => e.event === 'message').length === 3),
      "bob got alice's three messages",
    );
  } finally {
    stop = true;
    await attack;
  }
  t.comment(`eve's requests: ${JSON.stringify(Object.fromEntries(refused))}`);
  t.ok((refused.get('quota_exceeded') ?? 0) + (refused.get('rate_limited') ?? 0) > 0, 'eve was refused');
  const fromEve = bob.client.store.listKeys().filter((k) => k.owner === 'eve').length;
  t.ok(fromEve <= 128, `bob holds a bounded number of eve's keys: ${fromEve}`);
});

t.test("the honest clients are served while eve floods an offline bob's queue", async (t) => {
  // Smaller bounds than the defaults (the service tests reach those), so bob's return stays quick.
  const env = await inProcessKdc(t, ['alice', 'bob', 'carol', 'eve'], {
    keyLimits: { queuedMessagesPerPair: 100, activeKeysPerPair: 20, creation: { burst: 30, perSecond: 1 } },
  });
  const store = sqliteOf(env.kdc.services.store);
  const eve = await env.open('eve', { start: false });
  const carol = await env.open('carol');
  const evesKey = await eve.session.request('key.create', { peer: 'bob' });
  const counts = new Map<string, number>();
  let stop = false;
  let seq = 0;
  const attack = Promise.all(
    Array.from({ length: 4 }, async () => {
      while (!stop) {
        const s = ++seq;
        const sealed = sealMessage(
          wireBytes(evesKey.key),
          { serial: String(evesKey.serial), from: 'eve', to: 'bob', seq: s },
          Buffer.from('x'.repeat(1000)),
        );
        for (const [type, body] of [
          ['key.create', { peer: 'bob' }],
          ['msg.send', { to: 'bob', serial: evesKey.serial, ...sealed }],
        ] as const) {
          const code = await codeOf(eve.session.request(type, body));
          counts.set(`${type} ${code}`, (counts.get(`${type} ${code}`) ?? 0) + 1);
        }
      }
    }),
  );
  const carolsKeys: string[] = [];
  try {
    // Until eve's message quota to bob is full (or a generous while), carol keeps sending too.
    for (let i = 0; i < 100 && (i < 5 || (counts.get('msg.send quota_exceeded') ?? 0) === 0); i++) {
      const k = await carol.session.request('key.create', { peer: 'bob' });
      carolsKeys.push(String(k.serial));
      const sealed = sealMessage(
        wireBytes(k.key),
        { serial: String(k.serial), from: 'carol', to: 'bob', seq: 1 },
        Buffer.from(`hello ${i}`),
      );
      await carol.session.request('msg.send', { to: 'bob', serial: k.serial, ...sealed });
      if (i >= 5 && (counts.get('key.create rate_limited') ?? 0) > 0)
        await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    stop = true;
    await attack;
  }
  t.comment(`eve: ${JSON.stringify(Object.fromEntries(counts))}; carol: ${carolsKeys.length} keys`);
  t.ok((counts.get('msg.send quota_exceeded') ?? 0) > 0, "eve's messages to bob hit her quota");
  t.ok((counts.get('key.create rate_limited') ?? 0) > 0, "eve's key creation hit her rate");
  t.equal(store.countQueuedFrom('bob', 'eve', 'msg'), 100, 'eve queued exactly her quota of messages');
  // Bob comes back: everything carol sent arrives, and eve's share of his home is bounded.
  const bob = await env.open('bob');
  t.ok(
    await eventually(
      () =>
        carolsKeys.every((s) => bob.client.store.getKey(s)?.state === 'active') &&
        bob.events.filter((e) => e.event === 'message' && e.from === 'carol').length === carolsKeys.length,
      60_000,
    ),
    `bob got all ${carolsKeys.length} of carol's keys and messages`,
  );
  const fromEve = bob.client.store.listKeys().filter((k) => k.owner === 'eve').length;
  t.ok(fromEve <= 20, `at most one pair's bound of eve's keys in bob's home: ${fromEve}`);
});

t.test('a KDC asking for 2^32 prekeys, or sending keys from made-up senders and lifetimes', async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob']);
  const prekeyDir = join(env.home('bob'), 'keys', 'prekeys');
  // A relay answering bob's status query with an absurd `wanted` (the real session's schema refuses it
  // on the wire; what a session hands the stock is bounded again).
  const greedy = (s: ClientSession): KeySession => ({
    request: relayRequest(s, async (type, body, forward) => {
      const reply = await forward();
      return type === 'key.prekeys' && (body.prekeys as unknown[]).length === 0
        ? { ...reply, wanted: 2 ** 32 }
        : reply;
    }),
    onPush: (type, fn) => s.onPush(type, fn),
  });
  const outcome = await codeOf(env.open('bob', { wrap: greedy }));
  t.equal(outcome, 'ok', 'the session opens (it once threw a RangeError, reported as internal)');
  t.ok(
    readdirSync(prekeyDir).length <= 100 + 1,
    `at most one upload's worth: ${readdirSync(prekeyDir).length}`,
  );

  const relay = deliveringRelay();
  const bob = await env.open('bob', { wrap: relay.wrap });
  const inject = relay.inject;
  const aliceSerial = (await env.open('alice')).session.facts.identity.serialHex;
  const now = Date.now();
  const delivery = (i: number, from: string, expiresAt: number): Body => ({
    d: 1_000_000 + i,
    serial: `f${i.toString(16).padStart(31, '0')}`,
    mode: 'kdc',
    from,
    fromCertSerial: aliceSerial,
    to: 'bob',
    toCertSerial: bob.session.facts.identity.serialHex,
    createdAt: now,
    expiresAt,
    key: Buffer.alloc(32, i % 251),
  });
  inject(delivery(0, 'alice', now + 100 * 24 * 3_600_000));
  inject(delivery(1, 'alice', 9e15));
  inject({ ...delivery(2, 'alice', 0), createdAt: 8e15, expiresAt: 8e15 + 3_600_000 });
  await bob.client.idle();
  t.same(
    bob.events.filter((e) => e.event === 'key.rejected').map((e) => (e as { code: string }).code),
    ['malformed', 'malformed', 'malformed'],
    'lifetimes over 90 days (or past what a Date holds), or a key created in the far future, are refused',
  );
  t.equal(bob.client.store.listKeys().length, 0, 'and not stored');

  // Every key from another made-up name: the per-sender bound never applies; the total one does.
  const pushed = MAX_KEYS_ACCEPTED_IN_ALL + 50;
  for (let i = 3; i < pushed + 3; i++) {
    inject(delivery(i, `sender${i}`, now + 3_600_000));
    if (i % 500 === 0) await bob.client.idle(); // within what bob holds waiting (1,024 pushes)
  }
  await bob.client.idle();
  const stored = bob.client.store.listLiveKeys().length;
  t.equal(stored, MAX_KEYS_ACCEPTED_IN_ALL, `bob stored ${stored} of ${pushed}`);
  t.equal(
    bob.events.filter((e) => e.event === 'key.rejected' && e.code === 'quota_exceeded').length,
    50,
    'the rest were refused, and said so',
  );
});

t.test(
  'a KDC pushing faster than bob applies: what waits is bounded, and the rest is asked for again',
  async (t) => {
    const env = await inProcessKdc(t, ['bob']);
    let syncs = 0;
    let inject: ((body: Body) => void) | undefined;
    const relay = (s: ClientSession): KeySession => ({
      request: relayRequest(s, async (type, body, forward) => {
        if (type === 'key.sync') syncs += 1;
        if (type === 'key.ack') return { acknowledged: (body.ids as number[]).length };
        return forward();
      }),
      onPush: (type, fn) => {
        if (type === 'msg') inject = (b) => fn(b, type);
        return s.onPush(type, fn);
      },
    });
    const bob = await env.open('bob', { wrap: relay });
    const before = syncs;
    const flood = 3_000;
    for (let i = 0; i < flood; i++) {
      inject!({
        d: 2_000_000 + i,
        from: 'eve',
        to: 'bob',
        serial: 'e'.repeat(32),
        seq: i + 1,
        nonce: Buffer.alloc(12),
        ciphertext: Buffer.alloc(32 * 1024, i % 251),
        sentAt: Date.now(),
      });
    }
    await bob.client.idle();
    const applied = bob.events.filter((e) => e.event === 'message' || e.event === 'message.rejected').length;
    t.ok(
      applied > 0 && applied <= 1_024,
      `${applied} of ${flood} were held and applied (16 MiB, 1,024 at most)`,
    );
    t.ok(
      await eventually(() => syncs > before),
      'once they were applied, bob asked the KDC for what he left out (it stays queued there)',
    );
  },
);

t.test('pushes left out over the bound while a sync runs are asked for again when it ends', async (t) => {
  const env = await inProcessKdc(t, ['bob']);
  let syncs = 0;
  let inject: ((body: Body) => void) | undefined;
  let armed = false;
  // A relay whose first key.sync once armed comes with 1,100 pushes: more than bob holds waiting.
  const relay = (s: ClientSession): KeySession => ({
    request: relayRequest(s, async (type, body, forward) => {
      if (type === 'key.ack') return { acknowledged: (body.ids as number[]).length };
      if (type !== 'key.sync' || !armed) return forward();
      syncs += 1;
      if (syncs === 1) {
        for (let i = 0; i < 1_100; i++) {
          inject!({
            d: 3_000_000 + i,
            from: 'eve',
            to: 'bob',
            serial: 'e'.repeat(32),
            seq: i + 1,
            nonce: Buffer.alloc(12),
            ciphertext: Buffer.alloc(16),
            sentAt: Date.now(),
          });
        }
        return { pushed: 1_100, remaining: 0 };
      }
      return { pushed: 0, remaining: 0 };
    }),
    onPush: (type, fn) => {
      if (type === 'msg') inject = (b) => fn(b, type);
      return s.onPush(type, fn);
    },
  });
  const bob = await env.open('bob', { wrap: relay });
  armed = true;
  await bob.client.sync();
  t.equal(syncs, 2, 'the 76 left out made the sync ask once more (it once ended with them still queued)');
});
