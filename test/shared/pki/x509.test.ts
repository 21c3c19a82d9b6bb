// shared/pki/x509.ts: the four certificate profiles, checked by our parser AND by openssl; parse errors.
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateRsaKeyPair } from '../../../shared/crypto/rsa.js';
import { pooledKeyPair } from '../../helpers/template.js';
import {
  buildCertificate,
  derToPem,
  parseCertificate,
  pemToDer,
  readCertificateSummary,
} from '../../../shared/pki/x509.js';
import { computeKeyIdentifier } from '../../../shared/pki/extensions.js';
import { newSerialHex } from '../../../shared/pki/serial.js';
import { tempDir } from '../../helpers/tmp.js';
import { DAY, issue, makeCa, openssl, signerFor, writeFiles } from './pki-fixtures.js';

const ca = await makeCa('kds test root');
// The run's pooled leaf key (slot 17, test/helpers/template.ts): RSA keygen is slow.
const subjectKeys = await pooledKeyPair(17);
const root = parseCertificate(ca.certPem);

t.test('root-ca profile', async (t) => {
  t.ok(root.isCA);
  t.equal(root.pathLen, 0);
  t.same(root.keyUsage, ['keyCertSign', 'cRLSign']);
  t.equal(root.subjectCN, 'kds test root');
  t.equal(root.issuerCN, 'kds test root');
  t.ok(root.subjectDer.equals(root.issuerDer), 'self-issued: issuer = subject');
  t.equal(root.keyBits, 2048);
  t.equal(root.keyType, 'rsa');
  const spki = Buffer.from(pemToDer(ca.keys.publicKeyPem, 'PUBLIC KEY'));
  t.equal(root.skiHex, computeKeyIdentifier(spki).toString('hex'), 'SKI = SHA-1 of subjectPublicKey');
  t.equal(root.akiHex, undefined, 'no AKI on the self-signed root');
  t.same(
    root.extensions.map((e) => [e.name, e.critical]),
    [
      ['basicConstraints', true],
      ['keyUsage', true],
      ['subjectKeyIdentifier', false],
    ],
  );

  const dir = tempDir(t);
  writeFiles(dir, { 'root.pem': ca.certPem });
  const text = await openssl(['x509', '-in', 'root.pem', '-text', '-noout'], dir);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  t.match(text.stdout, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
  t.match(text.stdout, /X509v3 Subject Key Identifier:/);
  t.match(text.stdout, /Signature Algorithm: sha256WithRSAEncryption/);
  t.match(text.stdout, /Version: 3 \(0x2\)/);
  const self = await openssl(['verify', '-CAfile', 'root.pem', 'root.pem'], dir);
  t.equal(self.code, 0, `self-signature verifies: ${self.stderr}`);
});

t.test('client profile: openssl verifies it and shows the extensions', async (t) => {
  const serialHex = newSerialHex();
  const pem = await issue(ca, 'client', 'alice_1', subjectKeys.publicKeyPem, { serialHex });
  const c = parseCertificate(pem);
  t.equal(c.serialHex, serialHex);
  t.equal(c.subjectCN, 'alice_1', 'UTF8String CN can hold _');
  t.equal(c.subjectOU, undefined);
  t.equal(c.issuerCN, 'kds test root');
  t.ok(c.issuerDer.equals(root.subjectDer), 'issuer copied byte for byte from the CA subject');
  t.notOk(c.isCA);
  t.same(c.keyUsage, ['digitalSignature']);
  t.same(c.extKeyUsage, ['clientAuth']);
  t.same(c.sans, { dns: ['alice_1'], ip: [] });
  t.same(c.crlUrls, ['http://127.0.0.1:8443/crl.pem']);
  t.equal(c.akiHex, root.skiHex, 'AKI = the CA SKI');
  t.equal(c.publicKeyPem, subjectKeys.publicKeyPem, 'subject key carried exactly');
  t.same(
    c.extensions.map((e) => [e.name, e.critical]),
    [
      ['basicConstraints', true],
      ['keyUsage', true],
      ['extKeyUsage', false],
      ['subjectAltName', false],
      ['subjectKeyIdentifier', false],
      ['authorityKeyIdentifier', false],
      ['cRLDistributionPoints', false],
    ],
  );

  const dir = tempDir(t);
  writeFiles(dir, { 'root.pem': ca.certPem, 'client.pem': pem });
  const v = await openssl(['verify', '-CAfile', 'root.pem', 'client.pem'], dir);
  t.equal(v.code, 0, v.stderr);
  t.match(v.stdout, /client\.pem: OK/);
  const purpose = await openssl(
    ['verify', '-purpose', 'sslclient', '-CAfile', 'root.pem', 'client.pem'],
    dir,
  );
  t.equal(purpose.code, 0, `valid for TLS client auth: ${purpose.stderr}`);
  const wrongPurpose = await openssl(
    ['verify', '-purpose', 'sslserver', '-CAfile', 'root.pem', 'client.pem'],
    dir,
  );
  t.not(wrongPurpose.code, 0, 'not valid for TLS server auth');

  const text = await openssl(['x509', '-in', 'client.pem', '-text', '-noout'], dir);
  t.equal(text.code, 0);
  t.match(text.stdout, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
  t.match(text.stdout, /X509v3 Key Usage: critical\s+Digital Signature\n/);
  t.match(text.stdout, /X509v3 Extended Key Usage:\s*\n\s+TLS Web Client Authentication/);
  t.match(text.stdout, /X509v3 Subject Alternative Name:\s*\n\s+DNS:alice_1\n/);
  t.match(text.stdout, /X509v3 Subject Key Identifier:\s*\n\s+[0-9A-F:]{59}/);
  t.match(text.stdout, /X509v3 Authority Key Identifier:\s*\n\s+[0-9A-F:]{59}/);
  t.match(
    text.stdout,
    /X509v3 CRL Distribution Points:\s*\n\s+Full Name:\s*\n\s+URI:http:\/\/127\.0\.0\.1:8443\/crl\.pem/,
  );
  t.match(text.stdout, new RegExp(`Serial Number:\\s*\\n\\s+${serialHex.replace(/(..)(?!$)/g, '$1:')}`));

  const fp = await openssl(['x509', '-in', 'client.pem', '-noout', '-fingerprint', '-sha256'], dir);
  t.equal(
    fp.stdout.trim().split('=')[1]!.replace(/:/g, '').toLowerCase(),
    c.fingerprint256,
    'fingerprint = openssl',
  );
  const dates = await openssl(['x509', '-in', 'client.pem', '-noout', '-enddate'], dir);
  t.equal(Date.parse(dates.stdout.trim().split('=')[1]!), c.notAfter, 'notAfter = openssl');
});

t.test('server profile: serverAuth, keyEncipherment, DNS and IP SANs', async (t) => {
  const pem = await issue(ca, 'server', 'kdc', subjectKeys.publicKeyPem, {
    sans: { dns: ['localhost', 'kds.example.test'], ip: ['127.0.0.1', '::1'] },
  });
  const c = parseCertificate(pem);
  t.same(c.keyUsage, ['digitalSignature', 'keyEncipherment']);
  t.same(c.extKeyUsage, ['serverAuth']);
  t.same(c.sans, { dns: ['localhost', 'kds.example.test'], ip: ['127.0.0.1', '::1'] });
  const dir = tempDir(t);
  writeFiles(dir, { 'root.pem': ca.certPem, 'server.pem': pem });
  const v = await openssl(['verify', '-purpose', 'sslserver', '-CAfile', 'root.pem', 'server.pem'], dir);
  t.equal(v.code, 0, v.stderr);
  const text = await openssl(
    ['x509', '-in', 'server.pem', '-noout', '-ext', 'subjectAltName,keyUsage,extendedKeyUsage'],
    dir,
  );
  t.match(
    text.stdout,
    /DNS:localhost, DNS:kds\.example\.test, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/,
  );
  t.match(text.stdout, /Digital Signature, Key Encipherment/);
  t.match(text.stdout, /TLS Web Server Authentication/);
  const host = await openssl(['verify', '-CAfile', 'root.pem', '-verify_ip', '127.0.0.1', 'server.pem'], dir);
  t.equal(host.code, 0, `openssl matches the IP SAN: ${host.stderr}`);

  const defaulted = parseCertificate(await issue(ca, 'server', 'kdc.local', subjectKeys.publicKeyPem));
  t.same(defaulted.sans, { dns: ['kdc.local'], ip: [] }, 'server SAN defaults to its CN');
});

t.test('admin profile: OU=kds-admin, clientAuth', async (t) => {
  const pem = await issue(ca, 'admin', 'admin', subjectKeys.publicKeyPem);
  const c = parseCertificate(pem);
  t.equal(c.subjectOU, 'kds-admin');
  t.equal(c.subject, 'OU=kds-admin, CN=admin');
  t.same(c.extKeyUsage, ['clientAuth']);
  t.same(c.sans.dns, ['admin']);
  const dir = tempDir(t);
  writeFiles(dir, { 'root.pem': ca.certPem, 'admin.pem': pem });
  t.equal((await openssl(['verify', '-CAfile', 'root.pem', 'admin.pem'], dir)).code, 0);
  const subj = await openssl(['x509', '-in', 'admin.pem', '-noout', '-subject'], dir);
  t.equal(subj.stdout.trim(), 'subject=OU = kds-admin, CN = admin');
});

t.test('serials and times are encoded as DER requires', async (t) => {
  const dir = tempDir(t);
  // Top bit set: DER needs a 0x00 prefix to stay positive; leading zero octets are not part of the value.
  const high = parseCertificate(
    await issue(ca, 'client', 'bob', subjectKeys.publicKeyPem, { serialHex: '80' + 'ab'.repeat(15) }),
  );
  t.equal(high.serialHex, '80' + 'ab'.repeat(15));
  const padded = parseCertificate(
    await issue(ca, 'client', 'bob', subjectKeys.publicKeyPem, { serialHex: '00:0A:BC' }),
  );
  t.equal(padded.serialHex, '0abc', 'canonical serialHex');
  writeFiles(dir, { 'high.pem': high.pem, 'root.pem': ca.certPem });
  const s = await openssl(['x509', '-in', 'high.pem', '-noout', '-serial'], dir);
  t.equal(s.stdout.trim(), `serial=${high.serialHex.toUpperCase()}`);

  // RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  const nb = Date.UTC(2049, 11, 31, 23, 59, 59, 999);
  const na = Date.UTC(2051, 5, 1, 12, 0, 0);
  const long = parseCertificate(
    await issue(ca, 'client', 'carol', subjectKeys.publicKeyPem, { notBefore: nb, notAfter: na }),
  );
  t.equal(long.notBefore, nb - 999, 'milliseconds truncated');
  t.equal(long.notAfter, na);
  const validity = long.der.indexOf(Buffer.from('491231235959Z', 'latin1'));
  t.ok(validity > 0 && long.der[validity - 2] === 0x17, 'notBefore is UTCTime');
  const gen = long.der.indexOf(Buffer.from('20510601120000Z', 'latin1'));
  t.ok(gen > 0 && long.der[gen - 2] === 0x18, 'notAfter is GeneralizedTime');
  writeFiles(dir, { 'long.pem': long.pem });
  const end = await openssl(['x509', '-in', 'long.pem', '-noout', '-enddate'], dir);
  t.equal(end.stdout.trim(), 'notAfter=Jun  1 12:00:00 2051 GMT');
});

t.test('spec errors are refused with codes', async (t) => {
  const now = Date.now();
  const base = {
    serialHex: newSerialHex(),
    subjectCN: 'dave',
    issuer: { certPem: ca.certPem },
    publicKeyPem: subjectKeys.publicKeyPem,
    notBefore: now,
    notAfter: now + DAY,
    profile: 'client' as const,
  };
  const cases: [string, Record<string, unknown>, string][] = [
    ['client name with capitals', { subjectCN: 'Dave' }, 'bad_name'],
    ['empty name', { subjectCN: '' }, 'bad_name'],
    ['client self-signed', { issuer: 'self' }, 'bad_request'],
    ['root with an issuer', { profile: 'root-ca' }, 'bad_request'],
    ['admin OU on a client', { subjectOU: 'kds-admin' }, 'bad_request'],
    ['admin with another OU', { profile: 'admin', subjectCN: 'admin', subjectOU: 'ops' }, 'bad_request'],
    ['client SAN for another name', { sans: { dns: ['mallory'] } }, 'bad_request'],
    ['client IP SAN', { sans: { ip: ['10.0.0.1'] } }, 'bad_request'],
    ['server bad IP', { profile: 'server', sans: { ip: ['300.1.1.1'] } }, 'bad_request'],
    ['server bad DNS', { profile: 'server', sans: { dns: ['a b'] } }, 'bad_request'],
    ['notAfter before notBefore', { notAfter: now - 1 }, 'bad_request'],
    ['crlUrl not http', { crlUrl: 'file:///etc/passwd' }, 'bad_request'],
    ['serial zero', { serialHex: '00' }, 'bad_request'],
    ['serial not hex', { serialHex: 'xyz' }, 'bad_request'],
    ['serial > 20 octets', { serialHex: '7f'.repeat(21) }, 'bad_request'],
    ['unknown profile', { profile: 'intermediate' }, 'bad_request'],
    ['garbage public key', { publicKeyPem: 'nope' }, 'malformed_pem'],
    [
      'EC public key',
      {
        publicKeyPem: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
          type: 'spki',
          format: 'pem',
        }),
      },
      'unsupported_key',
    ],
    [
      'issuer is not a CA',
      { issuer: { certPem: await issue(ca, 'client', 'erin', subjectKeys.publicKeyPem) } },
      'bad_request',
    ],
    ['issuer is not a certificate', { issuer: { certPem: 'garbage' } }, 'malformed_pem'],
    [
      'RSA key with public exponent 3',
      {
        publicKeyPem: generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey.export(
          {
            type: 'spki',
            format: 'pem',
          },
        ),
      },
      'unsupported_key',
    ],
  ];
  for (const [what, change, code] of cases) {
    await t.rejects(buildCertificate({ ...base, ...change } as never, ca.sign), { code }, what);
  }
  // A Signer holding the wrong key is caught by the self-check.
  const other = await generateRsaKeyPair(2048);
  await t.rejects(buildCertificate(base, signerFor(other)), { code: 'internal' }, 'wrong signing key');
});

