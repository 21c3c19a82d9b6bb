// shared/crypto/signer.ts: a PSS signer and a PKCS#1 v1.5 signer are distinct types, and each user
// refuses the other at run time too. Every `@ts-expect-error` line below is a compile-time test: if the
// two types ever became interchangeable again, tsc would report the directive as unused and fail. The
// same lines then run, as untyped code would, and must be refused before anything is signed.
import t from 'tap';
import {
  asPssSigner,
  asSyncCertificateSigner,
  certificateSigner,
  PKCS1_SHA256,
  PSS_SHA256,
  pssSigner,
  requireScheme,
  type CertificateSigner,
  type PssSigner,
  type SyncCertificateSigner,
} from '../../../shared/crypto/signer.js';
import { generateRsaKeyPair, verifyPkcs1Sha256, verifyPss } from '../../../shared/crypto/rsa.js';
import { CrlBuilder } from '../../../shared/pki/crl.js';
import { newSerialHex } from '../../../shared/pki/serial.js';
import { buildCertificate, type CertificateSpec } from '../../../shared/pki/x509.js';
import { ClientHandshake, ServerHandshake } from '../../../shared/protocol/handshake.js';
import { makePki } from '../protocol/fixtures.js';

const DAY = 86_400_000;
const keys = await generateRsaKeyPair(2048);
const pss = pssSigner(keys.privateKeyPem);
const pkcs1 = certificateSigner(keys.privateKeyPem);

t.test('each signer signs with its own scheme and says which', async (t) => {
  const data = Buffer.from('signed bytes');
  t.equal(pss.alg, PSS_SHA256);
  t.equal(pkcs1.alg, PKCS1_SHA256);
  const pssSig = await pss(data);
  t.ok(verifyPss(data, pssSig, keys.publicKeyPem), 'PSS signature verifies as PSS');
  t.notOk(verifyPkcs1Sha256(data, pssSig, keys.publicKeyPem), '... and not as PKCS#1 v1.5');
  const pkcsSig = await pkcs1(data);
  t.ok(verifyPkcs1Sha256(data, pkcsSig, keys.publicKeyPem), 'PKCS#1 signature verifies as PKCS#1 v1.5');
  t.notOk(verifyPss(data, pkcsSig, keys.publicKeyPem), '... and not as PSS');
  const wrapped = asPssSigner(pss);
  t.equal(wrapped.alg, PSS_SHA256);
  t.not(wrapped, pss, 'tagging wraps: the function given is left as it was');
});

t.test('the types keep the schemes apart', async (t) => {
  // @ts-expect-error a certificate signer is not a PSS signer
  const a: PssSigner = pkcs1;
  // @ts-expect-error a PSS signer is not a certificate signer
  const b: CertificateSigner = pss;
  // @ts-expect-error a synchronous signer is not an asynchronous one
  const c: CertificateSigner = asSyncCertificateSigner(() => Buffer.alloc(0));
  // @ts-expect-error an untagged function is no signer at all
  const d: SyncCertificateSigner = () => Buffer.alloc(0);
  t.equal(a.alg, PKCS1_SHA256, 'the value keeps its own tag whatever it was assigned to');
  t.equal(b.alg, PSS_SHA256);
  t.equal(c.alg, PKCS1_SHA256);
  t.throws(() => requireScheme(d, PKCS1_SHA256, 'a test'), {
    code: 'internal',
    message: 'a test needs a sha256WithRSAEncryption signer, got an untagged one',
  });
});

t.test('a certificate or a CRL refuses a PSS signer before signing', async (t) => {
  const now = Date.now();
  const spec: CertificateSpec = {
    serialHex: newSerialHex(),
    subjectCN: 'kds signer root',
    issuer: 'self',
    publicKeyPem: keys.publicKeyPem,
    notBefore: now - DAY,
    notAfter: now + DAY,
    profile: 'root-ca',
  };
  let calls = 0;
  const counting = asPssSigner(async (d) => {
    calls += 1;
    return pss(d);
  });
  // @ts-expect-error buildCertificate takes a certificate signer
  await t.rejects(buildCertificate(spec, counting), {
    code: 'internal',
    message: 'a certificate needs a sha256WithRSAEncryption signer, got rsa-pss-sha256',
  });
  const caPem = await buildCertificate(spec, pkcs1);
  const crl = new CrlBuilder({ issuerCertPem: caPem, crlNumber: 1, thisUpdate: now, nextUpdate: now + DAY });
  // @ts-expect-error a CRL is signed by a certificate signer
  await t.rejects(crl.build(counting), { code: 'internal' });
  // @ts-expect-error nor by an untagged synchronous function
  t.throws(() => crl.buildSync(() => Buffer.alloc(256)), { code: 'internal' });
  t.equal(calls, 0, 'the wrong signer was never asked to sign');
  const pem = await crl.build(pkcs1);
  t.match(pem, /^-----BEGIN X509 CRL-----/, 'the right one signs');
});

t.test('a handshake refuses a certificate signer before signing', async (t) => {
  const pki = await makePki();
  let calls = 0;
  const counting = certificateSigner(keys.privateKeyPem);
  const wrong = Object.assign(
    async (d: Buffer) => {
      calls += 1;
      return counting(d);
    },
    { alg: counting.alg },
  );
  const server = new ServerHandshake({
    // @ts-expect-error the handshake signs with RSA-PSS
    credentials: { certificateDer: pki.server.certDer, sign: wrong },
    checkClientCertificate: () => undefined,
  });
  const client = new ClientHandshake({
    mode: 'auth',
    credentials: pki.client.credentials,
    checkServerCertificate: () => undefined,
  });
  await t.rejects(server.receiveClientHello(client.clientHello()), {
    code: 'internal',
    message: 'a handshake needs a rsa-pss-sha256 signer, got sha256WithRSAEncryption',
  });
  t.equal(calls, 0, 'the wrong signer was never asked to sign');
});
