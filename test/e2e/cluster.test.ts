// Two KDC nodes on one PostgreSQL store, as real processes (docs/deployment.md): the second starts from an
// empty data directory (the encrypted credentials come from the store), an enrollment token made through
// node 1 is redeemed on node 2, a token redeemed on both nodes at once gives one certificate, and a
// revocation made on node 1 is refused by node 2's handshakes and listed on the CRL node 2 serves.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminToken, runKds, startServer, type ServerProcess } from '../helpers/kds-process.js';
import { pgTestSchema } from '../helpers/pg.js';
import { tempDir } from '../helpers/tmp.js';
import { parseCrl } from '../../shared/pki/crl.js';

t.setTimeout(240_000);

async function enroll(node: ServerProcess, name: string, token: string, home: string) {
  return runKds([
    'client',
    'enroll',
    '--name',
    name,
    '--token',
    token,
    '--server',
    node.url,
    '--ca-fingerprint',
    node.fingerprint,
    '--home',
    home,
    '--json',
  ]);
}

t.test('two nodes on one PostgreSQL store', async (t) => {
  const { url } = pgTestSchema(t);
  const d1 = join(tempDir(t), 'node1');
  const d2 = join(tempDir(t), 'node2');

  const init = await runKds(
    ['server', 'init', '--data-dir', d1, '--store', url, '--ca-key-bits', '2048', '--json'],
    {
      timeoutMs: 120_000,
    },
  );
  t.equal(init.code, 0, `init on the store: ${init.stderr}`);

  const node1 = await startServer(t, d1, ['--store', url]);
  const node2 = await startServer(t, d2, ['--store', url]);

  await t.test('the second node starts from an empty data directory with the store URL only', async (t) => {
    t.equal(node2.fingerprint, node1.fingerprint, 'one CA');
    for (const file of ['root_private_key.pem', join('server', 'cert.pem'), join('server', 'key.pem')]) {
      t.equal(
        readFileSync(join(d2, file), 'utf8'),
        readFileSync(join(d1, file), 'utf8'),
        `${file} from the store`,
      );
    }
    t.match(
      readFileSync(join(d2, 'root_private_key.pem'), 'utf8'),
      /ENCRYPTED PRIVATE KEY/,
      'still encrypted',
    );
  });

  await t.test('a token made through node 1 is redeemed on node 2', async (t) => {
    const token = await adminToken(node1, 'alice');
    const r = await enroll(node2, 'alice', token, join(d2, 'clients', 'alice'));
    t.equal(r.code, 0, r.stderr);
  });

  await t.test('one token redeemed on both nodes at once gives one certificate', async (t) => {
    const token = await adminToken(node1, 'bob');
    const [a, b] = await Promise.all([
      enroll(node1, 'bob', token, join(d1, 'clients', 'bob-a')),
      enroll(node2, 'bob', token, join(d2, 'clients', 'bob-b')),
    ]);
    t.same([a.code, b.code].sort(), [0, 7], `one enrolled, one refused: ${a.stderr}${b.stderr}`);
    const loser = a.code === 0 ? b.stdout + b.stderr : a.stdout + a.stderr;
    t.match(loser, /token_invalid|already_active/, loser);
    const list = await runKds(['cert', 'list', '--name', 'bob', '--data-dir', d1, '--store', url, '--json']);
    t.equal(list.code, 0, list.stderr);
    t.equal((JSON.parse(list.stdout) as unknown[]).length, 1, 'one certificate for bob in the store');
  });

  await t.test('a revocation on node 1 is refused by node 2 and on the CRL node 2 serves', async (t) => {
    const home = join(d2, 'clients', 'alice');
    const statusOnNode2 = () =>
      runKds(['client', 'status', '--name', 'alice', '--home', home, '--server', node2.url, '--json']);
    const before = await statusOnNode2();
    t.equal(before.code, 0, `alice works on node 2: ${before.stderr}`);
    const revoke = await runKds([
      'cert',
      'revoke',
      '--name',
      'alice',
      '--reason',
      'keyCompromise',
      '--data-dir',
      d1,
      '--store',
      url,
      '--json',
    ]);
    t.equal(revoke.code, 0, revoke.stderr);
    const after = await statusOnNode2();
    t.equal(after.code, 3, `node 2 refuses the revoked certificate: ${after.stderr}`);
    const res = await fetch(`${node2.httpUrl}/crl.pem`);
    const crl = parseCrl(await res.text());
    const revoked = JSON.parse(revoke.stdout) as { serialHex: string; crlNumber: number };
    t.ok(
      crl.entries.some((e) => e.serialHex === revoked.serialHex),
      `node 2 serves CRL ${crl.crlNumber} listing it`,
    );
    t.ok(crl.crlNumber >= BigInt(revoked.crlNumber), 'the latest CRL number');
  });
});
