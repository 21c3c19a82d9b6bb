// Ephemeral Diffie-Hellman for the handshake: X25519 (RFC 7748) and ffdhe2048 (RFC 7919 appendix A.1),
// both on node:crypto, with the peer-value checks each RFC requires.
//
// Wire form of public values (RFC 8446 section 4.2.8.1/4.2.8.2, the same as TLS 1.3): X25519 is the raw
// 32-byte u-coordinate; ffdhe2048 is Y "encoded as a big-endian integer and padded to the left with
// zeros to the size of p in bytes" (256 bytes). The shared secret Z is 32 bytes for X25519 and, for
// ffdhe2048, big-endian left-padded to 256 bytes (RFC 8446 section 7.4.1: "the negotiated key (Z) is
// converted to a byte string by encoding in big-endian form and left-padded with zeros up to the size
// of the prime").
//
// Performance choices (measured on Node 20.20.2, OpenSSL 3.0): OpenSSL 3's DER encoders/decoders are slow
// for tiny keys (SPKI import ~80 us, SPKI export ~77 us) while the raw paths are not. So:
//  - our X25519 public key is computed as X25519(k, 9) with one diffieHellman() against the base point
//    (RFC 7748 section 6.1: Alice's public key is "X25519(a, 9)"), ~32 us, instead of an SPKI export;
//    JWK export is never used (DEVELOPERS.md: Node 20.20.2 can deadlock exporting fresh X25519 keys as JWK);
//  - the peer's raw public key is IMPORTED through a JWK object { kty: 'OKP', crv: 'X25519', x } (~6 us vs
//    ~80 us for SPKI DER). This is an import, not the export that deadlocks; a 1,000,000-iteration loop of
//    keygen + import + derive ran clean. The SPKI form is kept for the fixed base point only.
import {
  createDiffieHellman,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { AuthError, InputError } from '../errors.js';
import { equalBytes } from './ct.js';
import { randomBytes } from './random.js';

export type DhGroup = 'x25519' | 'ffdhe2048';
/** In kds preference order. */
export const DH_GROUPS: readonly DhGroup[] = ['x25519', 'ffdhe2048'];

export function isDhGroup(value: unknown): value is DhGroup {
  return value === 'x25519' || value === 'ffdhe2048';
}

export const X25519_KEY_BYTES = 32;

/** RFC 7919 appendix A.1, ffdhe2048: p = 2^2048 - 2^1984 + {[2^1918 * e] + 560316} * 2^64 - 1, g = 2. */
export const FFDHE2048_PRIME = Buffer.from(
  'FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695' +
    'A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A' +
    'D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935' +
    '984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A' +
    'BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4' +
    'AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61' +
    '9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005' +
    'C58EF1837D1683B2C6F34A26C1B2EFFA886B423861285C97FFFFFFFFFFFFFFFF',
  'hex',
);
const FFDHE2048_GENERATOR = 2;
const FFDHE2048_BYTES = 256;
/**
 * Private exponent size for ffdhe2048: 256 random bits. RFC 7919 section 5.2 allows short exponents
 * sized to the group's security strength (it lists 225 bits for ffdhe2048); 256 bits keeps a margin and
 * makes the modular exponentiation ~8x cheaper than a full-size exponent.
 */
const FFDHE2048_PRIVATE_BYTES = 32;

const P_MINUS_1 = (() => {
  const b = Buffer.from(FFDHE2048_PRIME);
  const last = b.length - 1;
  b.writeUInt8(b.readUInt8(last) - 1, last); // p ends in 0xff: no borrow
  return b;
})();

export function dhPublicKeyLength(group: DhGroup): number {
  return group === 'x25519' ? X25519_KEY_BYTES : FFDHE2048_BYTES;
}

export interface DhKeyPair {
  readonly group: DhGroup;
  /** Wire form (see header). */
  readonly publicKey: Buffer;
  /** Validates the peer's public value, then returns Z (see header). Throws AuthError bad_dh_public. */
  deriveSharedSecret(peerPublicKey: Uint8Array): Buffer;
}

/**
 * A fresh ephemeral key pair. `fixedPrivateKey` exists for protocol test vectors ONLY (32 bytes for
 * X25519, the scalar before clamping; 1..256 bytes big-endian for ffdhe2048).
 */
export function generateDhKeyPair(group: DhGroup, fixedPrivateKey?: Uint8Array): DhKeyPair {
  if (group === 'x25519') return generateX25519(fixedPrivateKey);
  if (group === 'ffdhe2048') return generateFfdhe2048(fixedPrivateKey);
  throw new InputError('bad_request', `unsupported DH group ${String(group)}`);
}

/** Throws AuthError bad_dh_public unless `publicKey` is a well-formed public value for `group`. */
export function validateDhPublicKey(group: DhGroup, publicKey: Uint8Array): void {
  const expected = dhPublicKeyLength(group);
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== expected) {
    const got = publicKey instanceof Uint8Array ? `${publicKey.length}` : 'no bytes';
    throw new AuthError('bad_dh_public', `expected ${group} public key of ${expected} bytes, got ${got}`);
  }
  if (group === 'ffdhe2048') {
    // RFC 7919 section 5.1 and RFC 8446 section 4.2.8.1: "Peers MUST validate each other's public key Y
    // by ensuring that 1 < Y < p-1." With p a safe prime this rejects the elements of order 1 and 2
    // (0, 1, p-1), the only small subgroups there are. Equal-length big-endian strings compare as numbers.
    if (Buffer.compare(publicKey, ONE_256) <= 0 || Buffer.compare(publicKey, P_MINUS_1) >= 0) {
      throw new AuthError('bad_dh_public', 'invalid Diffie-Hellman public key');
    }
  }
  // X25519: every 32-byte string is a valid input (RFC 7748 section 5: implementations "MUST accept
  // non-canonical values and process them as if they had been reduced"); low-order points are caught
  // by the all-zero check on the shared secret instead.
}

