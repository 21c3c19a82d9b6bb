// Enrollment tokens in the audit trail are HMACs under the deployment's audit key, never the token:
// the raw token is nowhere in the store's files nor in `kds admin audit --json`, yet `kds admin audit
// hash` (with the CA passphrase) computes the HMAC of a token the operator holds and finds the entries
// of its creation and its use. The chain still verifies.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { enroll } from '../../client/enroll.js';
import { startKdc } from '../../server/kdc/kdc.js';
import { initDataDir, KDS_BIN, kdsEnv, runKds, TEST_CA_PASSPHRASE } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

interface Entry {
  id: number;
  action: string;
  subject: string | null;
  detail: Record<string, unknown>;
}

t.test('an enrollment token is audited as its HMAC; audit hash finds it', async (t) => {
  const dir = await initDataDir(t);
  const kdc = await startKdc({ dataDir: dir, port: 0, passphrase: TEST_CA_PASSPHRASE, log: () => {} });
  let closed = false;
  t.teardown(async () => {
    if (!closed) await kdc.close();
  });
  const { token } = await kdc.ca.createEnrollmentToken({ name: 'alice', actor: 'admin:admin' });
  const other = (await kdc.ca.createEnrollmentToken({ name: 'bob', actor: 'admin:admin' })).token;
  await enroll({
    server: kdc.url,
    name: 'alice',
    token,
    caFingerprint: kdc.ca.caCert.fingerprint256,
    home: join(tempDir(t), 'alice'),
  });
  await kdc.close();
  closed = true;

  // The store's files (database, WAL, anything else in the data directory) never hold the token.
  const files = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  t.ok(
    files.some((f) => f.name === 'kds.sqlite'),
    'the database is among the files searched',
  );
  for (const f of files) {
    const bytes = readFileSync(join(f.parentPath, f.name));
    t.notOk(bytes.includes(token), `${f.name} does not hold the token`);
    t.notOk(bytes.includes(Buffer.from(token, 'utf16le')), `${f.name} does not hold it as UTF-16 either`);
  }

  const listed = await runKds(['admin', 'audit', '--data-dir', dir, '--json']);
  t.equal(listed.code, 0, listed.stderr);
  t.notOk(listed.stdout.includes(token), 'kds admin audit --json does not show the token');
  const entries = JSON.parse(listed.stdout) as Entry[];
  const aboutTokens = entries.filter((e) => e.action.startsWith('token.'));
  t.same(
    aboutTokens.map((e) => [e.action, e.subject]),
    [
      ['token.create', 'alice'],
      ['token.create', 'bob'],
      ['token.consume', 'alice'],
    ],
  );
  for (const e of aboutTokens) t.match(e.detail.tokenHmac, /^hmac-sha256:[0-9a-f]{64}$/);

  // The operator holds alice's token: the hash command names its two entries, and only those.
  const hashed = await runKds(['admin', 'audit', 'hash', '--data-dir', dir, '--value', token, '--json']);
  t.equal(hashed.code, 0, hashed.stderr);
  const report = JSON.parse(hashed.stdout) as { hmac: string; entries: Entry[] };
  t.same(
    report.entries.map((e) => [e.action, e.subject]),
    [
      ['token.create', 'alice'],
      ['token.consume', 'alice'],
    ],
  );
  const stored = aboutTokens.filter((e) => e.subject === 'alice').map((e) => e.detail.tokenHmac);
  t.same(stored, [report.hmac, report.hmac], 'the stored entries hold exactly the HMAC the command computed');
  t.not(
    aboutTokens.find((e) => e.subject === 'bob')?.detail.tokenHmac,
    report.hmac,
    "bob's token hashes apart",
  );
  t.notOk(hashed.stdout.includes(token), 'the command does not echo the value');

  // The same from stdin (out of ps and the shell history), in human form.
  const fromStdin = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [KDS_BIN, 'admin', 'audit', 'hash', '--data-dir', dir], {
      env: kdsEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(`${other}\n`);
  });
  t.equal(fromStdin.code, 0);
  const bobHmac = String(aboutTokens.find((e) => e.subject === 'bob')?.detail.tokenHmac);
  t.equal(fromStdin.out.split('\n')[0], bobHmac, "bob's token from stdin");
  t.match(fromStdin.out, /token\.create\s+bob/);

  // Without the CA passphrase there is no key: nobody can test guesses from the store alone.
  const noKey = await runKds(['admin', 'audit', 'hash', '--data-dir', dir, '--value', token], {
    env: { KDS_CA_PASSPHRASE: 'not-the-passphrase' },
  });
  t.not(noKey.code, 0);
  t.notOk(noKey.stdout.includes('hmac-sha256:'), 'a wrong passphrase gives no HMAC');
  const unknown = await runKds(['admin', 'audit', 'hash', '--data-dir', dir, '--value', 'not-a-token']);
  t.equal(unknown.code, 0);
  t.match(unknown.stdout, /no audit entry holds it/);

  const verified = await runKds(['admin', 'audit', 'verify', '--data-dir', dir]);
  t.equal(verified.code, 0, verified.stdout);
});
