// PostgreSQL going away under load (docs/deployment.md "Failures"), without touching the machine's real
// PostgreSQL (other tests use it): two real KDC nodes reach it through a TCP proxy in this process
// (test/helpers/tcp-proxy.ts). Under load from clients of the client library (test/helpers/cluster-load.ts)
// the proxy cuts every connection and refuses new ones for a few seconds, then listens again. During the
// outage clients get `unavailable` (the CLI: exit 8, the code in its JSON, no stack trace), not a hang;
// both KDC processes stay up and say so on stderr, and /metrics still answers. After it, the same
// processes serve again (new handshakes, keys), and nothing acknowledged is lost or doubled.
import t from 'tap';
import { join } from 'node:path';
import { EXIT } from '../../shared/errors.js';
import { runKds, startServer, type RunResult, type ServerProcess } from '../helpers/kds-process.js';
import { PG_TEST_URL, pgRawClient, pgTestSchema } from '../helpers/pg.js';
import { tempDir } from '../helpers/tmp.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { checkLoad, LoadRun, unexpectedFailures } from '../helpers/cluster-load.js';
import { openKeyClient } from '../../client/keys/open.js';
import { enrollAll, listen } from './keys-helpers.js';
import { codeOf } from '../helpers/code-of.js';

t.setTimeout(180_000);

const SINK = 'sink';
const OUTAGE_MS = 4_000;