t.test('parseCertificate reads certificates kds did not make (openssl, EC key)', async (t) => {
  const dir = tempDir(t);
  const r = await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ec.key',
      '-subj',
      '/OU=lab/CN=ec test',
      '-days',
      '2',
      '-out',
      'ec.pem',
    ],
    dir,
  );
  t.equal(r.code, 0, r.stderr);
  const c = parseCertificate(readFileSync(join(dir, 'ec.pem'), 'utf8'));
  t.equal(c.keyType, 'ec');
  t.equal(c.subjectCN, 'ec test');
  t.equal(c.subjectOU, 'lab');
  t.equal(c.signatureAlgorithm, '1.2.840.10045.4.3.2', 'ecdsa-with-SHA256');
  t.ok(c.isCA, 'openssl req -x509 marks it CA:TRUE');
  t.equal(
    c.skiHex,
    computeKeyIdentifier(pemToDer(c.publicKeyPem, 'PUBLIC KEY')).toString('hex'),
    'openssl uses method 1 too',
  );
});

t.test('parseCertificate refuses an RSA key whose public exponent is not 65537', async (t) => {
  const dir = tempDir(t);
  for (const e of ['3', '65539']) {
    const r = await openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-pkeyopt',
        `rsa_keygen_pubexp:${e}`,
        '-nodes',
        '-keyout',
        `e${e}.key`,
        '-subj',
        '/CN=odd exponent',
        '-days',
        '2',
        '-out',
        `e${e}.pem`,
      ],
      dir,
    );
    t.equal(r.code, 0, r.stderr);
    t.throws(
      () => parseCertificate(readFileSync(join(dir, `e${e}.pem`), 'utf8')),
      {
        code: 'unsupported_key',
        message: 'RSA public exponent must be 65537',
      },
      `e=${e}`,
    );
  }
});

