// Real processes on loopback: `kds server start` (port 0), `kds admin token`, `kds client enroll`,
// `kds client status`, revocation by the admin ending a live session before the command returns,
// a revoked client refused, and a restart that keeps everything.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCertificate } from '../../shared/pki/x509.js';
import { openHomeSession } from '../../client/session.js';
import { CLOSE, EXIT } from '../../shared/errors.js';
import {
  KDS_BIN,
  REPO_ROOT,
  adminToken,
  enrollClient,
  initDataDir,
  kdsEnv,
  parseJson,
  runKds,
  startServer,
  type RunResult,
  trackChild,
} from '../helpers/kds-process.js';
import { enrollAll, issueToken } from './keys-helpers.js';

t.setTimeout(230_000);

const dataDir = await initDataDir(t);
let server = await startServer(t, dataDir);

/** `kds <words...>` against the current server and data directory; `words` is split on spaces. */
function kds(words: string, ...extra: string[]): Promise<RunResult> {
  return runKds([...words.split(' '), '--data-dir', dataDir, '--server', server.url, ...extra]);
}

function errorCode(r: RunResult): string {
  return parseJson<{ error: { code: string } }>(r).error.code;
}

t.test('server start prints where it listens and the root fingerprint', async (t) => {
  t.match(server.url, /^ws:\/\/127\.0\.0\.1:\d+\/kds$/);
  t.match(server.httpUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.match(server.fingerprint, /^[0-9a-f]{64}$/);
  const res = await fetch(`${server.httpUrl}/healthz`);
  t.match(await res.json(), { ok: true, sessions: 0 });
});

t.test('token, enroll, status', async (t) => {
  const { serialHex } = await enrollClient(server, 'alice');
  t.match(serialHex, /^[0-9a-f]+$/);
  const r = await kds('client status --name alice --json');
  t.equal(r.code, 0, r.stderr);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON shape asserted field by field
  const out = parseJson<Record<string, any>>(r);
  t.equal(out.group, 'x25519');
  t.equal(out.cipher, 'AES-256-GCM');
  t.match(out.sessionId, /^[0-9a-f]{32}$/);
  t.equal(out.serverCertificate.subjectCN, 'kdc');
  t.same(out.identity, { name: 'alice', serialHex, role: 'client', expiresAt: out.certificate.notAfter });
  t.same(out.certStatus, { status: 'good' });

  const human = await kds('client status --name alice --dh ffdhe2048');
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, /DH group:\s+ffdhe2048/);
  t.match(human.stdout, /cert status:\s+good/);
});

t.test('enroll refuses a wrong CA fingerprint and a used token', async (t) => {
  const token = await issueToken(server, 'bob');
  const wrong = await kds(
    `client enroll --name bob --token ${token} --json`,
    '--ca-fingerprint',
    'ab'.repeat(32),
  );
  t.equal(wrong.code, EXIT.auth);
  t.equal(errorCode(wrong), 'ca_fingerprint_mismatch');
  const ok = await kds(
    `client enroll --name bob --token ${token} --key-bits 2048`,
    '--ca-fingerprint',
    server.fingerprint.toUpperCase(),
  );
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /enrolled bob/);
  t.match(ok.stdout, /\(pinned\)/);
  // A used token stays used, even once the name is free again.
  const revoked = await kds('admin revoke-cert --name bob --reason superseded');
  t.equal(revoked.code, 0, revoked.stderr);
  const reused = await kds(
    `client enroll --name bob --token ${token} --json`,
    '--ca-fingerprint',
    server.fingerprint,
  );
  t.equal(reused.code, EXIT.auth);
  t.equal(errorCode(reused), 'token_invalid');
  // A fresh token works (bob is used below); enrolled from the test process, as enrolling is checked above.
  await enrollAll(server, ['bob']);
});

t.test('trust on first use prints the fingerprint loudly', async (t) => {
  const token = await issueToken(server, 'tofu');
  const r = await kds(`client enroll --name tofu --token ${token}`);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /NO --ca-fingerprint GIVEN/);
  t.ok(r.stderr.includes(server.fingerprint));
});