async function waitUntil(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const WORKERS = ['w1', 'w2', 'w3'];

t.test('PostgreSQL cut off under load: unavailable, then the same nodes serve again', async (t) => {
  const { url, schema } = pgTestSchema(t);
  const target = new URL(PG_TEST_URL);
  const proxy = await startTcpProxy(t, target.hostname, Number(target.port || '5432'));
  const proxied = new URL(url);
  proxied.host = `127.0.0.1:${proxy.port}`;
  const d1 = join(tempDir(t), 'node1');
  const d2 = join(tempDir(t), 'node2');
  const init = await runKds(
    ['server', 'init', '--data-dir', d1, '--store', url, '--ca-key-bits', '2048', '--json'],
    { timeoutMs: 120_000 },
  );
  t.equal(init.code, 0, `init on the store: ${init.stderr}`);
  const node1 = await startServer(t, d1, ['--store', proxied.toString()]);
  const node2 = await startServer(t, d2, ['--store', proxied.toString()]);
  const nodes = [node1, node2];
  const homes = await enrollAll(node1, [SINK, 'cli', 'keeper', 'watcher', ...WORKERS]);
  await (await openKeyClient({ name: SINK, home: homes[SINK]!, server: node2.url })).close();
  const raw = await pgRawClient(t, schema);
  // A session opened before the outage and kept through it (no request of its own while it lasts but one).
  const keeper = await openKeyClient({ name: 'keeper', home: homes.keeper!, server: node1.url });
  t.teardown(() => keeper.close().catch(() => undefined));
  let keeperDuring = '';
  // `kds client listen` through the outage: it must neither stop nor miss what comes after.
  const watcher = listen(t, { server: node1, homes }, 'watcher', `${node1.url},${node2.url}`);
  await watcher.waitFor((e) => e.event === 'connected', 'the listener connected');
  const both = `${node1.url},${node2.url}`;
  const sendKeyCli = (): Promise<RunResult> =>
    runKds([
      'client',
      'send-key',
      '--name',
      'cli',
      '--home',
      homes.cli!,
      '--server',
      both,
      '--to',
      SINK,
      '--mode',
      'kdc',
      '--json',
    ]);

  const run = new LoadRun();
  WORKERS.forEach((name, i) =>
    run.keyWorker({
      name,
      home: homes[name]!,
      servers: i % 2 === 0 ? both : `${node2.url},${node1.url}`,
      peer: SINK,
    }),
  );
  run.enrollWorker({
    prefix: 'e',
    servers: both,
    dataDir: d1,
    homes: join(d1, 'clients'),
    caFingerprint: node1.fingerprint,
  });
  const acksOf = (w: string, since: number): number =>
    run.acks.filter((a) => a.seq >= since && a.worker === w).length;
  const stderrAt = (n: ServerProcess): number => n.stderr().length;

  let during: RunResult;
  let metrics: { status: number; text: string };
  let afterCli: RunResult;
  const logFrom: number[] = [];
  const outageLog: string[] = [];
  try {
    await run.waitFor(() => WORKERS.every((w) => acksOf(w, 0) >= 2), 'load before the outage');
    logFrom.push(stderrAt(node1), stderrAt(node2));
    const failedBefore = run.unacked.length;
    await proxy.cut();
    const cutAt = Date.now();
    await run.waitFor(
      () => WORKERS.every((w) => run.unacked.slice(failedBefore).some((u) => u.worker === w)),
      'failures during the outage',
    );
    // Held for a few seconds: long enough for new handshakes to be refused and for each node's periodic
    // store round (every 2 s) to run into the outage.
    await waitUntil(
      () =>
        Date.now() - cutAt >= OUTAGE_MS &&
        logFrom.every((from, i) => /store unavailable/.test(nodes[i]!.stderr().slice(from))),
      'the nodes to log the outage',
    );
    during = await sendKeyCli();
    keeperDuring = await codeOf(keeper.client.sendKey({ to: SINK, mode: 'kdc' }));
    const res = await fetch(`${node1.httpUrl}/metrics`);
    metrics = { status: res.status, text: await res.text() };
    const failuresDuring = run.unacked.slice(failedBefore);
    t.same(
      failuresDuring.filter((u) => u.code !== 'unavailable' && u.code !== 'session_closed'),
      [],
      `every failure during the outage is unavailable or a session it ended (${failuresDuring.length})`,
    );
    outageLog.push(...nodes.map((n, i) => n.stderr().slice(logFrom[i])));
    await proxy.restore();
    const restoredAt = run.mark();
    await run.waitFor(
      () =>
        WORKERS.every((w) => acksOf(w, restoredAt) >= 2) &&
        run.acks.some((a) => a.seq >= restoredAt && a.kind === 'enroll'),
      'service after the outage',
    );
    afterCli = await sendKeyCli();
    await waitUntil(
      () =>
        nodes.every((n, i) =>
          /store available again/.test(n.stderr().slice(logFrom[i]! + outageLog[i]!.length)),
        ),
      'the nodes to log the recovery',
    );
  } finally {
    await run.stop();
  }
  t.comment(run.summary());

  await t.test('during the outage: a clear unavailable, no hang, no crash', async (t) => {
    t.equal(during.signal, null, 'the command ended by itself');
    t.equal(during.code, EXIT.unavailable, `exit 8: ${during.stdout}${during.stderr}`);
    t.match(JSON.parse(during.stdout), {
      error: {
        code: 'unavailable',
        message: `no KDC node answered: ${node1.url}: the database is unavailable: store read failed; ${node2.url}: the database is unavailable: store read failed`,
      },
    });
    t.notMatch(`${during.stdout}${during.stderr}`, /\n\s+at /, 'no stack trace');
    t.equal(keeperDuring, 'unavailable', 'a request on a session opened before: unavailable');
    t.equal(metrics.status, 200, 'GET /metrics still answers');
    t.match(metrics.text, /kds_requests_total\{type="[a-z.]+",code="unavailable"\} [1-9]/);
    t.match(metrics.text, /kds_handshakes_total\{[^}]*code="unavailable"[^}]*\} [1-9]/);
    for (const [i, node] of nodes.entries()) {
      t.equal(node.child.exitCode, null, `node ${i + 1} stayed up`);
      const lines = outageLog[i]!.split('\n').filter((l) => /store unavailable/.test(l));
      t.equal(lines.length, 1, `node ${i + 1} logged the outage once`);
      t.match(
        lines[0],
        /warning: store unavailable \(the database is unavailable: .*\): requests that need it fail/,
      );
      t.notMatch(outageLog[i], /internal error/, 'nothing taken for an internal error');
      t.notMatch(outageLog[i], /\n\s+at /, 'no stack trace in its log');
    }
  });

  await t.test('after the outage: the same processes serve again', async (t) => {
    for (const [i, node] of nodes.entries()) {
      t.equal(node.child.exitCode, null, `node ${i + 1} was never restarted`);
      t.match(node.stderr().slice(logFrom[i]! + outageLog[i]!.length), /warning: store available again/);
    }
    t.equal(afterCli.code, 0, `a new handshake and key: ${afterCli.stderr}`);
    t.ok(keeper.session.isOpen, 'the session opened before the outage is still open');
    const kept = await keeper.client.sendKey({ to: 'watcher', mode: 'kdc' });
    t.equal(kept.mode, 'kdc', 'and serves again');
    t.match(
      await watcher.waitFor((e) => e.event === 'key' && e.serial === kept.serial, 'the key after the outage'),
      { verdict: 'valid' },
      'the listener that lived through the outage receives it',
    );
    // Across nodes after the outage: node 2's announcement reaches the watcher on node 1 only if node 1's
    // listening connection came back (a delivery is never polled while a session stays open).
    t.equal(
      watcher.events.filter((e) => e.event === 'connected').length,
      1,
      'the listener kept its one session on node 1',
    );
    const other = await openKeyClient({ name: 'cli', home: homes.cli!, server: node2.url });
    try {
      const across = await other.client.sendKey({ to: 'watcher', mode: 'kdc' });
      t.match(
        await watcher.waitFor((e) => e.event === 'key' && e.serial === across.serial, 'the key from node 2'),
        { verdict: 'valid' },
        'a key sent through node 2 after the outage reaches the listener on node 1',
      );
    } finally {
      await other.close();
    }
    t.notOk(
      watcher.events.some((e) => e.event === 'stopped'),
      `the listener never stopped: ${JSON.stringify(watcher.events.filter((e) => e.event !== 'key'))}`,
    );
    const { serial } = JSON.parse(afterCli.stdout) as { serial: string };
    const stored = await raw.query(
      `SELECT k.state, (SELECT count(*)::int FROM pending_deliveries d WHERE d.key_serial = k.serial) AS n
       FROM sym_keys k WHERE k.serial = $1`,
      [serial],
    );
    t.same(stored.rows, [{ state: 'active', n: 1 }], 'its key is stored, with one delivery');
    t.same(unexpectedFailures(run, []), [], 'no failure other than unanswered ones');
    for (const c of await checkLoad(raw, run, { sink: SINK, keyWorkers: WORKERS }))
      t.same(c.problems, [], c.what);
    const verify = await runKds(['admin', 'audit', 'verify', '--data-dir', d2, '--store', url, '--json']);
    t.equal(verify.code, 0, `the audit chain verifies: ${verify.stdout}${verify.stderr}`);
  });
});
