import t from 'tap';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initCa } from '../../../server/ca/init.js';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { loadCredential } from '../../../server/ca/credentials.js';
import { parseCertificate } from '../../../shared/pki/x509.js';
import { parseCrl } from '../../../shared/pki/crl.js';
import { BACKDATE_MS } from '../../../shared/pki/clock-skew.js';
import { freshCa, openssl, PASSPHRASE } from './fixture.js';
import { tempDir } from '../../helpers/tmp.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

const mode = (p: string): number => statSync(p).mode & 0o777;

t.test('init creates the CA, KDC and admin credentials with private modes', async (t) => {
  const { dir, init } = await freshCa(t, { hosts: ['kdc.example.org', '192.0.2.7'], port: 9443 });
  t.equal(mode(dir), 0o700);
  for (const d of ['server', 'admin']) t.equal(mode(join(dir, d)), 0o700, `${d}/ is 0700`);
  for (const f of [
    'root_private_key.pem',
    'kds.sqlite',
    'server/key.pem',
    'server/cert.pem',
    'admin/key.pem',
    'admin/cert.pem',
  ]) {
    t.equal(mode(join(dir, f)), 0o600, `${f} is 0600`);
  }
  for (const f of ['root_ca.pem', 'root_crl.pem']) t.equal(mode(join(dir, f)), 0o644, `${f} is public`);
  t.notOk(existsSync(join(dir, 'ca', 'passphrase')), 'no passphrase file when one was supplied');
  t.notOk(
    readdirSync(dir).some((f) => f.endsWith('.tmp')),
    'no temporary files left',
  );

  const root = parseCertificate(readFileSync(join(dir, 'root_ca.pem'), 'utf8'));
  t.equal(root.fingerprint256, init.caFingerprint256);
  t.equal(root.keyBits, 2048);
  t.ok(root.isCA);
  t.ok(root.notAfter - root.notBefore >= 3650 * 86_400_000 - 1000, '10 years');
  const rootText = (await openssl(['x509', '-in', join(dir, 'root_ca.pem'), '-noout', '-text'])).stdout;
  t.match(rootText, /Basic Constraints: critical\s+CA:TRUE/);
  t.match(rootText, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
  t.match(rootText, /Subject Key Identifier/);

  // The root key is PKCS#8 encrypted (PBES2, AES-256-CBC) and opens with the passphrase only.
  const keyPem = readFileSync(join(dir, 'root_private_key.pem'), 'utf8');
  t.match(keyPem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  const asn1 = (await openssl(['asn1parse', '-in', join(dir, 'root_private_key.pem')])).stdout;
  t.match(asn1, /aes-256-cbc/);
  t.equal(
    (
      await openssl([
        'pkey',
        '-in',
        join(dir, 'root_private_key.pem'),
        '-passin',
        `pass:${PASSPHRASE}`,
        '-noout',
      ])
    ).code,
    0,
  );
  t.not(
    (await openssl(['pkey', '-in', join(dir, 'root_private_key.pem'), '-passin', 'pass:nope', '-noout']))
      .code,
    0,
  );

  // docs/cli.md promises the same for the KDC's and the admin's keys: an operator opens them with openssl.
  for (const file of ['server/key.pem', 'admin/key.pem']) {
    t.match(readFileSync(join(dir, file), 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/, file);
    const open = await openssl(['pkey', '-in', join(dir, file), '-passin', `pass:${PASSPHRASE}`, '-noout']);
    t.equal(open.code, 0, `${file} opens with the passphrase`);
  }

  const ca = join(dir, 'root_ca.pem');
  const v = await openssl([
    'verify',
    '-CAfile',
    ca,
    join(dir, 'server/cert.pem'),
    join(dir, 'admin/cert.pem'),
  ]);
  t.equal(v.code, 0, v.stderr);
  const kdcText = (await openssl(['x509', '-in', join(dir, 'server/cert.pem'), '-noout', '-text'])).stdout;
  t.match(kdcText, /TLS Web Server Authentication/);
  t.match(kdcText, /DNS:localhost, DNS:kdc\.example\.org, IP Address:127\.0\.0\.1, IP Address:192\.0\.2\.7/);
  t.match(kdcText, /URI:http:\/\/kdc\.example\.org:9443\/crl\.pem/);
  const kdc = loadCredential(dir, 'server', PASSPHRASE);
  t.equal(kdc.cert.subjectCN, 'kdc');
  t.equal(kdc.cert.keyBits, 2048);
  const admin = loadCredential(dir, 'admin', PASSPHRASE);
  t.equal(admin.cert.subjectCN, 'admin');
  t.equal(admin.cert.subjectOU, 'kds-admin');
  t.throws(() => loadCredential(dir, 'admin', 'wrong'), { code: 'bad_passphrase' });

  const crl = parseCrl(readFileSync(join(dir, 'root_crl.pem'), 'utf8'));
  t.equal(crl.crlNumber, 1n);
  t.equal(crl.entries.length, 0);
  t.ok(crl.signatureValid(root));
  const crlText = await openssl(['crl', '-in', join(dir, 'root_crl.pem'), '-noout', '-text', '-CAfile', ca]);
  t.match(crlText.stdout, /No Revoked Certificates/);
  t.match(crlText.stderr + crlText.stdout, /verify OK/);

  const opened = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
  t.teardown(() => opened.close());
  // The KDC's and the admin's certificates are issued concurrently: their order in the store is the
  // order their key generation finished in.
  const roles = (await opened.store.listCertificates())
    .map((c) => [c.name, c.role, c.status])
    .sort((a, b) => (a[0] === 'root-ca' ? -1 : b[0] === 'root-ca' ? 1 : b[0]!.localeCompare(a[0]!)));
  t.same(roles, [
    ['root-ca', 'ca', 'active'],
    ['kdc', 'server', 'active'],
    ['admin', 'admin', 'active'],
  ]);
  t.match(await opened.store.listAudit({ action: 'ca.init' }), [
    { subject: 'root-ca', detail: { caKeyBits: 2048 } },
  ]);
  t.equal(opened.crlUrl, 'http://kdc.example.org:9443/crl.pem');
});

t.test(
  'the root, KDC and admin certificates are backdated like every certificate the CA signs',
  async (t) => {
    // A client whose clock is a minute behind must be able to use a CA made a second ago: with the root
    // valid only from the second of `kds server init`, it could not enroll for that minute.
    const dir = tempDir(t);
    const now = Date.now();
    await initCa({ dataDir: dir, caKeyBits: 2048, passphrase: PASSPHRASE, now });
    const expected = Math.floor((now - BACKDATE_MS) / 1000) * 1000;
    for (const file of ['root_ca.pem', 'server/cert.pem', 'admin/cert.pem']) {
      const cert = parseCertificate(readFileSync(join(dir, file), 'utf8'));
      t.equal(cert.notBefore, expected, `${file}: notBefore ${BACKDATE_MS / 60_000} min before init`);
    }
    // openssl, as a relying party whose clock is 60 s behind, verifies both chains.
    const attime = String(Math.floor(now / 1000) - 60);
    const v = await openssl([
      'verify',
      '-attime',
      attime,
      '-CAfile',
      join(dir, 'root_ca.pem'),
      join(dir, 'server/cert.pem'),
      join(dir, 'admin/cert.pem'),
    ]);
    t.equal(v.code, 0, v.stderr + v.stdout);
    t.match(v.stdout, /server\/cert\.pem: OK[\s\S]*admin\/cert\.pem: OK/);
  },
);

t.test(
  'init --public-url: the distribution point of what the CA issues; a bad one writes nothing',
  async (t) => {
    const { dir, init } = await freshCa(t, {
      hosts: ['kdc.example.org'],
      publicUrl: 'https://pki.example.org/kds/',
    });
    t.equal(init.crlUrl, 'https://pki.example.org/kds/crl.pem', 'wins over the first --host');
    t.same(loadCredential(dir, 'server', PASSPHRASE).cert.crlUrls, ['https://pki.example.org/kds/crl.pem']);
    t.same(parseCrl(readFileSync(join(dir, 'root_crl.pem'), 'utf8')).freshestCrlUrls, [
      'https://pki.example.org/kds/delta-crl.pem',
    ]);
    const none = tempDir(t);
    await t.rejects(
      initCa({ dataDir: none, caKeyBits: 2048, passphrase: PASSPHRASE, publicUrl: 'kdc:8443' }),
      {
        code: 'bad_request',
        message: /--public-url "kdc:8443": must start with http/,
      },
    );
    t.same(readdirSync(none), [], 'nothing written');
  },
);

t.test('init refuses an existing CA unless --force, which keeps the old files aside', async (t) => {
  const { dir, init } = await freshCa(t);
  await t.rejects(initCa({ dataDir: dir, caKeyBits: 2048, passphrase: PASSPHRASE }), { code: 'ca_exists' });
  t.equal(
    parseCertificate(readFileSync(join(dir, 'root_ca.pem'), 'utf8')).fingerprint256,
    init.caFingerprint256,
  );
  const again = await initCa({ dataDir: dir, caKeyBits: 2048, passphrase: PASSPHRASE, force: true });
  t.not(again.caFingerprint256, init.caFingerprint256);
  t.ok(again.replacedDir);
  t.equal(mode(again.replacedDir!), 0o700);
  const old = parseCertificate(readFileSync(join(again.replacedDir!, 'root_ca.pem'), 'utf8'));
  t.equal(old.fingerprint256, init.caFingerprint256, 'previous CA kept, not deleted');
  t.ok(existsSync(join(again.replacedDir!, 'kds.sqlite')));
  const ca = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
  t.equal(ca.caCert.fingerprint256, again.caFingerprint256);
  t.equal(sqliteOf(ca.store).countCertificates(), 3, 'fresh store');
  await ca.close();
});

t.test('without a passphrase, one is generated into ca/passphrase (0600) with a warning', async (t) => {
  const dir = tempDir(t);
  const init = await initCa({ dataDir: dir, caKeyBits: 2048, env: {} });
  t.equal(init.passphraseSource, 'generated');
  const file = join(dir, 'ca', 'passphrase');
  t.equal(init.passphrasePath, file);
  t.equal(mode(file), 0o600);
  t.equal(mode(join(dir, 'ca')), 0o700);
  t.match(init.warnings.join('\n'), /generated a random CA passphrase/);
  const stored = readFileSync(file, 'utf8').trim();
  t.ok(stored.length >= 40);
  // Later commands find it on their own; the passphrase never appears in the store.
  const ca = await CertificateAuthority.open(dir, { env: {} });
  t.notOk(JSON.stringify(sqliteOf(ca.store).listAudit()).includes(stored));
  await ca.close();
});

t.test('--passphrase-file and KDS_CA_PASSPHRASE', async (t) => {
  const dir = tempDir(t);
  const pf = join(tempDir(t), 'pass');
  writeFileSync(pf, 'from a file\n', { mode: 0o600 });
  const init = await initCa({
    dataDir: dir,
    caKeyBits: 2048,
    passphraseFile: pf,
    env: { KDS_CA_PASSPHRASE: 'ignored' },
  });
  t.equal(init.passphraseSource, 'file', 'the flag beats the environment');
  const ca = await CertificateAuthority.open(dir, { env: { KDS_CA_PASSPHRASE: 'from a file' } });
  await ca.close();
  await t.rejects(CertificateAuthority.open(dir, { env: { KDS_CA_PASSPHRASE: 'from a file\n' } }), {
    code: 'bad_passphrase',
  });
});

t.test('bad options', async (t) => {
  const dir = tempDir(t);
  await t.rejects(initCa({ dataDir: dir, caKeyBits: 1024, passphrase: 'x' }), { code: 'bad_request' });
  await t.rejects(initCa({ dataDir: dir, port: 70000, passphrase: 'x' }), { code: 'bad_request' });
  await t.rejects(initCa({ dataDir: dir, hosts: ['bad host!'], passphrase: 'x' }), { code: 'bad_request' });
  t.notOk(existsSync(join(dir, 'kds.sqlite')), 'nothing created');
});
