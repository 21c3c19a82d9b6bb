// Certification requests no honest tool makes, for the hostile-peer tests: an RSA key whose public
// exponent is not 65537 (a ~3,064-bit one makes every RSA verification with it ~150x dearer than
// with 65537), built by hand from the asn1 helpers because node:crypto generates exponents of at most
// 32 bits. The signature is random bytes below the modulus: a verifier still has to do the whole
// modular exponentiation to find it wrong.
import { randomBytes, type KeyObject } from 'node:crypto';
import {
  derBitString,
  derNull,
  derOid,
  derSequence,
  derUnsignedInteger,
  readOne,
  sequenceOf,
} from '../../shared/pki/asn1.js';
import { createCsr } from '../../shared/pki/csr.js';
import { OID } from '../../shared/pki/oids.js';
import { derToPem, pemToDer } from '../../shared/pki/pem.js';
import { sha256WithRsaAlgorithm } from '../../shared/pki/x509.js';
import { testKeyPair } from './kdc-in-process.js';

/** A random odd exponent of `bits` bits (top bit set). */
function hugeExponent(bits: number): Buffer {
  const e = randomBytes(Math.ceil(bits / 8));
  const spare = e.length * 8 - bits;
  e[0] = (e[0]! & (0xff >> spare)) | (0x80 >> spare);
  e[e.length - 1]! |= 1;
  return e;
}

/** SubjectPublicKeyInfo DER of an RSA key with modulus `n` and exponent `e` (any values). */
export function rsaSpki(n: Buffer, e: Buffer | bigint | number): Buffer {
  return derSequence([
    derSequence([derOid(OID.rsaEncryption), derNull()]),
    derBitString(derSequence([derUnsignedInteger(n), derUnsignedInteger(e)])),
  ]);
}

/** The modulus of an RSA public key. */
export function modulusOf(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).n as string, 'base64url');
}

/**
 * A real RSA-3072 modulus (OpenSSL caps the exponent at 64 bits only above 3,072-bit moduli): that of a
 * key generated once with node:crypto and written down here, as generating one costs a test process
 * about a second of CPU. Only the public modulus is used; the key's private half was never kept.
 */
const MODULUS_3072 = Buffer.from(
  [
    'mJs6sh3uGBpFskxf4Z+23fEkL2gBp2V9l9PTfCx3dNeQP36mUZrx68BGkI/o/sQVRjvPM5S1IWLgPSw7ERFpgM2xuRIv2nld',
    'fcOFfMHcmtUZvGK6JF5YNJfpWca5BYJafmGOsjaM98KZURZjOvszDx+WHazx8r9i63OceHHNsAqyFkUHF4+wDNZPOsTsJ5Lz',
    '9BSSyzqSW9JA3NIZhbceRJtl8WOLBwe6Phz5fmx3Ta3/P638KHrY+bXV50YEBthSiueNnb4iy1WxI1LRpU6k0++CH6fEzgcw',
    'O1sI7DoJEDP7L/KvkPn5fXZjLWs+slMS/YAAXgwC433frUe0peWXWzB2X1YpR96P3sZqDHZTW2DcSe9hv4VstLnQnQs6BhVC',
    'US5CLnJzs/Q+lST0mCcbHsFVFNQ7LWEqJCRUoBYNzYnIFolDsT6W9YEtEvpihWlMvHUqzijpiPzH8kduwb++45897mWf368b',
    'BsMq2vgyIipGYfvUafj+TguYlVYFCTv3',
  ].join(''),
  'base64',
);

/**
 * A CSR for CN=`name` whose key is `spki` (DER) and whose signature is random bytes of the modulus
 * size, just below the modulus (so a verifier cannot refuse it before exponentiating).
 */
async function csrWithSpki(name: string, spki: Buffer, modulusBytes = 384): Promise<string> {
  const pair = await testKeyPair();
  const honest = pemToDer(
    await createCsr(name, pair.privateKeyPem, pair.publicKeyPem),
    'CERTIFICATE REQUEST',
  );
  const [cri] = sequenceOf(readOne(honest));
  const fields = sequenceOf(cri!).map((f) => f.bytes);
  fields[2] = spki;
  const signature = randomBytes(modulusBytes);
  signature[0] = 0x01;
  return derToPem(
    derSequence([derSequence(fields), sha256WithRsaAlgorithm(), derBitString(signature)]),
    'CERTIFICATE REQUEST',
  );
}

/** The attack CSR: RSA-3072 with a 3,064-bit public exponent. */
export function hugeExponentCsr(name: string): Promise<string> {
  return csrWithSpki(name, rsaSpki(MODULUS_3072, hugeExponent(3064)));
}
