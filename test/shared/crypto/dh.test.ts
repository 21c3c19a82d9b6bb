// shared/crypto/dh.ts: Wycheproof X25519 through the wrapper the handshake uses, the ffdhe2048 group
// constants and the RFC 7919 / RFC 8446 public-value checks.
import t from 'tap';
import { checkPrimeSync, createDiffieHellman } from 'node:crypto';
import {
  DH_GROUPS,
  dhPublicKeyLength,
  FFDHE2048_PRIME,
  generateDhKeyPair,
  isDhGroup,
  validateDhPublicKey,
} from '../../../shared/crypto/dh.js';
import { KdsError } from '../../../shared/errors.js';
import { hex, loadWycheproof } from './wycheproof.js';

interface XdhTest {
  tcId: number;
  comment: string;
  flags: string[];
  public: string;
  private: string;
  shared: string;
  result: 'valid' | 'acceptable' | 'invalid';
}

t.test('Wycheproof x25519: all 518 vectors through generateDhKeyPair().deriveSharedSecret', async (t) => {
  const file = loadWycheproof<{ curve: string; tests: XdhTest[] }>('x25519_test.json');
  const tests = file.testGroups.flatMap((g) => g.tests);
  t.equal(tests.length, 518, 'every vector is present');
  let matched = 0;
  let rejectedZero = 0;
  for (const v of tests) {
    const pair = generateDhKeyPair('x25519', hex(v.private));
    const expected = hex(v.shared);
    if (expected.every((b) => b === 0)) {
      // RFC 8446 7.4.2: an all-zero shared secret MUST abort (Wycheproof flags these "acceptable").
      try {
        pair.deriveSharedSecret(hex(v.public));
        t.fail(`tcId ${v.tcId} (${v.comment}): zero shared secret accepted`);
      } catch (err) {
        if (!(err instanceof KdsError) || err.code !== 'bad_dh_public') throw err;
        rejectedZero += 1;
      }
    } else {
      const got = pair.deriveSharedSecret(hex(v.public));
      if (!got.equals(expected)) t.fail(`tcId ${v.tcId} (${v.comment}): wrong shared secret`);
      else matched += 1;
    }
  }
  t.equal(
    rejectedZero,
    31,
    'every zero-shared-secret (low-order public) vector is rejected with bad_dh_public',
  );
  t.equal(matched, 518 - 31, 'every other vector (valid, twist, non-canonical, ...) matches');
});

t.test('x25519 key pairs agree; public key is X25519(k, 9)', async (t) => {
  const a = generateDhKeyPair('x25519');
  const b = generateDhKeyPair('x25519');
  t.equal(a.publicKey.length, 32);
  t.not(a.publicKey.toString('hex'), b.publicKey.toString('hex'));
  t.same(a.deriveSharedSecret(b.publicKey), b.deriveSharedSecret(a.publicKey));
  // RFC 7748 section 6.1 test vector: Alice's private key -> public key.
  const alice = generateDhKeyPair(
    'x25519',
    hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'),
  );
  t.equal(
    alice.publicKey.toString('hex'),
    '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
  );
  const bob = generateDhKeyPair(
    'x25519',
    hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'),
  );
  t.equal(
    alice.deriveSharedSecret(bob.publicKey).toString('hex'),
    '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
  );
});

t.test('x25519 public key length is enforced', async (t) => {
  const a = generateDhKeyPair('x25519');
  for (const n of [0, 31, 33, 256]) {
    t.throws(() => a.deriveSharedSecret(Buffer.alloc(n, 1)), {
      code: 'bad_dh_public',
      message: `expected x25519 public key of 32 bytes, got ${n}`,
    });
  }
  t.throws(() => generateDhKeyPair('x25519', Buffer.alloc(31)), { code: 'bad_request' });
});

t.test('x25519 low-order points are refused (zero, one, order-8 points)', async (t) => {
  const a = generateDhKeyPair('x25519');
  const lowOrder = [
    '0000000000000000000000000000000000000000000000000000000000000000', // 0
    '0100000000000000000000000000000000000000000000000000000000000000', // 1
    'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', // order 8
    '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157', // order 8
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // p - 1
    'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // p
  ];
  for (const p of lowOrder) t.throws(() => a.deriveSharedSecret(hex(p)), { code: 'bad_dh_public' }, p);
});

