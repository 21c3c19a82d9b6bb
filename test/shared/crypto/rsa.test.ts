// shared/crypto/rsa.ts: Wycheproof known answers through the verify wrappers the project uses, the
// explicit PSS salt length, and the key checks.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, createPrivateKey, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import fc from 'fast-check';
import {
  generateRsaKeyPair,
  PSS_SALT_LENGTH,
  signPkcs1Sha256,
  signPss,
  toPrivateKey,
  toPublicKey,
  verifyPkcs1Sha256,
  verifyPss,
} from '../../../shared/crypto/rsa.js';

// This file runs compiled from dist/test/shared/crypto/; the vectors stay in the source tree at
// test/vectors/ (tsc copies no JSON): four levels up is the repository root.
const VECTORS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../test/vectors/wycheproof');

interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  msg: string;
  sig: string;
  result: 'valid' | 'invalid' | 'acceptable';
}
interface WycheproofFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: {
    publicKeyPem: string;
    publicKey?: { publicExponent?: string };
    sha: string;
    sLen?: number;
    mgfSha?: string;
    tests: WycheproofTest[];
  }[];
}

function loadVectors(file: string): WycheproofFile {
  return JSON.parse(readFileSync(resolve(VECTORS, file), 'utf8')) as WycheproofFile;
}

t.test('Wycheproof RSASSA-PKCS1-v1_5 2048 SHA-256 through verifyPkcs1Sha256', async (t) => {
  const file = loadVectors('rsa_signature_2048_sha256_test.json');
  t.equal(file.algorithm, 'RSASSA-PKCS1-v1_5');
  let count = 0;
  const mismatches: string[] = [];
  for (const group of file.testGroups) {
    t.equal(group.sha, 'SHA-256');
    if (group.publicKey?.publicExponent !== '010001') {
      // kds accepts the public exponent 65537 only (RSA_PUBLIC_EXPONENT): the key itself is refused
      // before any of its signatures is looked at.
      for (const v of group.tests) {
        count++;
        t.throws(
          () => verifyPkcs1Sha256(Buffer.from(v.msg, 'hex'), Buffer.from(v.sig, 'hex'), group.publicKeyPem),
          { code: 'unsupported_key', message: /65537/ },
          `tcId ${v.tcId}: exponent ${group.publicKey?.publicExponent ?? '?'} refused`,
        );
      }
      continue;
    }
    for (const v of group.tests) {
      count++;
      const got = verifyPkcs1Sha256(Buffer.from(v.msg, 'hex'), Buffer.from(v.sig, 'hex'), group.publicKeyPem);
      // "acceptable" here is only MissingNull (a DigestInfo without the NULL parameters). We REJECT it:
      // RFC 8017 9.2 defines one encoding, OpenSSL compares the full encoded DigestInfo, and nothing
      // kds verifies was ever signed by a legacy signer that omits the NULL.
      const expected = v.result === 'valid';
      if (v.result === 'acceptable') t.same(v.flags, ['MissingNull'], `tcId ${v.tcId} acceptable flags`);
      if (got !== expected) mismatches.push(`tcId ${v.tcId} (${v.result}, ${v.flags.join(',')}): got ${got}`);
    }
  }
  t.equal(count, file.numberOfTests, 'every vector ran');
  t.same(mismatches, [], 'every vector matches');
});

t.test('Wycheproof RSASSA-PSS 2048 SHA-256 MGF1-SHA-256 salt 32 through verifyPss', async (t) => {
  const file = loadVectors('rsa_pss_2048_sha256_mgf1_32_test.json');
  let count = 0;
  const mismatches: string[] = [];
  for (const group of file.testGroups) {
    t.equal(group.sLen, PSS_SALT_LENGTH);
    t.equal(group.mgfSha, 'SHA-256');
    for (const v of group.tests) {
      count++;
      const got = verifyPss(Buffer.from(v.msg, 'hex'), Buffer.from(v.sig, 'hex'), group.publicKeyPem);
      // The file has no "acceptable" vectors; treat one as invalid if it ever appears.
      if (got !== (v.result === 'valid'))
        mismatches.push(`tcId ${v.tcId} (${v.result}, ${v.flags.join(',')}): got ${got}`);
    }
  }
  t.equal(count, file.numberOfTests, 'every vector ran');
  t.same(mismatches, [], 'every vector matches');
});

