// shared/pki/spki.ts: the canonical RSA SubjectPublicKeyInfo built from a JWK export must be byte for
// byte node:crypto's own SPKI export (certificates and CSR results carry it), and the strict reader must
// import exactly what OpenSSL would, refusing other algorithms and malformed DER with their codes.
import t from 'tap';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { importRsaSpki, rsaSpkiDer, rsaSpkiPem } from '../../../shared/pki/spki.js';
import { modulusOf, rsaSpki } from '../../helpers/hostile-csr.js';

const keys = [
  generateKeyPairSync('rsa', { modulusLength: 1024 }),
  generateKeyPairSync('rsa', { modulusLength: 2048 }),
  generateKeyPairSync('rsa', { modulusLength: 2056 }), // a modulus length that is not a power of two
  generateKeyPairSync('rsa', { modulusLength: 3072 }),
];

t.test('DER and PEM equal node:crypto export; import round-trips', async (t) => {
  for (const { publicKey, privateKey } of keys) {
    const bits = publicKey.asymmetricKeyDetails?.modulusLength;
    const der = publicKey.export({ type: 'spki', format: 'der' });
    t.same(rsaSpkiDer(publicKey), der, `DER ${bits}`);
    t.same(rsaSpkiDer(privateKey), der, `DER from the private key ${bits}`);
    t.equal(rsaSpkiPem(publicKey), publicKey.export({ type: 'spki', format: 'pem' }), `PEM ${bits}`);
    const imported = importRsaSpki(der);
    t.ok(imported.equals(publicKey), `import ${bits}`);
    t.equal(imported.type, 'public');
  }
});

t.test('public exponents other than 65537: unsupported_key, before OpenSSL sees the key', async (t) => {
  const n = modulusOf(keys[1]!.publicKey);
  const refused = { code: 'unsupported_key', message: 'RSA public exponent must be 65537' };
  for (const e of [3n, 17n, 65539n, 2n ** 32n + 1n, 2n ** 3063n + 1n])
    t.throws(() => importRsaSpki(rsaSpki(n, e)), refused, `e = ${e > 2n ** 64n ? 'a 3064-bit number' : e}`);
  const e3 = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey;
  t.throws(() => importRsaSpki(e3.export({ type: 'spki', format: 'der' })), refused, 'from node:crypto');
  t.ok(importRsaSpki(rsaSpki(n, 65537n)).equals(keys[1]!.publicKey), '65537 imports');
  // An even exponent or one below 3 is not an RSA key at all (malformed), as before.
  t.throws(() => importRsaSpki(rsaSpki(n, 65536n)), { code: 'malformed_pem' });
  t.throws(() => importRsaSpki(rsaSpki(n, 1n)), { code: 'malformed_pem' });
});

t.test('other algorithms: unsupported_key', async (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  t.throws(() => importRsaSpki(ec.export({ type: 'spki', format: 'der' })), { code: 'unsupported_key' });
  t.throws(() => rsaSpkiDer(ec), { code: 'unsupported_key' });
  const ed = generateKeyPairSync('ed25519').publicKey;
  t.throws(() => importRsaSpki(ed.export({ type: 'spki', format: 'der' })), { code: 'unsupported_key' });
});

t.test('malformed DER: malformed_pem', async (t) => {
  const der = keys[1]!.publicKey.export({ type: 'spki', format: 'der' });
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['truncated', der.subarray(0, der.length - 1)],
    ['trailing byte', Buffer.concat([der, Buffer.from([0])])],
    ['garbage', Buffer.from('not a key')],
  ];
  // Parameters other than NULL: replace "05 00" after the rsaEncryption OID with "04 00".
  const params = Buffer.from(der);
  const at = params.indexOf(Buffer.from('0500', 'hex'));
  params[at] = 0x04;
  cases.push(['non-NULL parameters', params]);
  // Unused bits in the key's BIT STRING.
  const bits = Buffer.from(der);
  const bitAt = bits.indexOf(Buffer.from('0500', 'hex')) + 2; // BIT STRING tag follows the AlgorithmIdentifier
  bits[bitAt + 4] = 1; // 03 82 LL LL <unused>
  cases.push(['unused bits', bits]);
  for (const [name, bad] of cases) t.throws(() => importRsaSpki(bad), { code: 'malformed_pem' }, name);
  // A modulus that OpenSSL itself refuses (zero) is malformed too.
  const zero = Buffer.from(
    '301a300d06092a864886f70d010101050003090030060201000201 03'.replace(/ /g, ''),
    'hex',
  );
  t.throws(() => importRsaSpki(zero), { code: 'malformed_pem' });
  t.ok(createPublicKey({ key: der, format: 'der', type: 'spki' }).equals(importRsaSpki(der)));
});
