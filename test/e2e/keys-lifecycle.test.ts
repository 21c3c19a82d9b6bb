// Issue 4 with real processes, across time: bob offline then online (durable queue), a server restart
// in the middle (deliveries and records survive; listen reconnects with backoff), tampering with the
// stored record (mismatch), and a certificate revocation cascading to keys.
import t from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { enrollClient, initDataDir } from '../helpers/kds-process.js';
import { admin, client, freePort, json, listen, startServerOnPort, type Clients } from './keys-helpers.js';

t.setTimeout(240_000);

const dataDir = await initDataDir(t);
const port = await freePort();
const c: Clients = { server: await startServerOnPort(t, dataDir, port), homes: {} };
for (const name of ['alice', 'bob']) c.homes[name] = (await enrollClient(c.server, name)).home;

async function restartServer(): Promise<void> {
  const stopped = await c.server.stop('SIGTERM');
  t.equal(stopped.code, 0, 'the server exits cleanly on SIGTERM');
  c.server = await startServerOnPort(t, dataDir, port);
}

t.test('bob offline, server restarts, bob online: queued keys arrive and verify', async (t) => {
  // bob connects once (publishing his prekeys), then goes offline
  t.equal((await client(c, 'bob', 'keys')).code, 0);
  const e2e = json<{ serial: string; fingerprint: string }>(
    await client(c, 'alice', 'send-key', ['--to', 'bob', '--json']),
  );
  const kdc = json<{ serial: string }>(
    await client(c, 'alice', 'send-key', ['--to', 'bob', '--mode', 'kdc', '--json']),
  );
  await restartServer();
  const bob = listen(t, c, 'bob');
  const got = await bob.waitFor((e) => e.event === 'key' && e.serial === e2e.serial, 'the queued e2e key');
  t.match(got, { verdict: 'valid', fingerprint: e2e.fingerprint });
  t.match(await bob.waitFor((e) => e.event === 'key' && e.serial === kdc.serial, 'the queued kdc key'), {
    verdict: 'valid',
  });
  // alice, offline meanwhile, learns at her next connect that bob verified: she can use the key
  const sent = await client(c, 'alice', 'send', [
    '--to',
    'bob',
    '--serial',
    e2e.serial,
    '--message',
    'after the restart',
    '--json',
  ]);
  t.equal(sent.code, 0, sent.stderr);
  await bob.waitFor((e) => e.event === 'message' && e.text === 'after the restart', 'the message');
  t.equal(await bob.stop(), 0, 'listen exits 0 on SIGTERM');
});

t.test('listen reconnects with backoff across a server restart', async (t) => {
  const bob = listen(t, c, 'bob');
  await bob.waitFor((e) => e.event === 'connected', 'first connection');
  await restartServer();
  await bob.waitFor((e) => e.event === 'disconnected', 'the disconnect');
  await bob.waitFor(
    (e) => e.event === 'connected' && bob.events.filter((x) => x.event === 'connected').length >= 2,
    'reconnected',
  );
  const k = json<{ serial: string }>(await client(c, 'alice', 'send-key', ['--to', 'bob', '--json']));
  t.match(await bob.waitFor((e) => e.event === 'key' && e.serial === k.serial, 'a key after reconnecting'), {
    verdict: 'valid',
  });
  await bob.stop();
});

t.test('tampering with the stored record makes verification say mismatch', async (t) => {
  const k = json<{ serial: string }>(
    await client(c, 'alice', 'send-key', ['--to', 'bob', '--mode', 'kdc', '--json']),
  );
  t.equal(json(await client(c, 'bob', 'verify-key', ['--serial', k.serial, '--json'])).verdict, 'valid');
  const db = new Database(join(dataDir, 'kds.sqlite'), { timeout: 10_000 });
  db.prepare('UPDATE sym_keys SET digest = ? WHERE serial = ?').run(Buffer.alloc(32, 0xee), k.serial);
  db.close();
  const v = await client(c, 'alice', 'verify-key', ['--serial', k.serial, '--json']);
  t.equal(v.code, 4);
  t.match(json(v), { verdict: 'mismatch', state: 'mismatch' }, 'alice stops trusting her copy');
  const send = await client(c, 'alice', 'send', [
    '--to',
    'bob',
    '--serial',
    k.serial,
    '--message',
    'x',
    '--json',
  ]);
  t.equal(
    json<{ error: { code: string } }>(send).error.code,
    'key_revoked',
    'a mismatched key is never used',
  );
});

t.test("revoking alice's certificate revokes her keys and tells bob", async (t) => {
  const bob = listen(t, c, 'bob');
  await bob.waitFor((e) => e.event === 'connected', 'connected');
  const k = json<{ serial: string }>(await client(c, 'alice', 'send-key', ['--to', 'bob', '--json']));
  await bob.waitFor((e) => e.event === 'key' && e.serial === k.serial, 'the key');
  const rc = await admin(c, 'revoke-cert', ['--name', 'alice', '--reason', 'keyCompromise']);
  t.equal(rc.code, 0, rc.stderr);
  t.match(
    await bob.waitFor((e) => e.event === 'key.revoked' && e.serial === k.serial, 'the cascade notice'),
    {
      reason: 'certificateRevoked',
    },
  );
  const all = json<{ keys: { owner: string; state: string; reason?: string }[] }>(
    await admin(c, 'keys', ['--json']),
  );
  const alices = all.keys.filter((x) => x.owner === 'alice');
  t.ok(alices.length >= 4);
  t.ok(
    alices.every((x) => x.state === 'revoked' || x.state === 'superseded'),
    'no key of alice stays usable',
  );
  t.equal(alices.find((x) => x.reason === 'certificateRevoked') !== undefined, true);
  const v = await client(c, 'bob', 'verify-key', ['--serial', k.serial, '--json']);
  t.equal(v.code, 3);
  t.equal(json(v).reason, 'certificateRevoked');
  const send = await client(c, 'bob', 'send-key', ['--to', 'alice', '--json']);
  t.equal(json<{ error: { code: string } }>(send).error.code, 'peer_revoked');
  await bob.stop();
});
