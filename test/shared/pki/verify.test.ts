// shared/pki/verify.ts: every verdict code produced by a real certificate, the fixed check order,
// verdictToError, fingerprints.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateRsaKeyPair } from '../../../shared/crypto/rsa.js';
import { pooledKeyPair } from '../../helpers/template.js';
import { derToPem, pemToDer } from '../../../shared/pki/pem.js';
import { newSerialHex } from '../../../shared/pki/serial.js';
import {
  fingerprint,
  fingerprintMatches,
  normalizeFingerprint,
  verdictToError,
  verifyCertificate,
  type VerdictCode,
} from '../../../shared/pki/verify.js';
import { buildCertificate, parseCertificate } from '../../../shared/pki/x509.js';
import { tempDir } from '../../helpers/tmp.js';
import { DAY, issue, makeCa, openssl, signerFor, writeFiles } from './pki-fixtures.js';

const ca = await makeCa('kds verify root');
const root = parseCertificate(ca.certPem);
// The run's pooled leaf key (slot 17, test/helpers/template.ts): RSA keygen is slow.
const leafKeys = await pooledKeyPair(17);
const alicePem = await issue(ca, 'client', 'alice', leafKeys.publicKeyPem);
const alice = parseCertificate(alicePem);
const kdc = parseCertificate(
  await issue(ca, 'server', 'kdc', leafKeys.publicKeyPem, {
    sans: { dns: ['localhost'], ip: ['127.0.0.1'] },
  }),
);

t.test('ok, with the facts of the certificate', async (t) => {
  const v = verifyCertificate(alicePem, root, { usage: 'clientAuth', expectName: 'alice' });
  t.same(v, { code: 'ok', serialHex: alice.serialHex, subject: 'alice', detail: 'certificate is valid' });
  t.equal(verifyCertificate(alice, root).code, 'ok', 'ParsedCertificate input, default options');
  t.equal(verifyCertificate(alice.der, root, { usage: 'any' }).code, 'ok', 'DER input');
  t.equal(
    verifyCertificate(kdc, root, { usage: 'serverAuth', expectName: 'localhost' }).code,
    'ok',
    'server by DNS SAN',
  );
  t.equal(verifyCertificate(kdc, root, { expectName: '127.0.0.1' }).code, 'ok', 'server by IP SAN');
  t.equal(verifyCertificate(kdc, root, { expectName: 'kdc' }).code, 'ok', 'server by CN');
});

t.test('malformed', async (t) => {
  t.equal(verifyCertificate('garbage', root).code, 'malformed');
  t.equal(verifyCertificate(leafKeys.publicKeyPem, root).code, 'malformed', 'a key is not a certificate');
  const der = Buffer.from(alice.der);
  t.equal(verifyCertificate(der.subarray(0, der.length - 7), root).code, 'malformed', 'truncated');

  // A certificate with an unknown critical extension, issued by our CA key through openssl.
  const dir = tempDir(t);
  writeFiles(dir, {
    'root.pem': ca.certPem,
    'root.key': ca.keys.privateKeyPem,
    'ext.cnf':
      'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n1.3.6.1.4.1.99999.1=critical,ASN1:NULL\n',
  });
  const csr = await openssl(
    [
      'req',
      '-new',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'k.pem',
      '-subj',
      '/CN=odd',
      '-out',
      'odd.csr',
    ],
    dir,
  );
  t.equal(csr.code, 0, csr.stderr);
  const x = await openssl(
    [
      'x509',
      '-req',
      '-in',
      'odd.csr',
      '-CA',
      'root.pem',
      '-CAkey',
      'root.key',
      '-set_serial',
      '0x1234',
      '-days',
      '1',
      '-extfile',
      'ext.cnf',
      '-out',
      'odd.pem',
    ],
    dir,
  );
  t.equal(x.code, 0, x.stderr);
  const odd = readFileSync(join(dir, 'odd.pem'), 'utf8');
  const parsed = parseCertificate(odd);
  t.same(parsed.unknownCriticalExtensions, ['1.3.6.1.4.1.99999.1']);
  const v = verifyCertificate(odd, root);
  t.equal(v.code, 'malformed');
  t.match(v.detail, /unrecognized critical extension/);
  t.equal(v.serialHex, '1234');
});

t.test('unknown_issuer', async (t) => {
  const other = parseCertificate((await makeCa('another root')).certPem);
  t.equal(verifyCertificate(alice, other).code, 'unknown_issuer', 'different CA name');
  const twin = parseCertificate((await makeCa('kds verify root')).certPem);
  t.equal(
    verifyCertificate(alice, twin).code,
    'unknown_issuer',
    'same CA name, different key (AKI mismatch)',
  );
  t.equal(verifyCertificate(alice, kdc).code, 'unknown_issuer', 'the "CA" is a leaf');
});

