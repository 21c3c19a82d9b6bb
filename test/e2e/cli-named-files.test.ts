// The files a person names to `kds cert` and `kds crl`, as real processes meet them: a FIFO, a
// directory or a device where a CSR, certificate, CRL or passphrase file belongs is a usage error at
// once (no hang, no unbounded read); an --out that cannot be written is refused before the certificate
// is issued, and a write that still fails after issuing leaves the certificate on stdout, not lost.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initDataDir, parseJson, runKds, type RunResult } from '../helpers/kds-process.js';
import { opensslCsr } from '../helpers/openssl-csr.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(180_000);

const work = tempDir(t);
const fifo = join(work, 'fifo');
execFileSync('mkfifo', [fifo]);

const csrFor = (name: string): string => opensslCsr(work, name);

/** A usage error: exit 2, one `error [bad_request]` line, well before the 15 s a hang would take. */
function usageError(t: Test, r: RunResult, message: RegExp, what: string): void {
  t.equal(r.signal, null, `${what}: no hang`);
  t.equal(r.code, 2, `${what}: exit 2`);
  t.match(r.stderr, message, what);
  t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
  t.match(r.stderr, /^error \[bad_request\]: /, what);
}

t.test('a FIFO, a directory or a device is refused as the file to read', async (t) => {
  const dataDir = await initDataDir(t);
  const dd = ['--data-dir', dataDir];
  const csr = csrFor('fifo-user');
  const opts = { timeoutMs: 15_000 };
  const [show, verify, zero, crl, issue, passphrase] = await Promise.all([
    runKds(['cert', 'show', fifo, ...dd], opts),
    runKds(['cert', 'verify', work, ...dd], opts),
    runKds(['cert', 'show', '/dev/zero', ...dd], opts),
    runKds(['crl', 'show', fifo, ...dd], opts),
    runKds(['cert', 'issue', '--csr', fifo, '--name', 'fifo-user', ...dd], opts),
    runKds(['cert', 'issue', '--csr', csr, '--name', 'fifo-user', '--passphrase-file', fifo, ...dd], opts),
  ]);
  usageError(
    t,
    show,
    /the certificate file .*fifo is a FIFO \(named pipe\), not a regular file/,
    'cert show',
  );
  usageError(t, verify, /is a directory, not a regular file/, 'cert verify');
  usageError(t, zero, /\/dev\/zero is a character device/, 'cert show /dev/zero');
  usageError(t, crl, /the CRL file .*fifo is a FIFO/, 'crl show');
  usageError(t, issue, /the CSR file .*fifo is a FIFO/, 'cert issue --csr');
  usageError(t, passphrase, /the passphrase file .*fifo is a FIFO/, 'cert issue --passphrase-file');
  const list = parseJson<{ name: string }[]>(await runKds(['cert', 'list', '--json', ...dd]));
  t.notOk(
    list.some((c) => c.name === 'fifo-user'),
    'nothing was issued',
  );
});

t.test('cert issue --out: refused before issuing; a failed write prints the certificate', async (t) => {
  const dataDir = await initDataDir(t);
  const dd = ['--data-dir', dataDir];
  const csr = csrFor('hank');
  const issue = (out: string, ...more: string[]) =>
    runKds(['cert', 'issue', '--csr', csr, '--name', 'hank', '--out', out, ...more, ...dd]);
  writeFileSync(join(work, 'plain'), 'a file');
  mkdirSync(join(work, 'outdir'));
  const [missing, underFile, isDir] = await Promise.all([
    issue(join(work, 'nonexistent', 'x.pem')),
    issue(join(work, 'plain', 'x.pem')),
    issue(join(work, 'outdir')),
  ]);
  usageError(t, missing, /--out .*: the directory .*nonexistent does not exist/, 'missing directory');
  usageError(t, underFile, /plain is not a directory/, 'a file as the directory');
  usageError(t, isDir, /outdir: it is a directory/, 'a directory as the file');
  const before = parseJson<{ name: string }[]>(await runKds(['cert', 'list', '--json', ...dd]));
  t.notOk(
    before.some((c) => c.name === 'hank'),
    'nothing was issued',
  );

  // A name the check lets through but the write cannot create (the temporary file next to it would be
  // longer than a file name may be): the certificate is issued, so it must reach the user anyway.
  const long = join(work, `${'h'.repeat(240)}.pem`);
  const failed = await issue(long);
  t.equal(failed.code, 1, failed.stderr);
  t.match(failed.stdout, /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
  t.match(
    failed.stderr,
    /\nerror \[io_error\]: cannot write .*ENAMETOOLONG; the certificate was issued \(serial [0-9a-f]+\) and printed on stdout instead\n$/,
  );
  const after = parseJson<{ name: string; status: string }[]>(
    await runKds(['cert', 'list', '--json', ...dd]),
  );
  t.ok(
    after.some((c) => c.name === 'hank' && c.status === 'active'),
    'issued',
  );
  const shown = join(work, 'hank.pem');
  writeFileSync(shown, failed.stdout);
  const verify = await runKds(['cert', 'verify', shown, '--name', 'hank', ...dd]);
  t.equal(verify.code, 0, `the printed certificate is the issued one: ${verify.stdout}${verify.stderr}`);

  const json = await issue(long, '--renew', '--json');
  t.equal(json.code, 1);
  t.match(parseJson(json), {
    name: 'hank',
    pem: /^-----BEGIN CERTIFICATE-----/,
    error: { code: 'io_error', message: /printed on stdout instead/ },
  });
  t.notOk('out' in parseJson(json), 'no "out": nothing was written there');
});
