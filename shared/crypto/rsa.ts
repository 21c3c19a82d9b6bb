// RSA key generation, PKCS#1 v1.5 (RFC 8017 section 8.2) and RSASSA-PSS (RFC 8017 section 8.1) signatures
// with SHA-256, all on node:crypto. Signing uses the callback form of crypto.sign so the private-key
// operation runs on the libuv thread pool instead of blocking the event loop (DEVELOPERS.md: ~1,900
// signs/s on 2 cores vs ~1,000 with the sync form). Verifying a signature that came from the network
// uses the callback forms too (verifyPssAsync, verifyPkcs1Sha256Async).
//
// Every RSA key kds imports must have the public exponent 65537 (RSA_PUBLIC_EXPONENT, docs/security.md):
// the cost of a verification grows with the exponent's length (17 bits here; a 3,064-bit exponent made
// one CSR check ~150x dearer, enough for one anonymous peer to freeze the KDC), and 65537 is what every
// mainstream tool generates.
//
// Keys are accepted as KeyObject or PEM. A PEM string is parsed on every call; callers on hot paths
// import the key once (createPrivateKey/createPublicKey, or toPrivateKey/toPublicKey below) and pass
// the KeyObject: caching imported keys is the caller's job, this module keeps no state.
import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  KeyObject,
  sign as cryptoSign,
  verify as cryptoVerify,
} from 'node:crypto';
import { InputError } from '../errors.js';

export type PrivateKeyInput = KeyObject | string;
export type PublicKeyInput = KeyObject | string;

export interface RsaKeyPair {
  privateKeyPem: string; // PKCS#8 PEM, unencrypted (encrypt before it touches a disk)
  publicKeyPem: string; // SPKI PEM
}

/** Accepted modulus sizes for generation. 1024 only exists so tests can build weak keys to be refused. */
const RSA_MIN_GENERATE_BITS = 1024;
const RSA_MAX_GENERATE_BITS = 8192;

/**
 * RSASSA-PSS salt length, fixed and explicit on BOTH sign and verify. Node's verify default is
 * RSA_PSS_SALTLEN_AUTO, which recovers the salt length from the signature and so would accept a salt of
 * 0 bytes (a deterministic signature) or any other length; we accept exactly the hash length (32 bytes,
 * RFC 8017 section 9.1: "Typical salt lengths in octets are hLen ... and 0").
 */
export const PSS_SALT_LENGTH = 32;

const HASH = 'sha256';

/** The one RSA public exponent kds accepts (F4, RFC 8017 leaves e free; every mainstream tool uses this). */
export const RSA_PUBLIC_EXPONENT = 65537;
/** The fixed message of every refusal of another exponent (code `unsupported_key`). */
export const RSA_EXPONENT_REFUSED = 'RSA public exponent must be 65537';
const F4 = BigInt(RSA_PUBLIC_EXPONENT);

/** Throws `unsupported_key` unless `key` (public or private RSA) has the public exponent 65537. */
export function assertRsaPublicExponent(key: KeyObject): KeyObject {
  if (key.asymmetricKeyDetails?.publicExponent !== F4) {
    throw new InputError('unsupported_key', RSA_EXPONENT_REFUSED);
  }
  return key;
}

export function generateRsaKeyPair(bits: number): Promise<RsaKeyPair> {
  if (
    !Number.isInteger(bits) ||
    bits < RSA_MIN_GENERATE_BITS ||
    bits > RSA_MAX_GENERATE_BITS ||
    bits % 8 !== 0
  ) {
    return Promise.reject(
      new InputError(
        'bad_request',
        `expected RSA key size as a multiple of 8 in ${RSA_MIN_GENERATE_BITS}..${RSA_MAX_GENERATE_BITS}, got ${String(bits)}`,
      ),
    );
  }
  return new Promise((resolve, reject) => {
    generateKeyPair(
      'rsa',
      {
        modulusLength: bits,
        publicExponent: 0x10001,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      },
      (err, publicKeyPem, privateKeyPem) => {
        if (err) reject(err);
        else resolve({ privateKeyPem, publicKeyPem });
      },
    );
  });
}

/** Import (or pass through) an RSA private key; anything else is refused before any crypto runs. */
export function toPrivateKey(key: PrivateKeyInput): KeyObject {
  let obj: KeyObject;
  if (key instanceof KeyObject) {
    obj = key;
  } else {
    try {
      obj = createPrivateKey(key);
    } catch {
      // Never echo the input: it is key material.
      throw new InputError('malformed_pem', 'invalid private key');
    }
  }
  if (obj.type !== 'private')
    throw new InputError('bad_request', `expected a private key, got a ${obj.type} key`);
  return assertRsa(obj);
}