t.test(
  'admin revoke-cert ends a live session before the command returns; the client is then refused',
  async (t) => {
    const session = await openHomeSession({ name: 'alice', dataDir, server: server.url });
    const events: string[] = [];
    session.onPush('*', (_b, type) => events.push(`push:${type}`));
    void session.closed.then((info) => events.push(`closed:${info.code}:${info.error?.code ?? ''}`));
    const r = await kds('admin revoke-cert --name alice --reason keyCompromise');
    events.push('revoke-returned');
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^revoked [0-9a-f]+ \(keyCompromise\)/);
    t.same(events, [
      'push:cert.revoked',
      'push:session.closing',
      `closed:${CLOSE.revoked}:cert_revoked`,
      'revoke-returned',
    ]);

    const refused = await kds('client status --name alice --json');
    t.equal(refused.code, EXIT.revoked);
    t.equal(errorCode(refused), 'cert_revoked');

    const status = await kds(`admin cert-status --serial ${session.facts.identity.serialHex} --json`);
    t.equal(status.code, EXIT.revoked);
    t.match(parseJson(status), { status: 'revoked', reason: 'keyCompromise' });
  },
);

t.test('client revoke-cert and cert-status', async (t) => {
  const homes = await enrollAll(server, ['carol']);
  const serial = parseCertificate(readFileSync(join(homes.carol!, 'cert.pem'), 'utf8')).serialHex;
  const viaBob = await kds(`client cert-status --name bob --serial ${serial}`);
  t.equal(viaBob.code, 0, viaBob.stderr);
  t.match(viaBob.stdout, /: good/);
  const revoke = await kds('client revoke-cert --name carol --reason cessationOfOperation --json');
  t.equal(revoke.code, 0, revoke.stderr);
  t.match(parseJson(revoke), { status: 'revoked', serial });
  const after = await kds(`client cert-status --name bob --serial ${serial}`);
  t.equal(after.code, EXIT.revoked);
  t.match(after.stdout, /revoked \(cessationOfOperation/);
  const unknown = await kds('client cert-status --name bob --serial AB:CD');
  t.equal(unknown.code, EXIT.notFound);
});

t.test('restart keeps everything; SIGTERM exits 0', async (t) => {
  const stopped = await server.stop('SIGTERM');
  t.equal(stopped.code, 0, 'clean exit on SIGTERM');
  server = await startServer(t, dataDir);
  const bob = await kds('client status --name bob --json');
  t.equal(bob.code, 0, bob.stderr);
  t.match(parseJson(bob), { identity: { name: 'bob' }, certStatus: { status: 'good' } });
  const alice = await kds('client status --name alice --json');
  t.equal(alice.code, EXIT.revoked, 'a revocation survives the restart');
  t.match(await adminToken(server, 'dave'), /^[A-Za-z0-9_-]{40,}$/);
});

t.test('human output of server start, and SIGINT exits 0', async (t) => {
  const dir = await initDataDir(t);
  const child = spawn(process.execPath, [KDS_BIN, 'server', 'start', '--port', '0', '--data-dir', dir], {
    cwd: REPO_ROOT,
    env: kdsEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (/root CA fingerprint: [0-9a-f]{64}\n/.test(out)) resolve();
    });
    child.on('exit', () => reject(new Error(`exited early: ${out}`)));
  });
  t.match(out, /^listening on ws:\/\/127\.0\.0\.1:\d+\/kds\n/);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGINT');
  t.equal(await exited, 0);
});

t.test('--help of the new commands shows examples', async (t) => {
  for (const args of [
    ['server', 'start'],
    ['client', 'enroll'],
  ]) {
    const r = await runKds([...args, '--help']);
    t.equal(r.code, 0, args.join(' '));
    t.match(r.stdout, /Examples:/, `${args.join(' ')} has examples`);
  }
});
