// Key distribution (docs/keys.md) with real processes: a server process, bob's `kds client listen --json` process, alice's and
// carol's commands through the CLI (plus an in-process client where only the protocol matters, to keep
// the file quick). Both flows; verify valid; messages round-trip; revocation by either party and by
// the admin with notices reaching both; a third client cannot fetch, verify or revoke another's key;
// the revoked-key list; rotation; expiry; refused peers.
import t from 'tap';
import { initDataDir, startServer } from '../helpers/kds-process.js';
import { admin, client, enrollAll, json, keyClient, listen, type Clients } from './keys-helpers.js';

t.setTimeout(200_000);

const dataDir = await initDataDir(t);
const server = await startServer(t, dataDir);
const c: Clients = { server, homes: await enrollAll(server, ['alice', 'bob', 'carol']) };
const bob = listen(t, c, 'bob');
await bob.waitFor((e) => e.event === 'connected', 'connected');

t.test('end-to-end flow through the CLI: bob receives and verifies, the message round-trips', async (t) => {
  const r = await client(c, 'alice', 'send-key', ['--to', 'bob', '--json']);
  t.equal(r.code, 0, r.stderr);
  const sent = json<{ serial: string; mode: string; fingerprint: string; state: string }>(r);
  t.match(sent, { mode: 'e2e', state: 'pending' });
  t.match(sent.serial, /^[0-9a-f]{32}$/);
  const got = await bob.waitFor((e) => e.event === 'key' && e.serial === sent.serial, 'the key');
  t.match(got, {
    from: 'alice',
    mode: 'e2e',
    verdict: 'valid',
    state: 'active',
    fingerprint: sent.fingerprint,
  });
  const m = await client(c, 'alice', 'send', ['--to', 'bob', '--message', 'hi bob, end to end', '--json']);
  t.equal(m.code, 0, m.stderr);
  t.equal(json(m).serial, sent.serial, 'alice uses the key once bob verified it');
  t.match(await bob.waitFor((e) => e.event === 'message' && e.text === 'hi bob, end to end', 'the message'), {
    from: 'alice',
    serial: sent.serial,
  });
  t.notOk(JSON.stringify(bob.events).includes('"key":'), 'listen never prints key material');
});

t.test('KDC-generated flow; verify-key through the CLI', async (t) => {
  const r = await client(c, 'alice', 'send-key', ['--to', 'bob', '--mode', 'kdc', '--json']);
  t.equal(r.code, 0, r.stderr);
  const sent = json<{ serial: string; fingerprint: string }>(r);
  t.match(await bob.waitFor((e) => e.event === 'key' && e.serial === sent.serial, 'the kdc key'), {
    mode: 'kdc',
    verdict: 'valid',
    fingerprint: sent.fingerprint,
  });
  const v = await client(c, 'bob', 'verify-key', ['--serial', sent.serial, '--json']);
  t.equal(v.code, 0);
  t.match(json(v), { verdict: 'valid', state: 'active' });
  const alice = await keyClient(t, c, 'alice');
  const m = await alice.client.sendMessage({ to: 'bob', serial: sent.serial, text: 'via the KDC key' });
  t.equal(m.serial, sent.serial);
  await bob.waitFor((e) => e.event === 'message' && e.text === 'via the KDC key', 'the message');
  await alice.close();
});

t.test('a third client cannot fetch, verify, revoke or use the key (not_found)', async (t) => {
  const alice = await keyClient(t, c, 'alice');
  const sent = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
  await alice.close();
  const v = await client(c, 'carol', 'verify-key', ['--serial', sent.serial, '--json']);
  t.equal(v.code, 6);
  t.equal(json(v).verdict, 'not_found');
  const rv = await client(c, 'carol', 'revoke-key', ['--serial', sent.serial, '--json']);
  t.equal(rv.code, 6);
  t.equal(json<{ error: { code: string } }>(rv).error.code, 'not_found');
  const carol = await keyClient(t, c, 'carol');
  await t.rejects(carol.client.rotateKey(sent.serial), { code: 'not_found' }, 'cannot fetch it (key.get)');
  t.same(
    (await carol.client.verifyKey('0'.repeat(32))).verdict,
    'not_found',
    'same answer for an unknown serial',
  );
  t.same(await carol.client.listKeys(), []);
  await carol.close();
  await bob.waitFor((e) => e.event === 'key' && e.serial === sent.serial, 'still delivered to bob');
});