/** Import (or pass through) an RSA public key. A private key is accepted and its public half used. */
export function toPublicKey(key: PublicKeyInput): KeyObject {
  let obj: KeyObject;
  if (key instanceof KeyObject) {
    obj = key.type === 'private' ? createPublicKey(key) : key;
  } else {
    try {
      obj = createPublicKey(key);
    } catch {
      throw new InputError('malformed_pem', 'invalid public key');
    }
  }
  if (obj.type === 'secret') throw new InputError('bad_request', 'expected a public key, got a secret key');
  return assertRsa(obj);
}

function assertRsa(key: KeyObject): KeyObject {
  // 'rsa-pss' keys (id-RSASSA-PSS SPKI) are refused too: kds certificates carry rsaEncryption keys and
  // choose the padding per use, which an rsa-pss key would forbid.
  if (key.asymmetricKeyType !== 'rsa') {
    throw new InputError('unsupported_key', `expected an RSA key, got ${String(key.asymmetricKeyType)}`);
  }
  return assertRsaPublicExponent(key);
}

function signAsync(data: Uint8Array, key: Parameters<typeof cryptoSign>[2]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    cryptoSign(HASH, data, key, (err, signature) => {
      if (err) reject(err);
      else resolve(signature);
    });
  });
}

/** RSASSA-PKCS1-v1_5 with SHA-256 (sha256WithRSAEncryption): certificates, CRLs, CSRs. */
export function signPkcs1Sha256(data: Uint8Array, privateKey: PrivateKeyInput): Promise<Buffer> {
  let key: KeyObject;
  try {
    key = toPrivateKey(privateKey);
  } catch (err) {
    return Promise.reject(err);
  }
  return signAsync(data, { key, padding: constants.RSA_PKCS1_PADDING });
}

export function verifyPkcs1Sha256(
  data: Uint8Array,
  signature: Uint8Array,
  publicKey: PublicKeyInput,
): boolean {
  const key = toPublicKey(publicKey);
  return verifyOrFalse(data, signature, { key, padding: constants.RSA_PKCS1_PADDING });
}

/**
 * RSASSA-PKCS1-v1_5 verification on the thread pool (the callback form), with SHA-256 or a longer
 * SHA-2 (what a CSR's self-signature may use): for signatures from the network.
 */
export function verifyPkcs1Async(
  hash: 'sha256' | 'sha384' | 'sha512',
  data: Uint8Array,
  signature: Uint8Array,
  publicKey: PublicKeyInput,
): Promise<boolean> {
  let key: KeyObject;
  try {
    key = toPublicKey(publicKey);
  } catch (err) {
    return Promise.reject(err);
  }
  return verifyAsyncOrFalse(hash, data, signature, { key, padding: constants.RSA_PKCS1_PADDING });
}

/** RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 bytes: handshake and transcript signatures. */
export function signPss(data: Uint8Array, privateKey: PrivateKeyInput): Promise<Buffer> {
  let key: KeyObject;
  try {
    key = toPrivateKey(privateKey);
  } catch (err) {
    return Promise.reject(err);
  }
  // MGF1 uses the signature hash (SHA-256) in OpenSSL unless told otherwise: MGF1-SHA256 here.
  return signAsync(data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH });
}

export function verifyPss(data: Uint8Array, signature: Uint8Array, publicKey: PublicKeyInput): boolean {
  const key = toPublicKey(publicKey);
  return verifyOrFalse(data, signature, {
    key,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: PSS_SALT_LENGTH,
  });
}

/** verifyPss on the thread pool (the callback form): for signatures from the network. */
export function verifyPssAsync(
  data: Uint8Array,
  signature: Uint8Array,
  publicKey: PublicKeyInput,
): Promise<boolean> {
  let key: KeyObject;
  try {
    key = toPublicKey(publicKey);
  } catch (err) {
    return Promise.reject(err);
  }
  return verifyAsyncOrFalse(HASH, data, signature, {
    key,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: PSS_SALT_LENGTH,
  });
}

function verifyAsyncOrFalse(
  hash: string,
  data: Uint8Array,
  signature: Uint8Array,
  key: Parameters<typeof cryptoVerify>[2],
): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      cryptoVerify(hash, data, key, signature, (err, ok) => resolve(err === null && ok));
    } catch {
      resolve(false);
    }
  });
}

// The key was validated above, so anything OpenSSL throws from here on is about the signature bytes
// (e.g. a signature longer than the modulus): that is a failed verification, not an error.
function verifyOrFalse(
  data: Uint8Array,
  signature: Uint8Array,
  key: Parameters<typeof cryptoVerify>[2],
): boolean {
  try {
    return cryptoVerify(HASH, data, key, signature);
  } catch {
    return false;
  }
}
