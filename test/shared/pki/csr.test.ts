// shared/pki/csr.ts + policy.ts: CSRs from openssl and from createCsr, proof of possession, and the
// issuance policy, each refusal asserting its code.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateRsaKeyPair } from '../../../shared/crypto/rsa.js';
import { pooledKeyPair } from '../../helpers/template.js';
import { createCsr, decodeCsr, parseCsr, verifyCsr, type ParsedCsr } from '../../../shared/pki/csr.js';
import { checkCsrPolicy } from '../../../shared/pki/policy.js';
import { derToPem, pemToDer } from '../../../shared/pki/pem.js';
import { hugeExponentCsr } from '../../helpers/hostile-csr.js';
import { tempDir } from '../../helpers/tmp.js';
import { openssl, writeFiles } from './pki-fixtures.js';
import forge from 'node-forge';
import { buildCertificationRequestInfo } from '../../../shared/pki/x509.js';

// The run's pooled leaf key (slot 17, test/helpers/template.ts): RSA keygen is slow.
const keys = await pooledKeyPair(17);
const dir = tempDir(t);
writeFiles(dir, { 'key.pem': keys.privateKeyPem });

/** `openssl req -new` with our 2048-bit key (or a fresh one from -newkey args). */
async function opensslCsr(args: string[]): Promise<string> {
  const out = `req-${Math.random().toString(36).slice(2)}.csr`;
  const keyArgs = args.includes('-newkey') ? ['-nodes', '-keyout', `${out}.key`] : ['-key', 'key.pem'];
  const r = await openssl(['req', '-new', ...keyArgs, ...args, '-out', out], dir);
  if (r.code !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return readFileSync(join(dir, out), 'utf8');
}

t.test(
  'an openssl CSR parses and passes policy (openssl req -newkey rsa:2048 with a subjectAltName)',
  async (t) => {
    const pem = await opensslCsr([
      '-newkey',
      'rsa:2048',
      '-subj',
      '/CN=alice',
      '-addext',
      'subjectAltName=DNS:alice',
    ]);
    const csr = parseCsr(pem);
    t.equal(csr.subjectCN, 'alice');
    t.same(csr.subjectCNs, ['alice']);
    t.same(csr.sans, { dns: ['alice'], ip: [] });
    t.equal(csr.keyType, 'rsa');
    t.equal(csr.keyBits, 2048);
    t.match(csr.publicKeyPem, /^-----BEGIN PUBLIC KEY-----/);
    t.same(csr.requestedExtensions, [{ name: 'subjectAltName' }]);
    t.equal(csr.signatureAlgorithm, '1.2.840.113549.1.1.11');
    t.doesNotThrow(() => checkCsrPolicy(csr, 'alice'));
    // The legacy label openssl once wrote is accepted too.
    const legacy = pem.replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST');
    t.equal(parseCsr(legacy).subjectCN, 'alice');
    // No SAN at all is fine: CN is the name, and the CA writes the SAN itself.
    const noSan = parseCsr(await opensslCsr(['-subj', '/CN=alice']));
    t.doesNotThrow(() => checkCsrPolicy(noSan, 'alice'));
    // Other subject attributes are ignored (the CA builds the subject from the name alone).
    const withOrg = parseCsr(await opensslCsr(['-subj', '/O=Example/CN=alice']));
    t.doesNotThrow(() => checkCsrPolicy(withOrg, 'alice'));
  },
);

t.test('createCsr output passes openssl req -verify and parses back', async (t) => {
  const pem = await createCsr('bob.example', keys.privateKeyPem, keys.publicKeyPem);
  writeFiles(dir, { 'bob.csr': pem });
  const v = await openssl(['req', '-in', 'bob.csr', '-verify', '-noout'], dir);
  t.equal(v.code, 0, v.stderr);
  t.match(v.stdout + v.stderr, /verify OK/);
  const text = await openssl(['req', '-in', 'bob.csr', '-noout', '-text'], dir);
  t.match(text.stdout, /Subject: CN = bob\.example/);
  t.match(text.stdout, /X509v3 Subject Alternative Name:\s*\n\s+DNS:bob\.example/);
  const csr = parseCsr(pem);
  t.equal(csr.publicKeyPem, keys.publicKeyPem);
  t.doesNotThrow(() => checkCsrPolicy(csr, 'bob.example'));

  const other = await generateRsaKeyPair(2048);
  await t.rejects(createCsr('bob', other.privateKeyPem, keys.publicKeyPem), { code: 'key_mismatch' });
  await t.rejects(createCsr('Bob', keys.privateKeyPem, keys.publicKeyPem), { code: 'bad_name' });
});

t.test('proof of possession: any change to the signed bytes or the signature fails', async (t) => {
  const pem = await createCsr('carol', keys.privateKeyPem, keys.publicKeyPem);
  const der = pemToDer(pem, 'CERTIFICATE REQUEST');
  const sigFlipped = Buffer.from(der);
  sigFlipped[sigFlipped.length - 5] = sigFlipped[sigFlipped.length - 5]! ^ 0x01;
  t.throws(() => parseCsr(derToPem(sigFlipped, 'CERTIFICATE REQUEST')), {
    code: 'bad_csr_signature',
    message: 'CSR signature verification failed',
  });
  // Change the requested name inside certificationRequestInfo: carol -> darol.
  const renamed = Buffer.from(der);
  const at = renamed.indexOf(Buffer.from('carol'));
  renamed[at] = 'd'.charCodeAt(0);
  t.throws(() => parseCsr(derToPem(renamed, 'CERTIFICATE REQUEST')), { code: 'bad_csr_signature' });
  // A SHA-1 signed request is refused as such (not a valid proof under kds's algorithm allowlist).
  const sha1 = await opensslCsr(['-sha1', '-subj', '/CN=carol']);
  t.throws(() => parseCsr(sha1), {
    code: 'bad_csr_signature',
    details: { algorithm: '1.2.840.113549.1.1.5' },
  });
});

t.test('bad input: garbage, truncated, wrong-type PEM', async (t) => {
  const pem = await createCsr('dave', keys.privateKeyPem, keys.publicKeyPem);
  const der = pemToDer(pem, 'CERTIFICATE REQUEST');
  const cases: [string, string][] = [
    ['garbage', 'not a csr'],
    ['empty', ''],
    ['truncated PEM', pem.slice(0, 200)],
    ['truncated DER', derToPem(der.subarray(0, der.length - 20), 'CERTIFICATE REQUEST')],
    ['trailing DER', derToPem(Buffer.concat([der, Buffer.from([0, 0])]), 'CERTIFICATE REQUEST')],
    ['a private key', keys.privateKeyPem],
    ['a certificate', derToPem(der, 'CERTIFICATE')],
  ];
  for (const [what, input] of cases) t.throws(() => parseCsr(input), { code: 'malformed_pem' }, what);
});

t.test('a key whose public exponent is not 65537: unsupported_key, before any signature check', async (t) => {
  const refused = { code: 'unsupported_key', message: /65537/ };
  const e3 = await opensslCsr([
    '-newkey',
    'rsa:2048',
    '-pkeyopt',
    'rsa_keygen_pubexp:3',
    '-subj',
    '/CN=erin',
  ]);
  t.throws(() => parseCsr(e3), refused, 'an openssl CSR with e=3 (validly signed)');
  await t.rejects(verifyCsr(decodeCsr(e3)), refused, 'the asynchronous verifier too');
  const huge = await hugeExponentCsr('erin');
  t.throws(() => parseCsr(huge), refused, 'a 3064-bit exponent (the signature is never checked)');
  await t.rejects(verifyCsr(decodeCsr(huge)), refused);
});

t.test(
  'decodeCsr reads the shape and the requested name only; verifyCsr checks the signature off the event loop',
  async (t) => {
    const pem = await createCsr('carol', keys.privateKeyPem, keys.publicKeyPem);
    const request = decodeCsr(pem);
    t.same(request.subjectCNs, ['carol'], 'the subject CNs, unverified');
    const pending = verifyCsr(request);
    t.ok(pending instanceof Promise, 'a promise: the RSA verification runs on the thread pool');
    const csr = await pending;
    t.equal(csr.subjectCN, 'carol');
    t.same(csr, parseCsr(pem), 'the same result as the synchronous parseCsr');
    const der = pemToDer(pem, 'CERTIFICATE REQUEST');
    const sigFlipped = Buffer.from(der);
    sigFlipped[sigFlipped.length - 1]! ^= 1;
    await t.rejects(verifyCsr(decodeCsr(derToPem(sigFlipped, 'CERTIFICATE REQUEST'))), {
      code: 'bad_csr_signature',
      message: 'CSR signature verification failed',
    });
    t.throws(() => decodeCsr('not a csr'), { code: 'malformed_pem' });
  },
);

t.test('policy: key type and size', async (t) => {
  const weak = parseCsr(await opensslCsr(['-newkey', 'rsa:1024', '-subj', '/CN=erin']));
  t.equal(weak.keyBits, 1024);
  t.throws(() => checkCsrPolicy(weak, 'erin'), { code: 'weak_key' });
  const ec = await opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/CN=erin']);
  t.throws(() => parseCsr(ec), { code: 'unsupported_key', message: /got ec/ });
  // Above 4096 bits: a parsed CSR with a 8192-bit key (generating one here would take seconds).
  const big: ParsedCsr = { ...parseCsr(await opensslCsr(['-subj', '/CN=erin'])), keyBits: 8192 };
  t.throws(() => checkCsrPolicy(big, 'erin'), { code: 'unsupported_key' });
  t.doesNotThrow(() => checkCsrPolicy({ ...big, keyBits: 4096 }, 'erin'), '4096 is the upper bound');
  t.throws(
    () => checkCsrPolicy({ ...big, keyBits: 2047 }, 'erin'),
    { code: 'weak_key' },
    '2048 is the lower bound',
  );
  t.throws(() => checkCsrPolicy({ ...big, keyType: 'dsa' }, 'erin'), { code: 'unsupported_key' });
});

t.test('policy: names', async (t) => {
  const alice = parseCsr(await opensslCsr(['-subj', '/CN=alice', '-addext', 'subjectAltName=DNS:alice']));
  for (const badName of ['Alice', '', '-alice', 'a'.repeat(65), 'al ice', 'alice/..']) {
    t.throws(() => checkCsrPolicy(alice, badName), { code: 'bad_name' }, JSON.stringify(badName));
  }
  t.throws(() => checkCsrPolicy(alice, 'bob'), { code: 'name_mismatch' }, 'CN for another name');
  const cases: [string, string[]][] = [
    ['SAN for another name', ['-subj', '/CN=alice', '-addext', 'subjectAltName=DNS:alice,DNS:mallory']],
    ['IP SAN', ['-subj', '/CN=alice', '-addext', 'subjectAltName=DNS:alice,IP:127.0.0.1']],
    ['email SAN', ['-subj', '/CN=alice', '-addext', 'subjectAltName=email:alice@example.com']],
    ['two CNs', ['-subj', '/CN=alice/CN=mallory']],
    ['no CN', ['-subj', '/O=alice']],
    ['CN with capitals', ['-subj', '/CN=Alice']],
  ];
  for (const [what, args] of cases) {
    const csr = parseCsr(await opensslCsr(args));
    t.throws(() => checkCsrPolicy(csr, 'alice'), { code: 'name_mismatch' }, what);
  }
});

t.test('policy: CA powers are refused', async (t) => {
  const ca = parseCsr(
    await opensslCsr(['-subj', '/CN=alice', '-addext', 'basicConstraints=critical,CA:TRUE']),
  );
  t.same(ca.requestedExtensions, [{ name: 'basicConstraints', critical: true, ca: true }]);
  t.throws(() => checkCsrPolicy(ca, 'alice'), { code: 'forbidden_extension', message: /CA:true/ });
  const certSign = parseCsr(
    await opensslCsr(['-subj', '/CN=alice', '-addext', 'keyUsage=digitalSignature,keyCertSign']),
  );
  t.throws(() => checkCsrPolicy(certSign, 'alice'), { code: 'forbidden_extension' });
  const crlSign = parseCsr(await opensslCsr(['-subj', '/CN=alice', '-addext', 'keyUsage=cRLSign']));
  t.throws(() => checkCsrPolicy(crlSign, 'alice'), { code: 'forbidden_extension' });
  const notCa = parseCsr(await opensslCsr(['-subj', '/CN=alice', '-addext', 'basicConstraints=CA:FALSE']));
  t.doesNotThrow(() => checkCsrPolicy(notCa, 'alice'), 'CA:FALSE is harmless');
});

t.test('the CertificationRequestInfo is byte for byte what forge encodes for the same request', async (t) => {
  // x509.ts lets forge encode only the version and the extensionRequest attribute; the subject and the
  // key are its own (as in a certificate). All of forge, subject included, must give the same bytes.
  const { publicKeyPem } = await generateRsaKeyPair(2048);
  for (const name of ['alice', 'a', 'x'.repeat(64), 'my-host.example_1']) {
    const csr = forge.pki.createCertificationRequest();
    csr.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
    // forge reads valueTagClass as the value's universal type (UTF8String); @types calls it a Class.
    csr.setSubject([{ type: '2.5.4.3', value: name, valueTagClass: forge.asn1.Type.UTF8 as number }]);
    csr.setAttributes([
      {
        name: 'extensionRequest',
        extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: name }] }],
      },
    ]);
    const whole = Buffer.from(
      forge.asn1.toDer(forge.pki.getCertificationRequestInfo(csr)).getBytes(),
      'binary',
    );
    t.ok(buildCertificationRequestInfo(name, publicKeyPem).equals(whole), name);
  }
});
