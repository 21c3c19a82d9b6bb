// Two KDC nodes on one PostgreSQL store, as real processes (docs/deployment.md): the second starts from an
// empty data directory (the encrypted credentials come from the store), an enrollment token made through
// node 1 is redeemed on node 2, a token redeemed on both nodes at once gives one certificate, pushes
// cross nodes (a key sent through node 1 reaches its receiver listening on node 2, and so do a key
// revocation and a certificate revocation, which closes the session on node 2), and a revocation made
// on node 1 is refused by node 2's handshakes and listed on the CRL node 2 serves.
//
// The nodes' periodic revocation sync is lengthened to 10 minutes (KDS_TEST_REVOCATION_SYNC_MS): what
// reaches a session already open on node 2 can only have come by the store's notifications. A key
// delivery has no periodic path at all (a listener is pushed to, never polls).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runKds, startServer, type ServerProcess } from '../helpers/kds-process.js';
import { pgTestSchema } from '../helpers/pg.js';
import { tempDir } from '../helpers/tmp.js';
import { parseCrl } from '../../shared/pki/crl.js';
import { openHomeSession } from '../../client/session.js';
import { CLOSE, EXIT, exitCodeFor, type ErrorCode } from '../../shared/errors.js';
import { admin, client, enrollAll, issueToken, json, listen, type Clients } from './keys-helpers.js';

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

  const slowSync = { env: { KDS_TEST_REVOCATION_SYNC_MS: '600000' } };
  const node1 = await startServer(t, d1, ['--store', url], slowSync);
  const node2 = await startServer(t, d2, ['--store', url], slowSync);

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
    const token = await issueToken(node1, 'alice');
    const r = await enroll(node2, 'alice', token, join(d2, 'clients', 'alice'));
    t.equal(r.code, 0, r.stderr);
  });

  await t.test('one token redeemed on both nodes at once gives one certificate', async (t) => {
    const token = await issueToken(node1, 'bob');
    const [a, b] = await Promise.all([
      enroll(node1, 'bob', token, join(d1, 'clients', 'bob-a')),
      enroll(node2, 'bob', token, join(d2, 'clients', 'bob-b')),
    ]);
    t.equal([a.code, b.code].filter((c) => c === 0).length, 1, `one enrolled: ${a.stderr}${b.stderr}`);
    const loser = a.code === 0 ? b : a;
    // Which refusal depends on when the winner committed: before the loser's token check (token_invalid,
    // exit 7), or while the loser signed (its re-check under the write lock: already_active, exit 1).
    const refused = (JSON.parse(loser.stdout) as { error: { code: ErrorCode } }).error.code;
    t.match(refused, /^(token_invalid|already_active)$/, loser.stdout);
    t.equal(loser.code, exitCodeFor(refused), `the exit code of ${refused}`);
    const list = await runKds(['cert', 'list', '--name', 'bob', '--data-dir', d1, '--store', url, '--json']);
    t.equal(list.code, 0, list.stderr);
    t.equal((JSON.parse(list.stdout) as unknown[]).length, 1, 'one certificate for bob in the store');
  });

  await t.test('pushes cross nodes: what is done through node 1 reaches dave on node 2', async (t) => {
    const homes = await enrollAll(node1, ['carol', 'dave']);
    const on1: Clients = { server: node1, homes };
    const on2: Clients = { server: node2, homes };
    const dave = listen(t, on2, 'dave');
    await dave.waitFor((e) => e.event === 'connected', 'dave connected to node 2');

    const kdcKey = await client(on1, 'carol', 'send-key', ['--to', 'dave', '--mode', 'kdc', '--json']);
    t.equal(kdcKey.code, 0, kdcKey.stderr);
    const kdcSerial = json<{ serial: string }>(kdcKey).serial;
    t.match(
      await dave.waitFor((e) => e.event === 'key' && e.serial === kdcSerial, 'the KDC-generated key'),
      { from: 'carol', mode: 'kdc', verdict: 'valid', state: 'active' },
      'a KDC-generated key created on node 1 is pushed live by node 2',
    );
    const e2eKey = await client(on1, 'carol', 'send-key', ['--to', 'dave', '--json']);
    t.equal(e2eKey.code, 0, e2eKey.stderr);
    const e2eSerial = json<{ serial: string }>(e2eKey).serial;
    t.match(
      await dave.waitFor((e) => e.event === 'key' && e.serial === e2eSerial, 'the end-to-end key'),
      { from: 'carol', mode: 'e2e', verdict: 'valid', state: 'active' },
      'an end-to-end key deposited on node 1 is pushed live by node 2',
    );
    t.equal(dave.events.filter((e) => e.event === 'key' && e.serial === kdcSerial).length, 1, 'pushed once');

    const revokeKey = await client(on1, 'carol', 'revoke-key', ['--serial', kdcSerial, '--json']);
    t.equal(revokeKey.code, 0, revokeKey.stderr);
    t.match(
      await dave.waitFor((e) => e.event === 'key.revoked' && e.serial === kdcSerial, 'the key revocation'),
      { state: 'revoked' },
      'a key revocation made on node 1 reaches the listener on node 2',
    );

    // A second session of dave on node 2, through the client library: the close code it is given.
    const session = await openHomeSession({ name: 'dave', home: homes.dave!, server: node2.url });
    const seen: string[] = [];
    session.onPush('*', (_b, type) => seen.push(type));
    const revokeCert = await admin(on1, 'revoke-cert', ['--name', 'dave', '--reason', 'keyCompromise']);
    t.equal(revokeCert.code, 0, revokeCert.stderr);
    const closed = await session.closed;
    t.equal(closed.code, CLOSE.revoked, 'closed by node 2 with the revocation close code');
    t.equal(closed.error?.code, 'cert_revoked');
    t.ok(seen.includes('cert.revoked'), `told why before the close: ${seen.join(', ')}`);
    t.match(
      await dave.waitFor((e) => e.event === 'stopped', 'the listener stopped'),
      { code: 'cert_revoked' },
      'the listener on node 2 was closed as revoked',
    );
    t.equal(await dave.exited, EXIT.revoked, `listen exits as revoked: ${dave.rest()}`);
    // The error that ends the stream is one JSON object on one line, like every event before it.
    t.match(dave.events.at(-1), { error: { code: 'cert_revoked' } }, 'the last line is the error');
    t.equal(dave.rest(), '', 'no line of stdout that is not a whole JSON object');
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