t.test('revocation by either party and by the admin reaches both', async (t) => {
  const alice = await keyClient(t, c, 'alice');
  const ids: string[] = [];
  for (let i = 0; i < 3; i += 1) {
    const { serial } = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
    await bob.waitFor((e) => e.event === 'key' && e.serial === serial, 'key');
    ids.push(serial);
  }
  await alice.client.sync();
  const [byAlice, byBob, byAdmin] = ids as [string, string, string];
  const r1 = await client(c, 'alice', 'revoke-key', [
    '--serial',
    byAlice,
    '--reason',
    'keyCompromise',
    '--json',
  ]);
  t.equal(r1.code, 0, r1.stderr);
  t.match(await bob.waitFor((e) => e.event === 'key.revoked' && e.serial === byAlice, 'notice to bob'), {
    reason: 'keyCompromise',
  });
  const r2 = await client(c, 'bob', 'revoke-key', ['--serial', byBob, '--reason', 'superseded', '--json']);
  t.equal(json(r2).status, 'revoked', 'the receiver may revoke');
  const r3 = await admin(c, 'revoke-key', [
    '--serial',
    byAdmin,
    '--reason',
    'cessationOfOperation',
    '--json',
  ]);
  t.equal(r3.code, 0, r3.stderr);
  await bob.waitFor((e) => e.event === 'key.revoked' && e.serial === byAdmin, 'admin notice to bob');
  await alice.client.idle();
  for (const [serial, reason] of [
    [byAlice, 'keyCompromise'],
    [byBob, 'superseded'],
    [byAdmin, 'cessationOfOperation'],
  ] as const) {
    t.match(
      alice.events.find((e) => e.event === 'key.revoked' && e.serial === serial),
      { reason },
      'notice to alice (connected)',
    );
    const local = alice.client.store.getKey(serial);
    t.equal(local?.state, 'revoked');
    t.equal(local?.key, undefined, 'alice deleted the key material');
  }
  await t.rejects(alice.client.sendMessage({ to: 'bob', serial: byAdmin, text: 'stale' }), {
    code: 'key_revoked',
  });
  await alice.close();
  const v = await client(c, 'alice', 'verify-key', ['--serial', byBob, '--json']);
  t.equal(v.code, 3);
  t.match(json(v), { verdict: 'revoked' });
  const list = json<{ keys: { serial: string; reason: string; revokedAt: number }[] }>(
    await admin(c, 'keys', ['--revoked', '--json']),
  );
  t.same(
    ids.map((s) => list.keys.find((k) => k.serial === s)?.reason),
    ['keyCompromise', 'superseded', 'cessationOfOperation'],
    'the revoked-key list: serial, time, reason',
  );
  t.ok(list.keys.every((k) => typeof k.revokedAt === 'number'));
});

t.test('rotation supersedes the old key; expiry gives expired; refused peers', async (t) => {
  const alice = await keyClient(t, c, 'alice');
  const old = await alice.client.sendKey({ to: 'bob' });
  await bob.waitFor((e) => e.event === 'key' && e.serial === old.serial, 'key');
  const fresh = await alice.client.rotateKey(old.serial);
  t.match(fresh, { replaces: old.serial, mode: 'e2e' });
  t.match(await bob.waitFor((e) => e.event === 'key.revoked' && e.serial === old.serial, 'superseded'), {
    state: 'superseded',
  });
  await bob.waitFor((e) => e.event === 'key' && e.serial === fresh.serial, 'the new key');
  const short = await alice.client.sendKey({ to: 'bob', mode: 'kdc', ttlMs: 1500 });
  await bob.waitFor((e) => e.event === 'key' && e.serial === short.serial, 'short key');
  await new Promise((r) => setTimeout(r, 2000));
  const e = await client(c, 'bob', 'verify-key', ['--serial', short.serial, '--json']);
  t.equal(e.code, 5);
  t.equal(json(e).verdict, 'expired');
  await t.rejects(alice.client.sendKey({ to: 'nobody' }), { code: 'peer_unavailable' });
  await t.rejects(alice.client.sendKey({ to: 'alice' }), { code: 'bad_request' });
  await alice.close();
  const rc = await admin(c, 'revoke-cert', ['--name', 'carol', '--reason', 'keyCompromise']);
  t.equal(rc.code, 0, rc.stderr);
  const revoked = await client(c, 'alice', 'send-key', ['--to', 'carol', '--mode', 'kdc', '--json']);
  t.equal(revoked.code, 3);
  t.equal(json<{ error: { code: string } }>(revoked).error.code, 'peer_revoked');
});
