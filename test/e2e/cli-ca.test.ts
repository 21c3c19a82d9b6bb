// The CA from the command line, as a user runs it: real `node bin/kds.js` processes on a temp data dir.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseJson, runKds } from '../helpers/kds-process.js';
import { opensslCsr } from '../helpers/openssl-csr.js';
import { tempDir } from '../helpers/tmp.js';

const work = tempDir(t);
const data = join(work, 'certs');
const dd = ['--data-dir', data];

t.test('init, issue, show, verify, revoke, verify again, crl show', { timeout: 300_000 }, async (t) => {
  const init = await runKds([
    'server',
    'init',
    '--ca-key-bits',
    '2048',
    '--host',
    'kdc.test',
    '--json',
    ...dd,
  ]);
  t.equal(init.code, 0, init.stderr);
  const summary = parseJson<{ caFingerprint256: string; crlUrl: string; passphraseSource: string }>(init);
  t.match(summary.caFingerprint256, /^[0-9a-f]{64}$/);
  t.equal(summary.crlUrl, 'http://kdc.test:8443/crl.pem');
  t.equal(summary.passphraseSource, 'env');
  t.equal(statSync(join(data, 'root_private_key.pem')).mode & 0o777, 0o600);

  const again = await runKds(['server', 'init', '--ca-key-bits', '2048', ...dd]);
  t.equal(again.code, 1);
  t.match(again.stderr, /error \[ca_exists\]/);

  // A CSR from openssl, certified by the CLI.
  const csr = opensslCsr(work, 'alice');
  const out = join(work, 'alice.pem');
  const issued = await runKds(['cert', 'issue', '--csr', csr, '--name', 'alice', '--out', out, ...dd]);
  t.equal(issued.code, 0, issued.stderr);
  t.match(issued.stdout, /issued client certificate for alice/);
  t.match(readFileSync(out, 'utf8'), /^-----BEGIN CERTIFICATE-----/);

  const show = await runKds(['cert', 'show', out, '--json', ...dd]);
  t.equal(show.code, 0, show.stderr);
  const shown = parseJson<{
    subjectCN: string;
    serialHex: string;
    key: { bits: number };
    extKeyUsage: string[];
    fingerprint256: string;
  }>(show);
  t.equal(shown.subjectCN, 'alice');
  t.equal(shown.key.bits, 2048);
  t.same(shown.extKeyUsage, ['clientAuth']);
  const opensslFp = execFileSync('openssl', ['x509', '-in', out, '-noout', '-fingerprint', '-sha256'], {
    encoding: 'utf8',
  });
  t.equal(shown.fingerprint256, opensslFp.split('=')[1]!.trim().replace(/:/g, '').toLowerCase());
  const human = await runKds(['cert', 'show', out, ...dd]);
  t.match(human.stdout, /Subject:\s+CN=alice/);
  t.match(human.stdout, /Key Usage \(critical\): digitalSignature/);

  const ok = await runKds(['cert', 'verify', out, ...dd], { env: { KDS_CA_PASSPHRASE: undefined } });
  t.equal(ok.code, 0, 'verify needs no passphrase');
  t.match(ok.stdout, /^ok/);

  const revoke = await runKds(['cert', 'revoke', '--name', 'alice', '--reason', 'keyCompromise', ...dd]);
  t.equal(revoke.code, 0, revoke.stderr);
  t.match(revoke.stdout, /^revoked\n/);
  const twice = await runKds([
    'cert',
    'revoke',
    '--serial',
    shown.serialHex,
    '--reason',
    'keyCompromise',
    ...dd,
  ]);
  t.equal(twice.code, 0);
  t.match(twice.stdout, /^already revoked\n/);

  const bad = await runKds(['cert', 'verify', out, '--json', ...dd]);
  t.equal(bad.code, 3, 'exit 3: revoked');
  t.match(parseJson(bad), {
    code: 'revoked',
    reason: 'keyCompromise',
    serialHex: shown.serialHex,
    storeStatus: 'revoked',
    crl: {
      crlNumber: '2',
      deltaCrlNumber: '2',
      listedIn: 'full',
      reason: 'keyCompromise',
      signatures: 'valid',
    },
  });

  const crl = await runKds(['crl', 'show', '--json', ...dd]);
  t.equal(crl.code, 0, crl.stderr);
  const shownCrl = parseJson<{
    crlNumber: string;
    signature: string;
    entries: { serialHex: string; reason: string }[];
  }>(crl);
  t.equal(shownCrl.crlNumber, '2');
  t.equal(shownCrl.signature, 'valid');
  t.same(
    shownCrl.entries.map((e) => [e.serialHex, e.reason]),
    [[shown.serialHex, 'keyCompromise']],
  );
  // The delta CRL issued with complete CRL 2 (RFC 5280 5.2.3: same number, same information: empty).
  t.match(parseJson(crl), { delta: { crlNumber: '2', baseCrlNumber: '2', signature: 'valid', entries: [] } });
  const delta = await runKds(['crl', 'show', '--delta', '--json', ...dd]);
  t.equal(delta.code, 0, delta.stderr);
  t.match(parseJson(delta), { crlNumber: '2', baseCrlNumber: '2', source: /root_delta_crl\.pem$/ });
  const crlHuman = await runKds(['crl', 'show', ...dd]);
  t.match(crlHuman.stdout, /delta CRL .*root_delta_crl\.pem\n\s+number\s+2\n\s+base CRL\s+2/);
  t.equal(crlHuman.code, 0, crlHuman.stderr);
  t.match(crlHuman.stdout, new RegExp(`${shown.serialHex}\\s+\\S+\\s+keyCompromise`));

  const list = await runKds(['cert', 'list', '--json', ...dd]);
  // In order of issuance; init issues the KDC's and the admin's certificates concurrently (each is
  // committed when its signature is done), so those two may come in either order.
  const listed = parseJson<{ name: string; status: string }[]>(list).map((c) => `${c.name}:${c.status}`);
  t.same(
    [listed[0], [...listed.slice(1, 3)].sort(), listed[3], listed.length],
    ['root-ca:active', ['admin:active', 'kdc:active'], 'alice:revoked', 4],
    'cert list: root CA, the two init certificates, alice (revoked)',
  );
});

