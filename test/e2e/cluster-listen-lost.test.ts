// A node's listening connection dropped alone (docs/deployment.md "Failures"): two real KDC nodes on one
// PostgreSQL store; node 2's LISTEN backend is ended with pg_terminate_backend while the process and its
// pool of connections stay up. Node 2 must notice (one log line), LISTEN again on a new connection (one
// line when it is back), push the queued notices of the clients connected to it again, and carry the
// cross-node pushes afterwards: a key sent by alice through node 1 reaches bob listening on node 2, and a
// revocation made through node 1 closes carol's session on node 2.
//
// Node 2's connections carry an application_name of their own (in its store URL: node-postgres takes it
// from there), so that only its listening backend is ended. The nodes' periodic revocation sync is
// lengthened to 10 minutes: what reaches node 2's sessions can only have come by its notifications, and
// a key delivery has no periodic path at all.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { runKds, startServer } from '../helpers/kds-process.js';
import { pgRawClient, pgTestSchema } from '../helpers/pg.js';
import { tempDir } from '../helpers/tmp.js';
import { openHomeSession } from '../../client/session.js';
import { CLOSE } from '../../shared/errors.js';
import { admin, enrollAll, keyClient, listen, type Clients } from './keys-helpers.js';

t.setTimeout(240_000);

async function waitUntil(cond: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function within<T>(p: Promise<T>, what: string, timeoutMs = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

t.test('a node whose listening connection is dropped listens again and catches up', async (t) => {
  const { url, schema } = pgTestSchema(t);
  const app = `kds_t_node2_${randomBytes(4).toString('hex')}`;
  const d1 = join(tempDir(t), 'node1');
  const d2 = join(tempDir(t), 'node2');
  const init = await runKds(
    ['server', 'init', '--data-dir', d1, '--store', url, '--ca-key-bits', '2048', '--json'],
    { timeoutMs: 120_000 },
  );
  t.equal(init.code, 0, `init on the store: ${init.stderr}`);
  const slowSync = { env: { KDS_TEST_REVOCATION_SYNC_MS: '600000' } };
  const node1 = await startServer(t, d1, ['--store', url], slowSync);
  const node2 = await startServer(t, d2, ['--store', `${url}&application_name=${app}`], slowSync);
  const homes = await enrollAll(node1, ['alice', 'bob', 'carol', 'erin']);
  const on1: Clients = { server: node1, homes };
  const on2: Clients = { server: node2, homes };
  const raw = await pgRawClient(t, schema);
  const backends = async (): Promise<{ pid: number; query: string }[]> =>
    (
      await raw.query<{ pid: number; query: string }>(
        'SELECT pid, query FROM pg_stat_activity WHERE application_name = $1',
        [app],
      )
    ).rows;
  const listeners = async (): Promise<number[]> =>
    (await backends()).filter((b) => b.query.startsWith('LISTEN ')).map((b) => b.pid);

  const alice = await keyClient(t, on1, 'alice');
  const bob = listen(t, on2, 'bob');
  await bob.waitFor((e) => e.event === 'connected', 'bob connected to node 2');
  // erin's session on node 2 takes pushes and never acknowledges them: her notice stays queued, so the
  // catch-up after the reconnection pushes it to her again.
  const erin = await openHomeSession({ name: 'erin', home: homes.erin!, server: node2.url });
  t.teardown(() => erin.close().catch(() => undefined));
  const erinPushes: number[] = [];
  erin.onPush('key.delivered', (b) => erinPushes.push(Number(b.d)));
  const carol = await openHomeSession({ name: 'carol', home: homes.carol!, server: node2.url });
  t.teardown(() => carol.close().catch(() => undefined));

  const before = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
  t.match(
    await bob.waitFor((e) => e.event === 'key' && e.serial === before.serial, 'the key before the drop'),
    { from: 'alice', verdict: 'valid' },
    'before: a key through node 1 reaches bob on node 2',
  );
  await alice.client.sendKey({ to: 'erin', mode: 'kdc' });
  await waitUntil(() => erinPushes.length === 1, "erin's key before the drop");
  const queued = erinPushes[0]!;

  const [listening] = await listeners();
  t.ok(listening, `node 2 has its listening backend: ${JSON.stringify(await backends())}`);
  t.ok((await backends()).length >= 2, 'and pooled ones beside it');
  const stderrFrom = node2.stderr().length;
  const ended = await raw.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [listening]);
  t.same(ended.rows, [{ ok: true }], 'only the listening backend is ended');

  await waitUntil(
    () => /store notifications back/.test(node2.stderr().slice(stderrFrom)),
    'node 2 to say it listens again',
  );
  const log = node2.stderr().slice(stderrFrom);
  t.match(
    log,
    /warning: store notifications lost \(terminating connection due to administrator command\): .*reconnecting/,
    'the loss is logged with its cause',
  );
  t.match(log, /warning: store notifications back \(lost for about \d+ s\)/, 'and the return');
  t.notMatch(log, /store unavailable/, 'the rest of the store was never unavailable');
  const relistening = await listeners();
  t.equal(relistening.length, 1, 'node 2 listens again, on one connection');
  t.not(relistening[0], listening, 'a new one');

  await waitUntil(() => erinPushes.length >= 2, "erin's queued notice pushed again");
  t.same(
    erinPushes.slice(0, 2),
    [queued, queued],
    'the queued notice is pushed again after the reconnection',
  );

  const after = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
  t.match(
    await bob.waitFor((e) => e.event === 'key' && e.serial === after.serial, 'the key after the drop'),
    { from: 'alice', verdict: 'valid' },
    'after: a key through node 1 reaches bob on node 2 live',
  );

  const seen: string[] = [];
  carol.onPush('*', (_b, type) => seen.push(type));
  const revoke = await admin(on1, 'revoke-cert', ['--name', 'carol', '--reason', 'keyCompromise']);
  t.equal(revoke.code, 0, revoke.stderr);
  const closed = await within(carol.closed, "carol's session on node 2 to close");
  t.equal(closed.code, CLOSE.revoked, 'after: a revocation through node 1 closes the session on node 2');
  t.equal(closed.error?.code, 'cert_revoked');
  t.ok(seen.includes('cert.revoked'), `told why before the close: ${seen.join(', ')}`);

  t.notOk(
    bob.events.some((e) => e.event === 'stopped'),
    `bob's listener never stopped: ${JSON.stringify(bob.events.filter((e) => e.event !== 'key'))}`,
  );
  t.equal(node2.child.exitCode, null, 'node 2 stayed up');
});
