// Key distribution (docs/keys.md) with real processes, across time: bob offline then online (durable queue), server restarts
// in the middle (deliveries and records survive; `listen` reconnects with backoff), tampering with the
// stored record (mismatch), and a certificate revocation cascading to keys.
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { initDataDir } from '../helpers/kds-process.js';
import {
  admin,
  client,
  enrollAll,
  freePort,
  json,
  keyClient,
  listen,
  startServerOnPort,
  type Clients,
} from './keys-helpers.js';

t.setTimeout(200_000);

const dataDir = await initDataDir(t);
const port = await freePort();
const c: Clients = { server: await startServerOnPort(t, dataDir, port), homes: {} };
c.homes = await enrollAll(c.server, ['alice', 'bob']);

async function restartServer(sub: Test): Promise<void> {
  const stopped = await c.server.stop('SIGTERM');
  sub.equal(stopped.code, 0, 'the server exits cleanly on SIGTERM');
  // The new server lives as long as the file (the root test's teardown kills it), not the subtest.
  c.server = await startServerOnPort(t, dataDir, port);
}

t.test('bob offline, the server restarts, bob online: queued keys arrive and verify', async (t) => {
  // bob connects once (publishing his prekeys), then goes offline
  await (await keyClient(t, c, 'bob')).close();
  const alice = await keyClient(t, c, 'alice');
  const e2e = await alice.client.sendKey({ to: 'bob' });
  const kdc = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
  await alice.close();
  await restartServer(t);
  const bob = listen(t, c, 'bob');
  t.match(await bob.waitFor((e) => e.event === 'key' && e.serial === e2e.serial, 'the queued e2e key'), {
    verdict: 'valid',
    fingerprint: e2e.fingerprint,
  });
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
  ]);
  t.equal(sent.code, 0, sent.stderr);
  await bob.waitFor((e) => e.event === 'message' && e.text === 'after the restart', 'the message');
  t.equal(await bob.stop(), 0, 'listen exits 0 on SIGTERM');
});

t.test('listen reconnects with backoff across a server restart', async (t) => {
  const bob = listen(t, c, 'bob');
  await bob.waitFor((e) => e.event === 'connected', 'first connection');
  await restartServer(t);
  await bob.waitFor((e) => e.event === 'disconnected', 'the disconnect');
  await bob.waitFor(() => bob.events.filter((x) => x.event === 'connected').length >= 2, 'reconnected');
  const alice = await keyClient(t, c, 'alice');
  const k = await alice.client.sendKey({ to: 'bob' });
  t.match(await bob.waitFor((e) => e.event === 'key' && e.serial === k.serial, 'a key after reconnecting'), {
    verdict: 'valid',
  });
  await alice.close();
  await bob.stop();
});

t.test('tampering with the stored record makes verification say mismatch', async (t) => {
  const alice = await keyClient(t, c, 'alice');
  const k = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
  t.equal((await alice.client.verifyKey(k.serial)).verdict, 'valid');
  await alice.close();
  const db = new Database(join(dataDir, 'kds.sqlite'), { timeout: 10_000 });
  db.prepare('UPDATE sym_keys SET digest = ? WHERE serial = ?').run(Buffer.alloc(32, 0xee), k.serial);
  db.close();
  const v = await client(c, 'bob', 'verify-key', ['--serial', k.serial, '--json']);
  t.equal(v.code, 4);
  t.match(json(v), { verdict: 'mismatch', state: 'mismatch' }, 'bob stops trusting his copy');
});

t.test("revoking alice's certificate revokes her keys and tells bob", async (t) => {
  const bob = listen(t, c, 'bob');
  await bob.waitFor((e) => e.event === 'connected', 'connected');
  const alice = await keyClient(t, c, 'alice');
  const k = await alice.client.sendKey({ to: 'bob' });
  await alice.close();
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
    alices.every((x) => x.state === 'revoked'),
    'no key of alice stays usable',
  );
  t.ok(alices.some((x) => x.reason === 'certificateRevoked'));
  const b = await keyClient(t, c, 'bob');
  const v = await b.client.verifyKey(k.serial);
  t.match(v, { verdict: 'revoked', reason: 'certificateRevoked' });
  await t.rejects(b.client.sendKey({ to: 'alice' }), { code: 'peer_revoked' });
  await b.close();
  await bob.stop();
});