const ONE_256 = (() => {
  const b = Buffer.alloc(FFDHE2048_BYTES);
  b[FFDHE2048_BYTES - 1] = 1;
  return b;
})();

// --- X25519 -------------------------------------------------------------------------------------

const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex'); // RFC 8410 section 7
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex'); // RFC 8410 section 4
const BASE_POINT = createPublicKey({
  key: Buffer.concat([X25519_SPKI_PREFIX, Buffer.from([9]), Buffer.alloc(31)]), // u = 9, little-endian
  format: 'der',
  type: 'spki',
});
const ZERO_32 = Buffer.alloc(X25519_KEY_BYTES);

// Fixed private keys exist only for test vectors and tests that replay one handshake many times; a PKCS#8
// import costs ~0.4 ms (OpenSSL 3 decoders), so the last few imported keys are kept.
const fixedKeys = new Map<string, KeyObject>();

function importFixedX25519(raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw).toString('hex');
  let key = fixedKeys.get(id);
  if (key === undefined) {
    key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
    if (fixedKeys.size >= 16) fixedKeys.clear();
    fixedKeys.set(id, key);
  }
  return key;
}

function generateX25519(fixedPrivateKey?: Uint8Array): DhKeyPair {
  let privateKey: KeyObject;
  if (fixedPrivateKey === undefined) {
    privateKey = generateKeyPairSync('x25519').privateKey;
  } else {
    if (fixedPrivateKey.length !== X25519_KEY_BYTES) {
      throw new InputError(
        'bad_request',
        `expected x25519 private key of 32 bytes, got ${fixedPrivateKey.length}`,
      );
    }
    privateKey = importFixedX25519(fixedPrivateKey);
  }
  const publicKey = diffieHellman({ privateKey, publicKey: BASE_POINT });
  return {
    group: 'x25519',
    publicKey,
    deriveSharedSecret(peer: Uint8Array): Buffer {
      validateDhPublicKey('x25519', peer);
      let secret: Buffer;
      try {
        const peerKey = createPublicKey({
          key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(peer).toString('base64url') },
          format: 'jwk',
        });
        secret = diffieHellman({ privateKey, publicKey: peerKey });
      } catch {
        // OpenSSL itself refuses an all-zero result ("failed during derivation"); same code either way.
        throw new AuthError('bad_dh_public', 'invalid Diffie-Hellman public key');
      }
      // RFC 8446 section 7.4.2: "For X25519 and X448, implementations MUST check whether the computed
      // Diffie-Hellman shared secret is the all-zero value and abort if so." RFC 7748 section 6.1 asks
      // for the check "without leaking extra information about the value of K": constant-time compare.
      if (equalBytes(secret, ZERO_32))
        throw new AuthError('bad_dh_public', 'invalid Diffie-Hellman public key');
      return secret;
    },
  };
}

// --- ffdhe2048 ----------------------------------------------------------------------------------

function generateFfdhe2048(fixedPrivateKey?: Uint8Array): DhKeyPair {
  // createDiffieHellman(prime) does not run DH_check (measured ~4 us); the prime is a constant.
  const dh = createDiffieHellman(FFDHE2048_PRIME, FFDHE2048_GENERATOR);
  let x: Buffer;
  if (fixedPrivateKey === undefined) {
    do x = randomBytes(FFDHE2048_PRIVATE_BYTES);
    while (x.every((b, i) => (i === x.length - 1 ? b <= 1 : b === 0))); // x >= 2 (never happens in practice)
  } else {
    if (fixedPrivateKey.length < 1 || fixedPrivateKey.length > FFDHE2048_BYTES) {
      throw new InputError(
        'bad_request',
        `expected ffdhe2048 private key of 1..256 bytes, got ${fixedPrivateKey.length}`,
      );
    }
    x = Buffer.from(fixedPrivateKey);
  }
  dh.setPrivateKey(x);
  dh.generateKeys(); // with a private key set, computes Y = g^x mod p only
  const publicKey = leftPad(dh.getPublicKey(), FFDHE2048_BYTES);
  return {
    group: 'ffdhe2048',
    publicKey,
    deriveSharedSecret(peer: Uint8Array): Buffer {
      validateDhPublicKey('ffdhe2048', peer);
      let secret: Buffer;
      try {
        secret = dh.computeSecret(peer);
      } catch {
        throw new AuthError('bad_dh_public', 'invalid Diffie-Hellman public key');
      }
      return leftPad(secret, FFDHE2048_BYTES);
    },
  };
}

function leftPad(value: Buffer, length: number): Buffer {
  if (value.length === length) return value;
  if (value.length > length)
    throw new InputError('bad_request', `value of ${value.length} bytes exceeds ${length}`);
  return Buffer.concat([Buffer.alloc(length - value.length), value]);
}
