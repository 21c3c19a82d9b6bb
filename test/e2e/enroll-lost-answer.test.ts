// An enrollment whose answer is lost after the commit, as real processes: two KDC nodes on one
// PostgreSQL store; node 1 dies by SIGKILL once an enrollment has committed and before it answers
// (KDS_TEST_CRASH_AT=enroll-committed). `kds client enroll --server node1,node2` sees the connection
// close, says so, sends the same request once more, which fails over to node 2, and node 2 answers with
// the certificate node 1 issued (docs/protocol.md "Lost answers"): one certificate in the store, the
// client's home holds it and works, the audit log says it was replayed. Without the replay the retry
// was `token_invalid` and the person needed a new token.
// Then one node on SQLite, killed the same way: the client's retry finds nobody (exit 8), its key and
// request stay staged in its home; once the KDC is back, the same command with the same token sends
// them again and gets the certificate issued before the crash.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initDataDir, runKds, startServer } from '../helpers/kds-process.js';
import { pgRawClient, pgTestSchema } from '../helpers/pg.js';
import { tempDir } from '../helpers/tmp.js';
import { issueToken } from './keys-helpers.js';
import { openHomeSession } from '../../client/session.js';
import { parseCertificate } from '../../shared/pki/x509.js';

t.setTimeout(240_000);

t.test('node 1 dies after the commit: the client recovers its certificate from node 2', async (t) => {
  const { url, schema } = pgTestSchema(t);
  const d1 = join(tempDir(t), 'node1');
  const d2 = join(tempDir(t), 'node2');
  const init = await runKds(
    ['server', 'init', '--data-dir', d1, '--store', url, '--ca-key-bits', '2048', '--json'],
    {
      timeoutMs: 120_000,
    },
  );
  t.equal(init.code, 0, `init on the store: ${init.stderr}`);
  const node1 = await startServer(t, d1, ['--store', url], {
    env: { KDS_TEST_CRASH_AT: 'enroll-committed' },
  });
  const node2 = await startServer(t, d2, ['--store', url]);

  const token = await issueToken(node1, 'alice');
  const home = join(tempDir(t), 'alice');
  const r = await runKds([
    'client',
    'enroll',
    '--name',
    'alice',
    '--token',
    token,
    '--server',
    `${node1.url},${node2.url}`,
    '--ca-fingerprint',
    node1.fingerprint,
    '--home',
    home,
    '--json',
  ]);
  const exited = await node1.stop();
  t.equal(exited.signal, 'SIGKILL', 'node 1 died at the crash point');
  t.equal(r.code, 0, `enrolled: ${r.stdout}${r.stderr}`);
  const out = JSON.parse(r.stdout) as { serialHex: string; lostAnswer?: string };
  t.equal(out.lostAnswer, 'session_closed', 'the result says the first answer was lost');
  t.match(
    r.stderr,
    /the answer to the enrollment was lost \(session_closed/,
    'and the person was told at once',
  );

  const list = await runKds(['cert', 'list', '--name', 'alice', '--data-dir', d2, '--store', url, '--json']);
  t.equal(list.code, 0, list.stderr);
  const certs = JSON.parse(list.stdout) as { serialHex: string }[];
  t.same(
    certs.map((c) => c.serialHex),
    [out.serialHex],
    'one certificate in the store: the one node 1 issued',
  );
  t.equal(parseCertificate(readFileSync(join(home, 'cert.pem'), 'utf8')).serialHex, out.serialHex);

  const raw = await pgRawClient(t, schema);
  const audit = await raw.query<{ action: string; detail: string }>(
    `SELECT action, detail FROM audit_log WHERE subject = 'alice' ORDER BY id`,
  );
  t.same(
    audit.rows.map((row) => row.action),
    ['token.create', 'token.consume', 'cert.issue', 'enroll.replayed'],
    'issued by node 1, replayed by node 2',
  );
  t.match(JSON.parse(audit.rows[3]!.detail), { serialHex: out.serialHex });

  const session = await openHomeSession({ name: 'alice', home, server: node2.url });
  t.equal(session.facts.identity.serialHex, out.serialHex, 'the recovered identity opens sessions');
  await session.close();
});

t.test('one node dies after the commit: the next run with the same token recovers', async (t) => {
  const dataDir = await initDataDir(t);
  const crashing = await startServer(t, dataDir, [], { env: { KDS_TEST_CRASH_AT: 'enroll-committed' } });
  const token = await issueToken(crashing, 'bob');
  const home = join(tempDir(t), 'bob');
  const args = [
    'client',
    'enroll',
    '--name',
    'bob',
    '--token',
    token,
    '--server',
    crashing.url,
    '--ca-fingerprint',
    crashing.fingerprint,
    '--home',
    home,
    '--json',
  ];
  const first = await runKds(args);
  t.equal((await crashing.stop()).signal, 'SIGKILL', 'the node died at the crash point');
  t.equal(first.code, 8, `no KDC for the retry: ${first.stdout}`);
  t.match(JSON.parse(first.stdout), { error: { code: 'unavailable' } });
  t.match(first.stderr, /the answer to the enrollment was lost/);

  const node = await startServer(t, dataDir, [], { port: Number(new URL(crashing.url).port) });
  const second = await runKds(args);
  t.equal(second.code, 0, `${second.stdout}${second.stderr}`);
  const out = JSON.parse(second.stdout) as { serialHex: string; resumed?: boolean };
  t.equal(out.resumed, true, 'the staged request was sent again');
  t.match(second.stderr, /an earlier run with this token did not get its answer/);
  const list = await runKds(['cert', 'list', '--name', 'bob', '--data-dir', dataDir, '--json']);
  t.same(
    (JSON.parse(list.stdout) as { serialHex: string }[]).map((c) => c.serialHex),
    [out.serialHex],
    'one certificate: the one issued before the crash',
  );
  const session = await openHomeSession({ name: 'bob', home, server: node.url });
  t.equal(session.facts.identity.serialHex, out.serialHex);
  await session.close();
});
