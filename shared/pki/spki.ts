// RSA SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7, RFC 8017 appendix A.1.1) to and from node:crypto
// KeyObjects WITHOUT OpenSSL's DER/PEM encoders and decoders. On Node 20 (OpenSSL 3) a PEM or DER key
// import costs ~165 us and an SPKI export ~100-180 us, against ~25 us to import and ~2 us to export
// the same key as JWK (bench/issue.ts: the encoders and decoders were a quarter of the KDC's main-thread
// CPU per issued certificate). The DER here is the one canonical encoding:
//
//   SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
//   algorithm = { rsaEncryption, NULL }   (RFC 3279 2.3.1: "the parameters field MUST have ASN.1 type NULL")
//   RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
//
// which is byte for byte what node:crypto exports (test/shared/pki/spki.test.ts compares them).
import { createPublicKey, type KeyObject } from 'node:crypto';
import { RSA_EXPONENT_REFUSED, RSA_PUBLIC_EXPONENT } from '../crypto/rsa.js';
import { InputError } from '../errors.js';
import {
  derBitString,
  derNull,
  derOid,
  derSequence,
  derUnsignedInteger,
  readBitString,
  readIntegerBytes,
  readOid,
  readOne,
  sequenceOf,
  TAG,
} from './asn1.js';
import { OID } from './oids.js';
import { derToPem } from './pem.js';

const RSA_ALGORITHM = derSequence([derOid(OID.rsaEncryption), derNull()]);
/** The magnitude of RSA_PUBLIC_EXPONENT as a minimal DER INTEGER holds it: 01 00 01. */
const F4_BYTES = Buffer.from(RSA_PUBLIC_EXPONENT.toString(16).padStart(6, '0'), 'hex');

// The canonical DER of each KeyObject, computed once: issuance needs it for the CSR's key in csr.ts
// (its PEM), in x509.ts (the certificate's SPKI, the key identifier) and to check that a key passed along
// is the one a PEM names. KeyObjects are immutable, so the cache cannot go stale.
const spkiOf = new WeakMap<KeyObject, Buffer>();

/** The canonical SPKI DER of an RSA public (or private: its public half) KeyObject. */
export function rsaSpkiDer(key: KeyObject): Buffer {
  const cached = spkiOf.get(key);
  if (cached !== undefined) return Buffer.from(cached); // a copy: callers may write into theirs
  const der = encodeRsaSpki(key);
  spkiOf.set(key, der);
  return Buffer.from(der);
}

function encodeRsaSpki(key: KeyObject): Buffer {
  if (key.asymmetricKeyType !== 'rsa') {
    throw new InputError('unsupported_key', `expected an RSA key, got ${String(key.asymmetricKeyType)}`);
  }
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string')
    throw new InputError('malformed', 'RSA key without n, e');
  const rsaPublicKey = derSequence([
    derUnsignedInteger(Buffer.from(jwk.n, 'base64url')),
    derUnsignedInteger(Buffer.from(jwk.e, 'base64url')),
  ]);
  return derSequence([RSA_ALGORITHM, derBitString(rsaPublicKey)]);
}

/** rsaSpkiDer as PEM ("PUBLIC KEY"), identical to key.export({ type: 'spki', format: 'pem' }). */
export function rsaSpkiPem(key: KeyObject): string {
  return derToPem(rsaSpkiDer(key), 'PUBLIC KEY');
}

/**
 * Import an RSA SPKI (DER) through JWK. Strict: exactly the structure above (DER, NULL parameters,
 * positive minimal INTEGERs, odd modulus and exponent >= 3, nothing trailing); any other algorithm, and
 * any public exponent but 65537 (RSA_PUBLIC_EXPONENT, read from the DER before OpenSSL sees the key), is
 * `unsupported_key`, anything malformed `malformed_pem`. OpenSSL still checks the key itself when it
 * imports the JWK.
 */
export function importRsaSpki(der: Buffer): KeyObject {
  let n: Buffer;
  let e: Buffer;
  try {
    const [algorithm, bits, ...rest] = sequenceOf(readOne(der));
    if (algorithm === undefined || bits === undefined || rest.length > 0) throw new Error('SPKI shape');
    const [oid, params, ...more] = sequenceOf(algorithm);
    if (oid === undefined || more.length > 0) throw new Error('AlgorithmIdentifier shape');
    const algorithmOid = readOid(oid);
    if (algorithmOid !== OID.rsaEncryption) {
      throw new InputError(
        'unsupported_key',
        `expected an RSA key (rsaEncryption), got algorithm ${algorithmOid}`,
      );
    }
    if (params === undefined || params.tag !== TAG.NULL || params.content.length !== 0)
      throw new Error('parameters');
    const { unusedBits, bytes } = readBitString(bits);
    if (unusedBits !== 0) throw new Error('BIT STRING');
    const [modulus, exponent, ...extra] = sequenceOf(readOne(bytes));
    if (modulus === undefined || exponent === undefined || extra.length > 0)
      throw new Error('RSAPublicKey shape');
    const m = readIntegerBytes(modulus);
    const x = readIntegerBytes(exponent);
    if (m.negative || x.negative) throw new Error('negative');
    n = m.magnitude;
    e = x.magnitude;
    // Stricter than OpenSSL, which imports a zero modulus: an RSA modulus and exponent are odd and the
    // exponent is at least 3 (RFC 8017 3.1).
    if ((n[n.length - 1]! & 1) === 0 || (e[e.length - 1]! & 1) === 0 || (e.length === 1 && e[0]! < 3)) {
      throw new Error('not an RSA public key');
    }
    if (!e.equals(F4_BYTES)) throw new InputError('unsupported_key', RSA_EXPONENT_REFUSED);
  } catch (err) {
    if (err instanceof InputError && err.code === 'unsupported_key') throw err;
    throw new InputError('malformed_pem', 'invalid RSA public key', undefined, { cause: err });
  }
  try {
    return createPublicKey({
      key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') },
      format: 'jwk',
    });
  } catch (err) {
    throw new InputError('malformed_pem', 'invalid RSA public key', undefined, { cause: err });
  }
}
