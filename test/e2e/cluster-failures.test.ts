// A KDC node killed with SIGKILL under load (docs/deployment.md "Failures"): two real nodes on one
// PostgreSQL store serve clients of the client library (test/helpers/cluster-load.ts), each given both
// nodes with `--server a,b`, half of them node 1 first. Node 1 is killed mid-load. Its clients go on with
// node 2; every operation a client saw acknowledged is in the store exactly once (key, delivery, audit
// entry; certificate per redeemed token), what was in flight either completed once or left nothing, the
// audit chain verifies, and the recipient of the keys receives each acknowledged key once.
import t from 'tap';
import { join } from 'node:path';
import { runKds, startServer } from '../helpers/kds-process.js';
import { pgRawClient, pgTestSchema } from '../helpers/pg.js';
import { tempDir } from '../helpers/tmp.js';
import { checkLoad, LoadRun, unexpectedFailures } from '../helpers/cluster-load.js';
import { openKeyClient } from '../../client/keys/open.js';
import { enrollAll } from './keys-helpers.js';

t.setTimeout(180_000);

const SINK = 'sink';
const VIA_1 = ['w1', 'w2'];
const VIA_2 = ['w3', 'w4'];

t.test('node 1 killed under load: its clients fail over, nothing acknowledged lost or doubled', async (t) => {
  const { url, schema } = pgTestSchema(t);
  const d1 = join(tempDir(t), 'node1');
  const d2 = join(tempDir(t), 'node2');
  const init = await runKds(
    ['server', 'init', '--data-dir', d1, '--store', url, '--ca-key-bits', '2048', '--json'],
    { timeoutMs: 120_000 },
  );
  t.equal(init.code, 0, `init on the store: ${init.stderr}`);
  const node1 = await startServer(t, d1, ['--store', url]);
  const node2 = await startServer(t, d2, ['--store', url]);
  const homes = await enrollAll(node1, [SINK, ...VIA_1, ...VIA_2]);
  // The sink publishes its prekeys once, then stays away: its deliveries stay queued for the count.
  await (await openKeyClient({ name: SINK, home: homes[SINK]!, server: node2.url })).close();
  const raw = await pgRawClient(t, schema);

  const oneThenTwo = `${node1.url},${node2.url}`;
  const twoThenOne = `${node2.url},${node1.url}`;
  const run = new LoadRun();
  for (const name of VIA_1) run.keyWorker({ name, home: homes[name]!, servers: oneThenTwo, peer: SINK });
  for (const name of VIA_2) run.keyWorker({ name, home: homes[name]!, servers: twoThenOne, peer: SINK });
  const enrollOpts = { dataDir: d1, homes: join(d1, 'clients'), caFingerprint: node1.fingerprint };
  run.enrollWorker({ prefix: 'via1', servers: oneThenTwo, ...enrollOpts });
  run.enrollWorker({ prefix: 'via2', servers: twoThenOne, ...enrollOpts });
  const count = (pred: (a: (typeof run.acks)[number]) => boolean, since = 0): number =>
    run.acks.filter((a) => a.seq >= since && pred(a)).length;

  try {
    await run.waitFor(
      () =>
        [...VIA_1, ...VIA_2].every((w) => count((a) => a.worker === w) >= 2) &&
        count((a) => a.kind === 'enroll') >= 2,
      'load on both nodes',
    );
    t.ok(
      VIA_1.every((w) => count((a) => a.worker === w && a.node === node1.url) >= 2),
      'node 1 was serving its clients',
    );
    const killedAt = run.mark();
    t.equal((await node1.stop('SIGKILL')).signal, 'SIGKILL', 'node 1 killed');
    await run.waitFor(
      () =>
        VIA_1.every((w) => count((a) => a.worker === w && a.node === node2.url, killedAt) >= 3) &&
        count((a) => a.kind === 'enroll' && a.worker === 'via1', killedAt) >= 1,
      "node 1's clients served again",
    );
    // A reply node 1 sent just before it died may still be read after the kill: at most the one
    // operation each client had in flight, and none once that client is on node 2.
    const stale = [...VIA_1, ...VIA_2].flatMap((w) => {
      const mine = run.acks.filter((a) => a.seq >= killedAt && a.worker === w);
      const firstOn2 = mine.findIndex((a) => a.node === node2.url);
      const on1 = mine.filter((a) => a.node !== node2.url);
      return on1.length <= 1 && (firstOn2 < 0 || mine.slice(firstOn2).every((a) => a.node === node2.url))
        ? []
        : on1;
    });
    t.same(stale, [], 'after the kill the clients are served by node 2');
  } finally {
    await run.stop();
  }
  t.comment(run.summary());
  t.equal(node2.child.exitCode, null, 'node 2 kept running');
  t.same(unexpectedFailures(run, []), [], 'operations in flight at the kill ended unanswered, nothing else');
  t.ok(
    run.unacked.every((u) => !u.code.startsWith('not a KdsError')),
    'no client crashed on the lost node',
  );
  for (const c of await checkLoad(raw, run, { sink: SINK, keyWorkers: [...VIA_1, ...VIA_2] }))
    t.same(c.problems, [], c.what);

  const verify = await runKds(['admin', 'audit', 'verify', '--data-dir', d2, '--store', url, '--json']);
  t.equal(verify.code, 0, `the audit chain verifies: ${verify.stdout}${verify.stderr}`);

  // The recipient connects (to node 2, node 1 first in its list) and takes every queued key once.
  const sink = await openKeyClient({ name: SINK, home: homes[SINK]!, server: oneThenTwo });
  t.equal(sink.session.server, node2.url, 'the sink failed over too');
  await sink.client.idle();
  const received = new Map(sink.client.store.listKeys().map((k) => [k.serial, k]));
  await sink.close();
  const acked = run.acks.filter((a) => a.kind !== 'enroll');
  t.same(
    acked.filter((a) => received.get(a.id)?.owner !== a.worker),
    [],
    `the sink holds all ${acked.length} acknowledged keys`,
  );
  const left = await raw.query(`SELECT count(*)::int AS n FROM pending_deliveries WHERE recipient = $1`, [
    SINK,
  ]);
  t.equal(left.rows[0].n, 0, 'and its queue is empty');
});
