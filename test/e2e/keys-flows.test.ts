// Issue 4 with real processes: server + alice + bob (+ carol) for both flows; verify valid; messages
// round-trip with the shared key; revocation by either party and by the admin with notices reaching
// both; a third enrolled client cannot fetch, verify or revoke someone else's key; the admin's
// revoked-key list; expiry.
import t from 'tap';
import { enrollClient, initDataDir, startServer } from '../helpers/kds-process.js';
import { admin, client, json, listen, type Clients } from './keys-helpers.js';

t.setTimeout(240_000);

const dataDir = await initDataDir(t);
const server = await startServer(t, dataDir);
const homes: Record<string, string> = {};
for (const name of ['alice', 'bob', 'carol']) homes[name] = (await enrollClient(server, name)).home;
const c: Clients = { server, homes };
const bob = listen(t, c, 'bob');
await bob.waitFor((e) => e.event === 'connected', 'connected');

t.test('end-to-end flow: bob receives and verifies, alice learns it, messages round-trip', async (t) => {
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
  t.notOk(JSON.stringify(bob.events).includes('"key":'), 'listen never prints key material');
  const v = await client(c, 'bob', 'verify-key', ['--serial', sent.serial, '--json']);
  t.equal(v.code, 0);
  t.equal(json(v).verdict, 'valid');
  const m = await client(c, 'alice', 'send', ['--to', 'bob', '--message', 'hi bob, end to end', '--json']);
  t.equal(m.code, 0, m.stderr);
  t.equal(json(m).serial, sent.serial, 'alice uses the key once bob verified it');
  const msg = await bob.waitFor(
    (e) => e.event === 'message' && e.text === 'hi bob, end to end',
    'the message',
  );
  t.match(msg, { from: 'alice', serial: sent.serial });
  const keys = json<{ keys: { serial: string; state: string; local: string; peer: string }[] }>(
    await client(c, 'alice', 'keys', ['--json']),
  );
  t.match(
    keys.keys.find((k) => k.serial === sent.serial),
    { state: 'active', local: 'active', peer: 'bob' },
  );
});

t.test('KDC-generated flow', async (t) => {
  const r = await client(c, 'alice', 'send-key', ['--to', 'bob', '--mode', 'kdc', '--json']);
  t.equal(r.code, 0, r.stderr);
  const sent = json<{ serial: string; fingerprint: string }>(r);
  const got = await bob.waitFor((e) => e.event === 'key' && e.serial === sent.serial, 'the kdc key');
  t.match(got, { mode: 'kdc', verdict: 'valid', fingerprint: sent.fingerprint });
  const m = await client(c, 'alice', 'send', [
    '--to',
    'bob',
    '--serial',
    sent.serial,
    '--message',
    'via the KDC key',
  ]);
  t.equal(m.code, 0, m.stderr);
  await bob.waitFor(
    (e) => e.event === 'message' && e.text === 'via the KDC key' && e.serial === sent.serial,
    'the message',
  );
});

t.test('a third client cannot fetch, verify, revoke or use the key (not_found)', async (t) => {
  const sent = json<{ serial: string }>(
    await client(c, 'alice', 'send-key', ['--to', 'bob', '--mode', 'kdc', '--json']),
  );
  const v = await client(c, 'carol', 'verify-key', ['--serial', sent.serial, '--json']);
  t.equal(v.code, 6);
  t.equal(json(v).verdict, 'not_found');
  const rv = await client(c, 'carol', 'revoke-key', ['--serial', sent.serial, '--json']);
  t.equal(rv.code, 6);
  t.equal(json<{ error: { code: string } }>(rv).error.code, 'not_found');
  const rot = await client(c, 'carol', 'rotate-key', ['--serial', sent.serial, '--json']);
  t.equal(json<{ error: { code: string } }>(rot).error.code, 'not_found', 'cannot fetch it to rotate it');
  const unknown = await client(c, 'carol', 'verify-key', ['--serial', '0'.repeat(32), '--json']);
  t.same(json(unknown).verdict, 'not_found', 'the same answer as for a serial that does not exist');
  const keys = json<{ keys: unknown[] }>(await client(c, 'carol', 'keys', ['--json']));
  t.same(keys.keys, []);
  t.equal(
    json(await client(c, 'bob', 'verify-key', ['--serial', sent.serial, '--json'])).verdict,
    'valid',
    'still valid for bob',
  );
});

