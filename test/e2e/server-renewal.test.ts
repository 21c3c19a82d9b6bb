// `kds server renew` with real processes: the KDC's own certificate renewed offline with the CA
// passphrase (new key, same name and subjectAltNames, the old certificate superseded on the CRL),
// `kds server start` warning when it expires within 7 days, and a crash between the issuance and the
// file swap (KDS_TEST_CRASH_AT=server-renew-issued) repaired at the next start.
import t from 'tap';
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { initDataDir, parseJson, runKds, startServer } from '../helpers/kds-process.js';
import { enrollAll } from './keys-helpers.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import { openHomeSession } from '../../client/session.js';

t.setTimeout(200_000);

const dataDir = await initDataDir(t);
const kdcCert = () => parseCertificate(readFileSync(join(dataDir, 'server', 'cert.pem'), 'utf8'));
const renew = (args: string[] = [], env?: Record<string, string>) =>
  runKds(['server', 'renew', '--data-dir', dataDir, '--json', ...args], env === undefined ? {} : { env });

t.test('renew with a short lifetime: start warns; renew again: no warning, clients accept it', async (t) => {
  const before = kdcCert();
  const r = await renew(['--days', '3']);
  t.equal(r.code, 0, r.stderr);
  const out = parseJson<{ serialHex: string; previousSerialHex: string; notAfter: number }>(r);
  t.equal(out.previousSerialHex, before.serialHex);
  const after = kdcCert();
  t.equal(after.serialHex, out.serialHex, 'server/cert.pem is the new certificate');
  t.not(after.publicKeyPem, before.publicKeyPem, 'a new key');
  t.same(after.sans, before.sans, 'the same subjectAltNames');
  t.ok(after.notAfter < Date.now() + 4 * 86_400_000, '3 days');

  const server = await startServer(t, dataDir);
  t.match(server.stderr(), /warning: the KDC certificate expires on .*kds server renew/);
  t.notMatch(server.stderr(), /warning: warning:/, 'one "warning:"');
  const homes = await enrollAll(server, ['alice']);
  const session = await openHomeSession({ name: 'alice', home: homes.alice!, server: server.url });
  t.equal(session.facts.serverCertificate.serialHex, out.serialHex, 'clients accept the renewed certificate');
  const status = await session.request('cert.status', { serial: before.serialHex });
  t.match(status, { status: 'revoked', reason: 'superseded' }, 'cert.status agrees with the CRL');
  await session.close();
  const crl = await (await fetch(`${server.httpUrl}/crl.pem`)).text();
  const delta = await fetch(`${server.httpUrl}/delta-crl.pem`);
  const { parseCrl } = await import('../../shared/pki/crl.js');
  const entries = [
    ...parseCrl(crl).entries,
    ...(delta.status === 200 ? parseCrl(await delta.text()).entries : []),
  ];
  t.match(
    entries.find((e) => e.serialHex === before.serialHex),
    { reason: 'superseded' },
    'the old KDC certificate is on the CRL as superseded',
  );
  await server.stop();

  const again = await renew();
  t.equal(again.code, 0, again.stderr);
  const server2 = await startServer(t, dataDir);
  t.notMatch(server2.stderr(), /warning: the KDC certificate/, 'no warning with a full lifetime');
  await server2.stop();
});

t.test('a crash after the issuance, before the files are swapped: the next start finishes it', async (t) => {
  const before = kdcCert();
  const crash = await renew([], { KDS_TEST_CRASH_AT: 'server-renew-issued' });
  t.equal(crash.signal, 'SIGKILL');
  t.ok(existsSync(join(dataDir, 'server', 'next-key.pem')), 'the new key was staged');
  t.equal(kdcCert().serialHex, before.serialHex, 'the old pair is still in place');
  const server = await startServer(t, dataDir);
  t.match(server.stderr(), /finished an interrupted `kds server renew`/);
  t.not(kdcCert().serialHex, before.serialHex, 'the new certificate is installed');
  t.notOk(existsSync(join(dataDir, 'server', 'next-key.pem')));
  const homes = await enrollAll(server, ['bob']);
  const session = await openHomeSession({ name: 'bob', home: homes.bob!, server: server.url });
  t.equal(session.facts.serverCertificate.serialHex, kdcCert().serialHex);
  await session.close();
  await server.stop();
});

t.test('usage errors before the CA is opened', async (t) => {
  const r = await renew(['--days', '0']);
  t.equal(r.code, 2);
  // --json: the usage error is JSON on stdout, like every other error.
  t.match(JSON.parse(r.stdout), {
    error: { code: 'bad_request', message: /--days: expected a whole number from 1 to 3650/ },
  });
});

t.test('a KDC whose own certificate is superseded or revoked refuses to start, naming the fix', async (t) => {
  const dir = await initDataDir(t);
  const start = () =>
    runKds(['server', 'start', '--data-dir', dir, '--host', '127.0.0.1', '--port', '0', '--json'], {
      timeoutMs: 30_000,
    });
  const serverCert = () => parseCertificate(readFileSync(join(dir, 'server', 'cert.pem'), 'utf8'));
  // server/ from before a `kds server renew` (an old backup, another node's copy).
  const old = join(dirname(dir), 'server-before-renew');
  cpSync(join(dir, 'server'), old, { recursive: true });
  const oldSerial = serverCert().serialHex;
  const r = await runKds(['server', 'renew', '--data-dir', dir]);
  t.equal(r.code, 0, r.stderr);
  rmSync(join(dir, 'server'), { recursive: true });
  cpSync(old, join(dir, 'server'), { recursive: true });

  const superseded = await start();
  t.equal(superseded.code, 2, superseded.stderr);
  t.match(
    JSON.parse(superseded.stdout),
    {
      error: {
        code: 'config',
        message: new RegExp(
          `server \\(serial ${oldSerial}\\) is revoked since .* \\(superseded\\): .*server is older than the store.*restore server/ .*or run \`kds server renew\``,
        ),
      },
    },
    'a superseded KDC certificate',
  );

  t.equal((await runKds(['server', 'renew', '--data-dir', dir])).code, 0);
  const server = await startServer(t, dir);
  t.equal((await server.stop()).code, 0, 'after a renew it starts');

  const revoke = await runKds([
    'cert',
    'revoke',
    '--data-dir',
    dir,
    '--name',
    'kdc',
    '--reason',
    'keyCompromise',
  ]);
  t.equal(revoke.code, 0, revoke.stderr);
  const revoked = await start();
  t.equal(revoked.code, 2, revoked.stderr);
  t.match(JSON.parse(revoked.stdout), {
    error: { code: 'config', message: /is revoked since .* \(keyCompromise\): run `kds server renew`/ },
  });
  const renewed = await runKds(['server', 'renew', '--data-dir', dir]);
  t.equal(renewed.code, 0, renewed.stderr);
  const again = await startServer(t, dir);
  t.equal((await again.stop()).code, 0, 'the fix it names works');
});