t.test('parseCertificate refuses garbage, truncation and other PEM types', async (t) => {
  const good = await issue(ca, 'client', 'frank', subjectKeys.publicKeyPem);
  const der = pemToDer(good, 'CERTIFICATE');
  t.equal(parseCertificate(der).fingerprint256, parseCertificate(good).fingerprint256, 'DER input');
  t.equal(derToPem(der, 'CERTIFICATE'), good, 'PEM round trip');
  const csrPem = '-----BEGIN CERTIFICATE REQUEST-----\nMIIBAA==\n-----END CERTIFICATE REQUEST-----\n';
  const lines = good.trim().split('\n');
  const bad: [string, string | Buffer, RegExp][] = [
    ['empty', '', /found no PEM block/],
    ['garbage', 'hello world', /found no PEM block/],
    ['no END line', good.slice(0, good.length / 2), /truncated CERTIFICATE PEM/],
    [
      'truncated body',
      [...lines.slice(0, 5), lines[lines.length - 1]].join('\n'),
      /not a valid X\.509 certificate/,
    ],
    ['bad base64', good.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!'), /invalid base64/],
    ['a CSR', csrPem, /expected CERTIFICATE PEM, got CERTIFICATE REQUEST/],
    ['a private key', subjectKeys.privateKeyPem, /expected CERTIFICATE PEM, got PRIVATE KEY/],
    ['a public key', subjectKeys.publicKeyPem, /got PUBLIC KEY/],
    ['DER with trailing bytes', Buffer.concat([der, Buffer.from([0])]), /not a valid X\.509 certificate/],
    ['truncated DER', der.subarray(0, der.length - 1), /not a valid X\.509 certificate/],
    ['random DER', Buffer.from('3003020101', 'hex'), /not a valid X\.509 certificate/],
  ];
  for (const [what, input, message] of bad) {
    t.throws(() => parseCertificate(input), { code: 'malformed_pem', message }, what);
  }
  t.throws(() => parseCertificate(42 as never), { code: 'malformed_pem' }, 'not a string');
  // The private key body never appears in the error.
  try {
    parseCertificate(subjectKeys.privateKeyPem);
  } catch (err) {
    t.notMatch(String((err as Error).message), /MII/, 'no key material in the message');
  }
});

t.test('readCertificateSummary reads the serial, CN and notAfter parseCertificate reads', async (t) => {
  // The KDC names each certificate it issues (the cert.issued event) with this light reader instead of
  // a full parse: it must give the same three values on every shape of certificate kds issues.
  const now = Date.now();
  const certs = [
    ca.certPem,
    await issue(ca, 'client', 'alice', subjectKeys.publicKeyPem),
    await issue(ca, 'admin', 'root-admin', subjectKeys.publicKeyPem, { subjectOU: 'kds-admin' }),
    await issue(ca, 'server', 'kdc.example', subjectKeys.publicKeyPem, {
      sans: { dns: ['kdc.example'], ip: ['127.0.0.1'] },
    }),
    // One serial octet, and twenty with the high bit set (DER's sign octet in front).
    await issue(ca, 'client', 'short', subjectKeys.publicKeyPem, { serialHex: '01' }),
    await issue(ca, 'client', 'long', subjectKeys.publicKeyPem, { serialHex: '7f' + 'ab'.repeat(19) }),
    // GeneralizedTime (from 2050, RFC 5280 4.1.2.5).
    await issue(ca, 'client', 'late', subjectKeys.publicKeyPem, { notAfter: Date.UTC(2060, 0, 2) }),
  ];
  // A certificate kds did not make: openssl's own encoder, a UTF-8 CN between two other attributes.
  const dir = tempDir(t);
  const r = await openssl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem'].concat([
      '-subj',
      '/O=lab/CN=Zoë 名前/OU=x',
      '-utf8',
      '-days',
      '2',
      '-set_serial',
      '0x84b1c2',
    ]),
    dir,
  );
  t.equal(r.code, 0, r.stderr);
  t.equal(parseCertificate(readFileSync(join(dir, 'c.pem'), 'utf8')).subjectCN, 'Zoë 名前');
  certs.push(readFileSync(join(dir, 'c.pem'), 'utf8'));
  for (const pem of certs) {
    const full = parseCertificate(pem);
    const want = { serialHex: full.serialHex, subjectCN: full.subjectCN, notAfter: full.notAfter };
    t.same(readCertificateSummary(pem), want, full.subjectCN);
    t.same(readCertificateSummary(pemToDer(pem, 'CERTIFICATE')), want, `${full.subjectCN} (DER)`);
  }
  t.equal(readCertificateSummary(certs[5]!).serialHex, '7f' + 'ab'.repeat(19));
  t.ok(readCertificateSummary(certs[6]!).notAfter > now);
  for (const bad of ['', 'hello', subjectKeys.publicKeyPem, Buffer.from('3003020101', 'hex')]) {
    t.throws(() => readCertificateSummary(bad), { code: /malformed/ }, 'not a certificate');
  }
});

t.test('serialHex is what `openssl x509 -serial` prints, lowercased: two digits per octet', async (t) => {
  // docs/protocol.md "Serials": a leading zero digit stays; DER's sign octet (00 before 0x84) does not.
  const dir = tempDir(t);
  for (const [serial, want] of [
    ['0x04b1c2d3e4f5061728394a5b6c7d8e9f', '04b1c2d3e4f5061728394a5b6c7d8e9f'],
    ['0x84b1c2', '84b1c2'],
    ['0x0a', '0a'],
  ] as const) {
    const made = await openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        'k.pem',
        '-out',
        'c.pem',
        '-subj',
        '/CN=x',
        '-days',
        '1',
        '-set_serial',
        serial,
      ],
      dir,
    );
    t.equal(made.code, 0, made.stderr);
    const printed = await openssl(['x509', '-in', 'c.pem', '-noout', '-serial'], dir);
    t.equal(printed.stdout.trim(), `serial=${want.toUpperCase()}`, `openssl: ${serial}`);
    t.equal(parseCertificate(readFileSync(join(dir, 'c.pem'), 'utf8')).serialHex, want, `kds: ${serial}`);
  }
});