t.test('ffdhe2048 constants: RFC 7919 prime is a 2048-bit safe prime', async (t) => {
  t.equal(FFDHE2048_PRIME.length, 256);
  t.equal(FFDHE2048_PRIME.subarray(0, 8).toString('hex'), 'ffffffffffffffff');
  t.equal(FFDHE2048_PRIME.subarray(248).toString('hex'), 'ffffffffffffffff');
  t.ok(checkPrimeSync(FFDHE2048_PRIME), 'p is prime');
  const q = (BigInt(`0x${FFDHE2048_PRIME.toString('hex')}`) - 1n) / 2n;
  t.ok(checkPrimeSync(q), '(p-1)/2 is prime');
});

t.test('ffdhe2048 key pairs agree, values are 256 bytes left-padded', async (t) => {
  const a = generateDhKeyPair('ffdhe2048');
  const b = generateDhKeyPair('ffdhe2048');
  t.equal(a.publicKey.length, 256);
  const z = a.deriveSharedSecret(b.publicKey);
  t.equal(z.length, 256);
  t.same(z, b.deriveSharedSecret(a.publicKey));
  // x = 2: Y = g^2 = 4, which must travel as 255 zero bytes then 0x04.
  const small = generateDhKeyPair('ffdhe2048', Buffer.from([2]));
  t.equal(small.publicKey.length, 256);
  t.equal(
    small.publicKey.subarray(0, 255).every((x) => x === 0),
    true,
  );
  t.equal(small.publicKey[255], 4);
  // Cross-check Z against node's own DH object for the same exponents.
  const ref = createDiffieHellman(FFDHE2048_PRIME, 2);
  ref.setPrivateKey(Buffer.from([2]));
  ref.generateKeys();
  const zRef = ref.computeSecret(a.publicKey);
  t.same(small.deriveSharedSecret(a.publicKey).subarray(256 - zRef.length), zRef);
  // Deterministic with a fixed private key.
  t.same(
    generateDhKeyPair('ffdhe2048', Buffer.alloc(32, 7)).publicKey,
    generateDhKeyPair('ffdhe2048', Buffer.alloc(32, 7)).publicKey,
  );
});

t.test('ffdhe2048: 1 < Y < p-1 enforced (RFC 7919 section 5.1)', async (t) => {
  const a = generateDhKeyPair('ffdhe2048');
  const num = (n: bigint): Buffer => Buffer.from(n.toString(16).padStart(512, '0'), 'hex');
  const p = BigInt(`0x${FFDHE2048_PRIME.toString('hex')}`);
  for (const [label, y] of [
    ['0', 0n],
    ['1', 1n],
    ['p-1', p - 1n],
    ['p', p],
    ['p+1', p + 1n],
    ['2^2048-1', (1n << 2048n) - 1n],
  ] as const) {
    t.throws(
      () => a.deriveSharedSecret(num(y)),
      { code: 'bad_dh_public', message: 'invalid Diffie-Hellman public key' },
      label,
    );
    t.throws(() => validateDhPublicKey('ffdhe2048', num(y)), { code: 'bad_dh_public' }, label);
  }
  // The boundaries just inside are accepted.
  t.doesNotThrow(() => validateDhPublicKey('ffdhe2048', num(2n)));
  t.doesNotThrow(() => validateDhPublicKey('ffdhe2048', num(p - 2n)));
  t.equal(a.deriveSharedSecret(num(2n)).length, 256);
  // Unpadded encodings are refused: the length is part of the format.
  t.throws(() => a.deriveSharedSecret(Buffer.from([4])), {
    code: 'bad_dh_public',
    message: 'expected ffdhe2048 public key of 256 bytes, got 1',
  });
  t.throws(() => a.deriveSharedSecret(Buffer.alloc(257, 1)), { code: 'bad_dh_public' });
});

t.test('group names', async (t) => {
  t.same(DH_GROUPS, ['x25519', 'ffdhe2048']);
  t.ok(isDhGroup('x25519'));
  t.notOk(isDhGroup('X25519'));
  t.notOk(isDhGroup('ffdhe3072'));
  t.notOk(isDhGroup(undefined));
  t.equal(dhPublicKeyLength('x25519'), 32);
  t.equal(dhPublicKeyLength('ffdhe2048'), 256);
  t.throws(() => generateDhKeyPair('p256' as never), { code: 'bad_request' });
  t.throws(() => validateDhPublicKey('x25519', 'abc' as never), { code: 'bad_dh_public' });
});