t.test('errors: usage exit 2, codes on stderr, wrong passphrase exit 7', { timeout: 240_000 }, async (t) => {
  // Independent invocations: run them side by side.
  const [noReason, both, unknown, flag, wrong, unknownSerial, missing, noCa] = await Promise.all([
    runKds(['cert', 'revoke', '--name', 'alice', ...dd]),
    runKds(['cert', 'revoke', '--name', 'a', '--serial', '01', '--reason', 'keyCompromise', ...dd]),
    runKds(['cert', 'frobnicate', ...dd]),
    runKds(['cert', 'list', '--ca-passphrase', 'x', ...dd]),
    runKds(['cert', 'revoke', '--name', 'kdc', '--reason', 'superseded', ...dd], {
      env: { KDS_CA_PASSPHRASE: 'wrong' },
    }),
    runKds(['cert', 'revoke', '--serial', '7f'.repeat(16), '--reason', 'superseded', '--json', ...dd]),
    runKds(['cert', 'verify', join(work, 'nope.pem'), ...dd]),
    runKds(['crl', 'show', '--data-dir', join(work, 'empty')]),
  ]);
  t.equal(noReason.code, 2);
  t.match(noReason.stderr, /error \[bad_request\]/);
  t.equal(both.code, 2, '--name and --serial conflict');
  t.equal(unknown.code, 2);
  t.equal(flag.code, 2, 'passphrases are refused as flags');
  t.equal(wrong.code, 7);
  t.match(wrong.stderr, /error \[bad_passphrase\]/);
  t.equal(unknownSerial.code, 6);
  t.match(parseJson(unknownSerial), { error: { code: 'unknown_serial' } });
  t.equal(missing.code, 1);
  t.match(missing.stderr, /error \[io_error\]/);
  t.equal(noCa.code, 1);
  t.match(noCa.stderr, /error \[ca_missing\]/);
});

t.test('every command has --help with an example', { timeout: 240_000 }, async (t) => {
  const commands = [
    ['server', 'init'],
    ['cert', 'issue'],
    ['cert', 'show'],
    ['cert', 'verify'],
    ['cert', 'revoke'],
    ['cert', 'list'],
    ['crl', 'show'],
  ];
  const results = await Promise.all(commands.map((cmd) => runKds([...cmd, '--help'])));
  commands.forEach((cmd, i) => {
    const r = results[i]!;
    t.equal(r.code, 0, cmd.join(' '));
    t.match(r.stdout, /Examples:/, `${cmd.join(' ')} has examples`);
    t.match(r.stdout, /--data-dir/);
  });
});

t.test('server init on another port says to start on that port', { timeout: 120_000 }, async (t) => {
  // The KDC and admin certificates init makes name the port init was given: a start on the default
  // port would leave them naming a URL nobody answers, so the next step it prints carries --port.
  // Without --host or --public-url, what the CA issues later names the address `server start` listens
  // on: init does not print a URL of its own for it.
  const other = join(tempDir(t), 'certs');
  const r = await runKds(['server', 'init', '--ca-key-bits', '2048', '--port', '18443', '--data-dir', other]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /distribution point set by `kds server start`: the address it listens on/);
  t.notMatch(r.stdout, /crl\.pem\n/);
  t.match(r.stdout, new RegExp(`next: kds server start --data-dir ${other} --port 18443\\n`));

  const json = join(tempDir(t), 'certs');
  const j = await runKds(['server', 'init', '--ca-key-bits', '2048', '--data-dir', json, '--json']);
  t.equal(j.code, 0, j.stderr);
  t.equal(parseJson<{ crlUrl: string | null }>(j).crlUrl, null, '--json: no URL before the start');
});