t.test('bad_signature: one flipped byte in the signature', async (t) => {
  const der = Buffer.from(alice.der);
  der[der.length - 10] = der[der.length - 10]! ^ 0x01;
  const v = verifyCertificate(derToPem(der, 'CERTIFICATE'), root, { usage: 'clientAuth' });
  t.equal(v.code, 'bad_signature');
  t.equal(v.detail, 'signature verification failed');
  t.equal(v.serialHex, alice.serialHex);
});

t.test('expired and not_yet_valid, at second resolution', async (t) => {
  const now = Date.now();
  const old = await issue(ca, 'client', 'old', leafKeys.publicKeyPem, {
    notBefore: now - 10 * DAY,
    notAfter: now - DAY,
  });
  t.equal(verifyCertificate(old, root).code, 'expired');
  const future = await issue(ca, 'client', 'future', leafKeys.publicKeyPem, {
    notBefore: now + DAY,
    notAfter: now + 2 * DAY,
  });
  t.equal(verifyCertificate(future, root).code, 'not_yet_valid');
  // RFC 5280: valid "from notBefore through notAfter, inclusive".
  t.equal(verifyCertificate(alice, root, { now: alice.notAfter }).code, 'ok');
  t.equal(
    verifyCertificate(alice, root, { now: alice.notAfter + 999 }).code,
    'ok',
    'within the notAfter second',
  );
  t.equal(verifyCertificate(alice, root, { now: alice.notAfter + 1000 }).code, 'expired');
  t.equal(verifyCertificate(alice, root, { now: alice.notBefore }).code, 'ok');
  t.equal(verifyCertificate(alice, root, { now: alice.notBefore - 1 }).code, 'not_yet_valid');

  // The CA's own window counts too: a leaf that outlives its CA.
  const shortCaKeys = await generateRsaKeyPair(2048);
  const shortCaPem = await buildCertificate(
    {
      serialHex: newSerialHex(),
      subjectCN: 'short root',
      issuer: 'self',
      publicKeyPem: shortCaKeys.publicKeyPem,
      notBefore: now - DAY,
      notAfter: now + DAY,
      profile: 'root-ca',
    },
    signerFor(shortCaKeys),
  );
  const shortCa = { keys: shortCaKeys, certPem: shortCaPem, sign: signerFor(shortCaKeys) };
  const outliving = await issue(shortCa, 'client', 'long', leafKeys.publicKeyPem, {
    notAfter: now + 30 * DAY,
  });
  const v = verifyCertificate(outliving, parseCertificate(shortCaPem), { now: now + 2 * DAY });
  t.equal(v.code, 'expired');
  t.match(v.detail, /issuing CA/);
  // The verdict names the certificate at fault, the CA's, not the leaf it was asked about.
  t.match(v, {
    certificate: 'issuer',
    subject: 'short root',
    notAfter: parseCertificate(shortCaPem).notAfter,
  });
  t.equal(verdictToError(v).message, 'root CA certificate expired');
  const older = await issue(shortCa, 'client', 'older', leafKeys.publicKeyPem, { notBefore: now - 3 * DAY });
  const early = verifyCertificate(older, parseCertificate(shortCaPem), { now: now - 2 * DAY });
  t.match(early, { code: 'not_yet_valid', certificate: 'issuer', subject: 'short root' });
});

t.test('wrong_usage', async (t) => {
  t.equal(verifyCertificate(kdc, root, { usage: 'clientAuth' }).code, 'wrong_usage', 'server cert as client');
  t.equal(
    verifyCertificate(alice, root, { usage: 'serverAuth' }).code,
    'wrong_usage',
    'client cert as server',
  );
  const v = verifyCertificate(root, root, { usage: 'any' });
  t.equal(v.code, 'wrong_usage', 'the CA certificate is not an end-entity credential');
  t.match(v.detail, /CA certificate/);
});

t.test('wrong_name', async (t) => {
  const v = verifyCertificate(alice, root, { usage: 'clientAuth', expectName: 'bob' });
  t.equal(v.code, 'wrong_name');
  t.equal(v.detail, 'certificate is for "alice", not "bob"');
  t.equal(verifyCertificate(kdc, root, { expectName: '10.0.0.1' }).code, 'wrong_name');
});