t.test('sign/verify round trips; PSS salt length is fixed at 32 on verify', async (t) => {
  const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair(2048);
  t.match(privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');
  t.match(publicKeyPem, /^-----BEGIN PUBLIC KEY-----\n/, 'SPKI PEM');
  const priv = createPrivateKey(privateKeyPem);
  t.equal(priv.asymmetricKeyDetails?.modulusLength, 2048);
  const data = Buffer.from('transcript');

  const s1 = await signPkcs1Sha256(data, privateKeyPem);
  t.equal(s1.length, 256);
  t.ok(verifyPkcs1Sha256(data, s1, publicKeyPem), 'PKCS#1 verifies (PEM key)');
  t.ok(verifyPkcs1Sha256(data, s1, toPublicKey(publicKeyPem)), 'PKCS#1 verifies (KeyObject)');
  t.notOk(verifyPkcs1Sha256(Buffer.from('transcripT'), s1, publicKeyPem), 'other data');
  t.notOk(verifyPss(data, s1, publicKeyPem), 'a PKCS#1 signature is not a PSS signature');

  const s2 = await signPss(data, priv);
  t.ok(verifyPss(data, s2, publicKeyPem), 'PSS verifies');
  t.notOk(verifyPkcs1Sha256(data, s2, publicKeyPem), 'a PSS signature is not a PKCS#1 signature');
  const flipped = Buffer.from(s2);
  flipped[10] = flipped[10]! ^ 1;
  t.notOk(verifyPss(data, flipped, publicKeyPem), 'flipped bit');
  t.notOk(verifyPss(data, s2.subarray(1), publicKeyPem), 'short signature is false, not an exception');
  t.notOk(verifyPss(data, Buffer.concat([s2, Buffer.from([0])]), publicKeyPem), 'long signature');

  // What an attacker could produce with node's defaults: PSS signatures with salt 0 (deterministic) or
  // 64. Node's verify would accept them with its default RSA_PSS_SALTLEN_AUTO; ours must not.
  for (const saltLength of [0, 20, 64]) {
    const other = cryptoSign('sha256', data, {
      key: priv,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength,
    });
    t.notOk(verifyPss(data, other, publicKeyPem), `salt length ${saltLength} refused`);
  }
});

t.test('property: verifyPss(m, signPss(m)) and any single-bit change of m fails', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 64 }), fc.nat(), async (bytes, bit) => {
      const m = Buffer.from(bytes);
      const sig = await signPss(m, privateKey);
      if (!verifyPss(m, sig, publicKey)) return false;
      if (m.length === 0) return true;
      const changed = Buffer.from(m);
      const i = bit % (m.length * 8);
      changed[i >> 3] = changed[i >> 3]! ^ (1 << (i & 7));
      return !verifyPss(changed, sig, publicKey);
    }),
    { numRuns: 25 },
  );
  t.pass('property held');
});

t.test('keys: type and size checks, no key material in errors', async (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await t.rejects(signPkcs1Sha256(Buffer.from('x'), ec.privateKey), { code: 'unsupported_key' });
  t.throws(() => verifyPss(Buffer.from('x'), Buffer.alloc(256), ec.publicKey), { code: 'unsupported_key' });
  const garbage = '-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGtleSBtYXRlcmlhbA==\n-----END PRIVATE KEY-----\n';
  await t.rejects(signPss(Buffer.from('x'), garbage), {
    code: 'malformed_pem',
    message: 'invalid private key',
  });
  t.throws(() => verifyPkcs1Sha256(Buffer.from('x'), Buffer.alloc(256), 'not a key'), {
    code: 'malformed_pem',
    message: 'invalid public key',
  });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
  t.throws(() => toPrivateKey(rsa.publicKey), { code: 'bad_request' });
  t.equal(toPublicKey(rsa.privateKey).type, 'public', 'a private key yields its public half');
  await t.rejects(generateRsaKeyPair(1000), { code: 'bad_request' });
  await t.rejects(generateRsaKeyPair(2047), { code: 'bad_request' });
  await t.rejects(generateRsaKeyPair(Number.NaN), { code: 'bad_request' });
});

t.test('keys: the public exponent must be 65537 (RSA_PUBLIC_EXPONENT)', async (t) => {
  for (const e of [3, 17, 0x10003, 0xffffffff]) {
    const pair = generateKeyPairSync('rsa', { modulusLength: 1024, publicExponent: e });
    const refused = { code: 'unsupported_key', message: /public exponent .* 65537/ };
    t.throws(() => toPublicKey(pair.publicKey), refused, `public key, e=${e}`);
    t.throws(
      () => toPublicKey(pair.publicKey.export({ type: 'spki', format: 'pem' }) as string),
      refused,
      `PEM, e=${e}`,
    );
    t.throws(() => toPrivateKey(pair.privateKey), refused, `private key, e=${e}`);
    t.throws(() => verifyPss(Buffer.from('x'), Buffer.alloc(128), pair.publicKey), refused);
    await t.rejects(signPss(Buffer.from('x'), pair.privateKey), refused);
  }
  const ok = generateKeyPairSync('rsa', { modulusLength: 1024, publicExponent: 65537 });
  t.equal(toPublicKey(ok.publicKey).asymmetricKeyDetails?.publicExponent, 65537n);
});
