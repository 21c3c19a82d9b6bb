import t from 'tap';
import { readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { parseCrl } from '../../../shared/pki/crl.js';
import { derToPem, pemToDer } from '../../../shared/pki/pem.js';
import { freshCa, openssl, opensslCsr, PASSPHRASE } from './fixture.js';
import { tempDir } from '../../helpers/tmp.js';
import { TOKEN_INVALID_MESSAGE } from '../../../server/ca/tokens.js';
import { hugeExponentCsr } from '../../helpers/hostile-csr.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

const DAY = 86_400_000;
const { dir } = await freshCa(t, { hosts: ['kdc.example.org'], port: 9443 });
const csrDir = tempDir(t);
const ca = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
t.teardown(() => ca.close());

async function csrFor(
  name: string,
  extra: Parameters<typeof opensslCsr>[2] | undefined = undefined,
): Promise<string> {
  return opensslCsr(csrDir, `${name}-${Math.random().toString(16).slice(2)}.csr`, extra ?? { cn: name });
}

function counts(): { certs: number; audit: number; revocations: number } {
  return {
    certs: sqliteOf(ca.store).countCertificates(),
    audit: sqliteOf(ca.store).countAudit(),
    revocations: sqliteOf(ca.store).countRevocations(),
  };
}

t.test('issue from an openssl CSR: openssl verify accepts it, extensions as specified', async (t) => {
  const cert = await ca.issueFromCsr(await csrFor('alice'), { name: 'alice', actor: 'test' });
  t.match(cert.serialHex, /^[0-7][0-9a-f]{31}$/, '128-bit positive serial');
  const file = join(csrDir, 'alice.pem');
  writeFileSync(file, cert.pem);
  const v = await openssl(['verify', '-CAfile', join(dir, 'root_ca.pem'), file]);
  t.equal(v.code, 0, v.stderr);
  t.match(v.stdout, /: OK/);
  const text = (await openssl(['x509', '-in', file, '-noout', '-text'])).stdout;
  t.match(text, /Basic Constraints: critical\s+CA:FALSE/);
  t.match(text, /Key Usage: critical\s+Digital Signature\n/);
  t.match(text, /Extended Key Usage:\s+TLS Web Client Authentication/);
  t.match(text, /Subject Alternative Name:\s+DNS:alice/);
  t.match(text, /Subject Key Identifier/);
  t.match(text, /Authority Key Identifier/);
  t.match(text, /URI:http:\/\/kdc\.example\.org:9443\/crl\.pem/, 'CRL DP from init --host/--port');
  const record = await ca.certificateRecord(cert.serialHex);
  t.match(record, {
    name: 'alice',
    role: 'client',
    status: 'active',
    pem: cert.pem,
    notAfter: cert.notAfter,
  });
  t.equal(
    cert.notAfter - Date.now() < 30 * DAY + 5_000 && cert.notAfter - Date.now() > 30 * DAY - 60_000,
    true,
    '30 days',
  );
  t.equal(ca.verifyCertificateFile(cert.pem).code, 'ok');
});

t.test('revocation: openssl -crl_check rejects it, openssl crl shows serial, reason, number', async (t) => {
  const cert = await ca.issueFromCsr(await csrFor('bob'), { name: 'bob', actor: 'test' });
  const file = join(csrDir, 'bob.pem');
  writeFileSync(file, cert.pem);
  const before = ca.currentCrl().crlNumber;
  const seen: [string, string][] = [];
  ca.onRevoked((serialHex, name) => {
    seen.push([serialHex, name]);
  });
  const out = await ca.revoke({ name: 'bob' }, 'keyCompromise', 'test');
  t.match(out, {
    status: 'revoked',
    serialHex: cert.serialHex,
    name: 'bob',
    reason: 'keyCompromise',
    crlNumber: before + 1,
  });
  t.same(seen, [[cert.serialHex, 'bob']], 'listener ran before revoke returned');
  t.match(ca.revocationOf(cert.serialHex), { reason: 'keyCompromise' });
  t.equal(ca.verifyCertificateFile(cert.pem).code, 'revoked');

  const rootCrl = join(dir, 'root_crl.pem');
  t.equal(readFileSync(rootCrl, 'utf8'), ca.currentCrlPem(), 'root_crl.pem written before revoke returned');
  const v = await openssl([
    'verify',
    '-crl_check',
    '-CAfile',
    join(dir, 'root_ca.pem'),
    '-CRLfile',
    rootCrl,
    file,
  ]);
  t.not(v.code, 0);
  t.match(v.stdout + v.stderr, /certificate revoked/);
  const text = (await openssl(['crl', '-in', rootCrl, '-noout', '-text'])).stdout;
  t.match(text, new RegExp(`Serial Number: ${cert.serialHex.toUpperCase()}`));
  t.match(text, /CRL Reason Code:\s+Key Compromise/);
  t.match(text, new RegExp(`X509v3 CRL Number:\\s+${before + 1}\\n`));
  const sig = await openssl(['crl', '-in', rootCrl, '-noout', '-CAfile', join(dir, 'root_ca.pem')]);
  t.match(sig.stderr + sig.stdout, /verify OK/);

  const c = counts();
  const again = await ca.revoke({ serialHex: cert.serialHex.toUpperCase() }, 'unspecified', 'test');
  t.match(again, { status: 'already_revoked', reason: 'keyCompromise', crlNumber: before + 1 });
  t.same(counts(), c, 'revoking twice changes nothing');
  t.equal(ca.currentCrl().crlNumber, before + 1);
  t.equal(seen.length, 1);
});

t.test('bad CSRs: each gets its code and nothing is written to the store', async (t) => {
  const good = await csrFor('carol');
  const der = pemToDer(good, 'CERTIFICATE REQUEST');
  const flip = der.length - 8; // inside the signature BIT STRING
  der.writeUInt8(der.readUInt8(flip) ^ 0x01, flip);
  const badSignature = derToPem(der, 'CERTIFICATE REQUEST');
  const cases: [string, string | Promise<string>, string, string?][] = [
    ['garbage', 'hello, I am not a CSR', 'malformed_pem'],
    ['truncated PEM', good.slice(0, good.length / 2), 'malformed_pem'],
    ['wrong PEM type', readFileSync(join(dir, 'root_ca.pem'), 'utf8'), 'malformed_pem'],
    ['bad signature', badSignature, 'bad_csr_signature'],
    ['1024-bit key', csrFor('dave', { cn: 'dave', key: 'rsa:1024' }), 'weak_key', 'dave'],
    ['EC key', csrFor('erin', { cn: 'erin', key: 'ec' }), 'unsupported_key', 'erin'],
    ['bad name', csrFor('Bad_Name', { cn: 'Bad Name', san: null }), 'bad_name', 'Bad Name'],
    ['CN is another name', csrFor('mallory', { cn: 'mallory' }), 'name_mismatch', 'carol'],
    ['extra SAN', csrFor('frank', { cn: 'frank', san: 'DNS:frank,DNS:admin' }), 'name_mismatch', 'frank'],
    [
      'CA request',
      csrFor('grace', {
        cn: 'grace',
        addext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'],
      }),
      'forbidden_extension',
      'grace',
    ],
    ['reserved name', csrFor('kdc', { cn: 'kdc' }), 'bad_name', 'kdc'],
  ];
  for (const [what, csr, code, name] of cases) {
    const before = counts();
    await t.rejects(ca.issueFromCsr(await csr, { name: name ?? 'carol', actor: 'test' }), { code }, what);
    t.same(counts(), before, `${what}: no row written`);
  }
});

t.test('revoking unknown things', async (t) => {
  const before = counts();
  await t.rejects(ca.revoke({ serialHex: '7f'.repeat(16) }, 'keyCompromise', 'test'), {
    code: 'unknown_serial',
  });
  await t.rejects(ca.revoke({ serialHex: 'zz' }, 'keyCompromise', 'test'), { code: 'bad_request' });
  await t.rejects(ca.revoke({ name: 'nobody' }, 'keyCompromise', 'test'), { code: 'not_found' });
  await t.rejects(ca.revoke({ name: 'alice' }, 'removeFromCRL', 'test'), { code: 'bad_reason' });
  await t.rejects(ca.revoke({ name: 'alice' }, 'because', 'test'), { code: 'bad_reason' });
  await t.rejects(ca.revoke({ serialHex: ca.caCert.serialHex }, 'keyCompromise', 'test'), {
    code: 'bad_request',
  });
  t.same(counts(), before);
});

t.test('one active certificate per name; renew supersedes the old one', async (t) => {
  const first = await ca.issueFromCsr(await csrFor('heidi'), { name: 'heidi', actor: 'test' });
  const before = counts();
  await t.rejects(ca.issueFromCsr(await csrFor('heidi'), { name: 'heidi', actor: 'test' }), {
    code: 'already_active',
  });
  t.same(counts(), before, 'refused before a serial was reserved');
  const second = await ca.issue(await csrFor('heidi'), {
    name: 'heidi',
    renew: true,
    days: 90,
    actor: 'test',
  });
  t.equal(second.supersededSerialHex, first.serialHex);
  t.equal((await ca.certificateRecord(first.serialHex))!.status, 'superseded');
  t.equal(sqliteOf(ca.store).activeCertificate('heidi')!.serialHex, second.cert.serialHex);
  t.equal(second.capped, false);
  t.equal(second.cert.notAfter, (await ca.certificateRecord(second.cert.serialHex))!.notAfter);
  t.same(sqliteOf(ca.store).listAudit({ action: 'cert.renew' }).at(-1)!.detail.supersedes, first.serialHex);
});

t.test('validity: capped by the configured maximum and by the CA', async (t) => {
  const long = await ca.issue(await csrFor('ivan'), { name: 'ivan', days: 1000, actor: 'test' });
  t.equal(long.capped, true);
  t.ok(long.cert.notAfter <= Date.now() + 365 * DAY && long.cert.notAfter > Date.now() + 364 * DAY);
  const beyondCa = await ca.issue(await csrFor('judy'), {
    name: 'judy',
    validity: { notBefore: ca.caCert.notAfter - 10 * DAY, notAfter: ca.caCert.notAfter + 10 * DAY },
    actor: 'test',
  });
  t.equal(beyondCa.cert.notAfter, ca.caCert.notAfter, 'never outlives the CA');
  await t.rejects(ca.issueFromCsr(await csrFor('kim'), { name: 'kim', days: 0, actor: 'test' }), {
    code: 'bad_request',
  });
  await t.rejects(ca.issueFromCsr(await csrFor('kim'), { name: 'kim', days: -3, actor: 'test' }), {
    code: 'bad_request',
  });
});

t.test('verdicts: expired, unknown issuer, wrong usage', async (t) => {
  const expired = await ca.issueFromCsr(await csrFor('old'), {
    name: 'old',
    validity: { notBefore: Date.now() - 10 * DAY, notAfter: Date.now() - DAY },
    actor: 'test',
  });
  t.equal(ca.verifyCertificateFile(expired.pem).code, 'expired');
  const kdc = readFileSync(join(dir, 'server', 'cert.pem'), 'utf8');
  t.equal(ca.verifyCertificateFile(kdc, { usage: 'serverAuth' }).code, 'ok');
  t.equal(ca.verifyCertificateFile(kdc, { usage: 'clientAuth' }).code, 'wrong_usage');
  const other = await freshCa(t);
  const foreign = readFileSync(join(other.dir, 'admin', 'cert.pem'), 'utf8');
  t.equal(ca.verifyCertificateFile(foreign).code, 'unknown_issuer');
  t.equal(ca.verifyCertificateFile('garbage').code, 'malformed');
});

t.test('a reopened CA and a second process-like instance see every acknowledged revocation', async (t) => {
  const other = await CertificateAuthority.open(dir, { readOnly: true });
  t.teardown(() => other.close());
  const cert = await ca.issueFromCsr(await csrFor('liam'), { name: 'liam', actor: 'test' });
  t.equal(other.revocationOf(cert.serialHex), undefined);
  await ca.revoke({ serialHex: cert.serialHex }, 'affiliationChanged', 'test');
  // Lookups answer from memory; another process's revocation is read at the next sync (the KDC syncs
  // before every handshake check), when the store's change counter moved.
  t.equal(other.revocationOf(cert.serialHex), undefined, 'not before the next sync');
  t.equal(await other.syncRevocations(), 1);
  t.match(
    other.revocationOf(cert.serialHex),
    { reason: 'affiliationChanged' },
    'picked up through the change counter',
  );
  const announced: string[] = [];
  const third = await CertificateAuthority.open(dir, { readOnly: true });
  t.teardown(() => third.close());
  third.onRevoked((s) => {
    announced.push(s);
  });
  const next = await ca.issueFromCsr(await csrFor('mia'), { name: 'mia', actor: 'test' });
  await ca.revoke({ name: 'mia' }, 'superseded', 'test');
  t.equal(await third.syncRevocations(), 1);
  t.same(announced, [next.serialHex]);

  const reopened = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
  t.teardown(() => reopened.close());
  for (const r of sqliteOf(ca.store).listRevocations()) {
    t.match(reopened.crlStatusOf(r.serialHex), { reason: r.reason, revokedAt: r.revokedAt });
    // A renewal's entry (certificate status superseded) is on the CRL but is no revocation for the KDC.
    const renewed = (await ca.certificateRecord(r.serialHex))!.status === 'superseded';
    if (renewed) t.equal(reopened.revocationOf(r.serialHex), undefined, 'superseded: not a revocation');
    else t.match(reopened.revocationOf(r.serialHex), { reason: r.reason, revokedAt: r.revokedAt });
  }
  const crl = parseCrl(reopened.currentCrlPem());
  t.equal(crl.entries.length, sqliteOf(ca.store).countRevocations());
  t.ok(crl.signatureValid(ca.caCert));
});

t.test('root_crl.pem corrupted, truncated, missing or stale is rebuilt on open', async (t) => {
  const file = join(dir, 'root_crl.pem');
  const good = ca.currentCrlPem();
  const cases: [string, () => void, string][] = [
    ['garbage', () => writeFileSync(file, 'not a crl'), 'unreadable'],
    ['truncated', () => writeFileSync(file, good.slice(0, 200)), 'unreadable'],
    ['missing', () => rmSync(file), 'missing'],
    ['empty', () => writeFileSync(file, ''), 'unreadable'],
  ];
  // An older, validly signed CRL: the one from before the next revocation.
  const older = good;
  await ca.revoke({ name: 'alice' }, 'cessationOfOperation', 'test');
  cases.push(['stale', () => writeFileSync(file, older), 'stale']);
  for (const [what, damage, expected] of cases) {
    damage();
    const again = await CertificateAuthority.open(dir, { readOnly: true });
    t.equal(again.crlFileRepair, expected, what);
    await again.close();
    const text = readFileSync(file, 'utf8');
    t.equal(text, ca.currentCrlPem(), `${what}: rebuilt from the store`);
    t.ok(parseCrl(text).signatureValid(ca.caCert));
    t.equal(statSync(file).mode & 0o777, 0o644);
  }
  const fine = await CertificateAuthority.open(dir, { readOnly: true });
  t.equal(fine.crlFileRepair, 'ok');
  await fine.close();
});

t.test('the CRL is re-signed when past half its lifetime', async (t) => {
  const before = ca.currentCrl();
  const later = await CertificateAuthority.open(dir, {
    passphrase: PASSPHRASE,
    clock: () => before.thisUpdate + 4 * DAY,
  });
  t.teardown(() => later.close());
  const after = later.currentCrl();
  t.equal(after.crlNumber, before.crlNumber + 1);
  t.equal(after.nextUpdate, after.thisUpdate + 7 * DAY);
  t.same(
    parseCrl(after.pem).entries.map((e) => e.serialHex),
    parseCrl(before.pem).entries.map((e) => e.serialHex),
  );
  t.equal(await later.refreshCrl(), undefined, 'not due again');
  t.equal((await later.refreshCrl(true))!.crlNumber, before.crlNumber + 2);
});

t.test('opening: wrong passphrase, read-only, missing CA', async (t) => {
  await t.rejects(CertificateAuthority.open(dir, { passphrase: 'wrong' }), { code: 'bad_passphrase' });
  await t.rejects(CertificateAuthority.open(dir, { env: {} }), { code: 'config' }, 'no passphrase anywhere');
  const ro = await CertificateAuthority.open(dir, { readOnly: true });
  t.teardown(() => ro.close());
  await t.rejects(ro.issueFromCsr(await csrFor('nina'), { name: 'nina', actor: 'test' }), { code: 'config' });
  await t.rejects(ro.revoke({ name: 'alice' }, 'keyCompromise', 'test'), { code: 'config' });
  await t.rejects(CertificateAuthority.open(tempDir(t), { passphrase: PASSPHRASE }), { code: 'ca_missing' });
});

t.test('enrollment tokens: single use, bound to a name, a bad CSR does not burn them', async (t) => {
  const { token, expiresAt } = await ca.createEnrollmentToken({ name: 'oscar', actor: 'admin' });
  t.ok(expiresAt > Date.now());
  t.notOk(
    JSON.stringify(sqliteOf(ca.store).listEnrollmentTokens()).includes(token),
    'only the hash is stored',
  );
  await t.rejects(async () => ca.createEnrollmentToken({ name: 'admin', actor: 'admin' }), {
    code: 'bad_name',
  });
  const csr = await csrFor('oscar');
  await t.rejects(ca.enroll({ token, csrPem: 'junk', actor: 'oscar' }), {
    code: 'malformed_pem',
  });
  await t.rejects(ca.enroll({ token: 'x'.repeat(43), csrPem: csr, actor: 'oscar' }), {
    code: 'token_invalid',
  });
  await t.rejects(ca.enroll({ token, csrPem: await csrFor('peggy'), actor: 'peggy' }), {
    code: 'token_invalid',
  });
  await t.rejects(
    ca.enroll({ token, csrPem: await hugeExponentCsr('oscar'), actor: 'oscar' }),
    { code: 'unsupported_key', message: 'RSA public exponent must be 65537' },
    'a key with another exponent is refused before its signature is checked',
  );
  const issued = await ca.enroll({ token, csrPem: csr, actor: 'oscar' });
  t.equal(issued.cert.subjectCN, 'oscar');
  await t.rejects(
    ca.enroll({ token, csrPem: await csrFor('oscar'), actor: 'oscar' }),
    { code: 'token_invalid' },
    'used once: another key gets nothing',
  );
  // The same CSR again is a replay (test/server/ca/enroll-replay.test.ts), refused once revoked.
  await ca.revoke({ name: 'oscar' }, 'unspecified', 'test');
  await t.rejects(ca.enroll({ token, csrPem: csr, actor: 'oscar' }), { code: 'cert_revoked' }, 'revoked');
});

t.test('enrollment without a usable token reveals nothing about names or policy', async (t) => {
  // trent holds an active certificate. A bogus token must not reveal that (already_active), nor CSR
  // policy verdicts: the token is checked before anything else.
  await ca.issueFromCsr(await csrFor('trent'), { name: 'trent', actor: 'test' });
  const bogus = 'y'.repeat(43);
  await t.rejects(ca.enroll({ token: bogus, csrPem: await csrFor('trent'), actor: 'x' }), {
    code: 'token_invalid',
  });
  await t.rejects(ca.enroll({ token: bogus, csrPem: await csrFor('other'), actor: 'x' }), {
    code: 'token_invalid',
  });
  // Nothing of the CSR is read without a usable token: not its shape, not its key, not its signature.
  for (const [what, csrPem] of [
    ['garbage', 'junk'],
    ['a huge public exponent', await hugeExponentCsr('trent')],
  ] as const) {
    await t.rejects(
      ca.enroll({ token: bogus, csrPem }),
      { code: 'token_invalid', message: TOKEN_INVALID_MESSAGE },
      what,
    );
  }
  const { token } = await ca.createEnrollmentToken({ name: 'trent', actor: 'admin' });
  await t.rejects(ca.enroll({ token, csrPem: await csrFor('trent'), actor: 'trent' }), {
    code: 'already_active',
  });
});

t.test('enrollment tokens never start with a dash (a command line would read them as a flag)', async (t) => {
  for (let i = 0; i < 400; i++) {
    const { token } = await ca.createEnrollmentToken({ name: 'dash', actor: 'admin' });
    if (token.startsWith('-')) t.fail(`token ${i} starts with '-'`);
    if (!/^[A-Za-z0-9_][A-Za-z0-9_-]{42}$/.test(token)) t.fail(`token ${i} is not 43 base64url chars`);
  }
  t.pass('400 tokens checked');
});

t.test('audit log: every action recorded, no secrets', async (t) => {
  const actions = new Set(
    sqliteOf(ca.store)
      .listAudit()
      .map((r) => r.action),
  );
  for (const a of ['ca.init', 'cert.issue', 'cert.renew', 'cert.revoke', 'token.create', 'token.consume']) {
    t.ok(actions.has(a), a);
  }
  const all = JSON.stringify(sqliteOf(ca.store).listAudit());
  t.notOk(all.includes(PASSPHRASE));
  t.notOk(all.includes('PRIVATE KEY'));
  const revoke = sqliteOf(ca.store).listAudit({ action: 'cert.revoke' })[0]!;
  t.match(revoke, { actor: 'test', subject: 'bob', detail: { reason: 'keyCompromise' } });
});