t.test('revoked, with reason and date; the callback sees the canonical serial', async (t) => {
  const seen: string[] = [];
  const revokedAt = Date.UTC(2030, 1, 2, 3, 4, 5);
  const v = verifyCertificate(alice, root, {
    usage: 'clientAuth',
    revocation: (serialHex) => {
      seen.push(serialHex);
      return serialHex === alice.serialHex ? { reason: 'keyCompromise', revokedAt } : undefined;
    },
  });
  t.same(seen, [alice.serialHex]);
  t.same(v, {
    code: 'revoked',
    serialHex: alice.serialHex,
    subject: 'alice',
    reason: 'keyCompromise',
    revokedAt,
    detail: 'since 2030-02-02T03:04:05.000Z (keyCompromise)',
  });
  t.equal(verifyCertificate(kdc, root, { revocation: () => undefined }).code, 'ok', 'not revoked');
});

t.test('fixed order: the first failing check decides', async (t) => {
  const revokedAll = () => ({ reason: 'superseded' as const, revokedAt: 0 });
  const far = alice.notAfter + 10 * DAY;
  const cases: [string, VerdictCode][] = [];
  cases.push([
    'expired + revoked',
    verifyCertificate(alice, root, { now: far, revocation: revokedAll }).code,
  ]);
  cases.push([
    'wrong usage + wrong name + revoked',
    verifyCertificate(alice, root, { usage: 'serverAuth', expectName: 'x', revocation: revokedAll }).code,
  ]);
  cases.push([
    'wrong name + revoked',
    verifyCertificate(alice, root, { expectName: 'x', revocation: revokedAll }).code,
  ]);
  const der = Buffer.from(alice.der);
  der[der.length - 1] = der[der.length - 1]! ^ 1;
  cases.push(['bad signature + expired', verifyCertificate(der, root, { now: far }).code]);
  const other = parseCertificate((await makeCa('x')).certPem);
  cases.push(['unknown issuer + expired', verifyCertificate(alice, other, { now: far }).code]);
  t.same(cases, [
    ['expired + revoked', 'expired'],
    ['wrong usage + wrong name + revoked', 'wrong_usage'],
    ['wrong name + revoked', 'wrong_name'],
    ['bad signature + expired', 'bad_signature'],
    ['unknown issuer + expired', 'unknown_issuer'],
  ]);
});

t.test('verdictToError maps every failing verdict to a cert_* code', async (t) => {
  const expected: Record<Exclude<VerdictCode, 'ok'>, string> = {
    expired: 'cert_expired',
    not_yet_valid: 'cert_not_yet_valid',
    bad_signature: 'cert_bad_signature',
    unknown_issuer: 'cert_unknown_issuer',
    revoked: 'cert_revoked',
    wrong_usage: 'cert_wrong_usage',
    wrong_name: 'cert_wrong_name',
    malformed: 'cert_malformed',
  };
  for (const [verdict, code] of Object.entries(expected)) {
    const e = verdictToError({ code: verdict as VerdictCode, detail: 'x' });
    t.equal(e.code, code);
    t.equal(e.name, 'AuthError');
  }
  const e = verdictToError({
    code: 'revoked',
    serialHex: 'ab',
    subject: 'alice',
    reason: 'keyCompromise',
    revokedAt: 5,
    detail: 'd',
  });
  t.equal(e.message, 'certificate revoked');
  t.equal(e.exitCode, 3);
  t.same(e.details, {
    verdict: 'revoked',
    serialHex: 'ab',
    subject: 'alice',
    reason: 'keyCompromise',
    revokedAt: 5,
  });
  t.equal(verdictToError({ code: 'ok', detail: '' }).code, 'internal');
});

t.test('fingerprints', async (t) => {
  const dir = tempDir(t);
  writeFiles(dir, { 'root.pem': ca.certPem });
  const o = await openssl(['x509', '-in', 'root.pem', '-noout', '-fingerprint', '-sha256'], dir);
  const opensslLine = o.stdout.trim(); // "sha256 Fingerprint=AB:CD:..."
  const fp = fingerprint(pemToDer(ca.certPem, 'CERTIFICATE'));
  t.equal(fp, root.fingerprint256);
  t.match(fp, /^[0-9a-f]{64}$/);
  t.equal(normalizeFingerprint(opensslLine), fp, 'openssl output pasted as is');
  t.equal(normalizeFingerprint(opensslLine.split('=')[1]!), fp, 'colons, upper case');
  t.equal(normalizeFingerprint(`  ${fp.toUpperCase()}\n`), fp);
  t.equal(normalizeFingerprint(`sha256:${fp}`), fp);
  for (const bad of ['', fp.slice(1), `${fp}00`, fp.replace(/^./, 'g'), 'sha1:' + fp]) {
    t.throws(() => normalizeFingerprint(bad), { code: 'bad_request' }, JSON.stringify(bad.slice(0, 12)));
  }
  t.ok(fingerprintMatches(root.der, opensslLine));
  t.notOk(fingerprintMatches(alice.der, fp));
});