t.test('revocation by either party and by the admin reaches both', async (t) => {
  const ids: string[] = [];
  for (let i = 0; i < 3; i += 1) {
    const s = json<{ serial: string }>(
      await client(c, 'alice', 'send-key', ['--to', 'bob', '--mode', 'kdc', '--json']),
    ).serial;
    await bob.waitFor((e) => e.event === 'key' && e.serial === s, 'key');
    ids.push(s);
  }
  const [byAlice, byBob, byAdmin] = ids as [string, string, string];
  const r1 = await client(c, 'alice', 'revoke-key', [
    '--serial',
    byAlice,
    '--reason',
    'keyCompromise',
    '--json',
  ]);
  t.equal(r1.code, 0, r1.stderr);
  t.match(await bob.waitFor((e) => e.event === 'key.revoked' && e.serial === byAlice, 'notice'), {
    reason: 'keyCompromise',
  });
  const r2 = await client(c, 'bob', 'revoke-key', ['--serial', byBob, '--reason', 'superseded', '--json']);
  t.equal(json(r2).status, 'revoked');
  const r3 = await admin(c, 'revoke-key', [
    '--serial',
    byAdmin,
    '--reason',
    'cessationOfOperation',
    '--json',
  ]);
  t.equal(r3.code, 0, r3.stderr);
  await bob.waitFor((e) => e.event === 'key.revoked' && e.serial === byAdmin, 'admin notice');
  for (const s of ids) {
    const v = await client(c, 'alice', 'verify-key', ['--serial', s, '--json']);
    t.equal(v.code, 3);
    t.match(json(v), { verdict: 'revoked', state: 'revoked' }, 'alice got the notice and deleted the key');
  }
  const send = await client(c, 'alice', 'send', [
    '--to',
    'bob',
    '--serial',
    byAdmin,
    '--message',
    'stale',
    '--json',
  ]);
  t.equal(send.code, 3);
  t.equal(json<{ error: { code: string } }>(send).error.code, 'key_revoked');
  const again = await client(c, 'bob', 'revoke-key', ['--serial', byAlice, '--json']);
  t.equal(json(again).status, 'already_revoked');
  const list = json<{ keys: { serial: string; reason: string; revokedAt: number }[] }>(
    await admin(c, 'keys', ['--revoked', '--json']),
  );
  t.same(
    ids.map((s) => list.keys.find((k) => k.serial === s)?.reason),
    ['keyCompromise', 'superseded', 'cessationOfOperation'],
    'the revoked-key list: serial, time, reason',
  );
  t.ok(list.keys.every((k) => typeof k.revokedAt === 'number'));
  const human = await admin(c, 'keys', ['--revoked']);
  t.match(human.stdout, byAlice);
});

t.test('rotation supersedes the old key; expiry gives expired', async (t) => {
  const old = json<{ serial: string }>(
    await client(c, 'alice', 'send-key', ['--to', 'bob', '--json']),
  ).serial;
  await bob.waitFor((e) => e.event === 'key' && e.serial === old, 'key');
  const rot = await client(c, 'alice', 'rotate-key', ['--serial', old, '--json']);
  t.equal(rot.code, 0, rot.stderr);
  const fresh = json<{ serial: string; replaces: string; mode: string }>(rot);
  t.match(fresh, { replaces: old, mode: 'e2e' });
  t.match(await bob.waitFor((e) => e.event === 'key.revoked' && e.serial === old, 'superseded'), {
    state: 'superseded',
  });
  await bob.waitFor((e) => e.event === 'key' && e.serial === fresh.serial, 'the new key');
  const v = await client(c, 'bob', 'verify-key', ['--serial', old, '--json']);
  t.equal(json(v).verdict, 'revoked');
  const short = json<{ serial: string }>(
    await client(c, 'alice', 'send-key', ['--to', 'bob', '--mode', 'kdc', '--ttl', '2s', '--json']),
  ).serial;
  await bob.waitFor((e) => e.event === 'key' && e.serial === short, 'short key');
  await new Promise((r) => setTimeout(r, 2500));
  const e = await client(c, 'bob', 'verify-key', ['--serial', short, '--json']);
  t.equal(e.code, 5);
  t.equal(json(e).verdict, 'expired');
});

t.test('sending to unknown or revoked peers fails with their codes', async (t) => {
  const unknown = await client(c, 'alice', 'send-key', ['--to', 'nobody', '--json']);
  t.equal(json<{ error: { code: string } }>(unknown).error.code, 'peer_unavailable');
  t.equal(unknown.code, 6);
  const self = await client(c, 'alice', 'send-key', ['--to', 'alice', '--json']);
  t.equal(json<{ error: { code: string } }>(self).error.code, 'bad_request');
  const rc = await admin(c, 'revoke-cert', ['--name', 'carol', '--reason', 'keyCompromise']);
  t.equal(rc.code, 0, rc.stderr);
  const revoked = await client(c, 'alice', 'send-key', ['--to', 'carol', '--mode', 'kdc', '--json']);
  t.equal(json<{ error: { code: string } }>(revoked).error.code, 'peer_revoked');
  t.equal(revoked.code, 3);
});
