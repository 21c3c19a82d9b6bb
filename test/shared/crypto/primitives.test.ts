// shared/crypto/{hash,ct,random}.ts: known answers and the constant-time comparison contract.
import t from 'tap';
import fc from 'fast-check';
import { equalBytes } from '../../../shared/crypto/ct.js';
import { hmacSha256, sha256 } from '../../../shared/crypto/hash.js';
import { publicRandomBytes, randomBytes } from '../../../shared/crypto/random.js';

t.test('sha256 (FIPS 180-4 "abc") and parts concatenate', async (t) => {
  t.equal(
    sha256(Buffer.from('abc')).toString('hex'),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  );
  t.same(sha256(Buffer.from('a'), Buffer.from('bc')), sha256(Buffer.from('abc')));
  t.equal(sha256().toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

t.test('hmacSha256 (RFC 4231 test case 2)', async (t) => {
  t.equal(
    hmacSha256(Buffer.from('Jefe'), Buffer.from('what do ya want '), Buffer.from('for nothing?')).toString(
      'hex',
    ),
    '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
  );
});

t.test('equalBytes', async (t) => {
  t.ok(equalBytes(Buffer.from('abc'), Buffer.from('abc')));
  t.notOk(equalBytes(Buffer.from('abc'), Buffer.from('abd')));
  t.notOk(equalBytes(Buffer.from('abc'), Buffer.from('abcd')), 'length mismatch is false, not a throw');
  t.ok(equalBytes(new Uint8Array(0), new Uint8Array(0)));
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), (a, b) => {
      return equalBytes(a, b) === Buffer.from(a).equals(Buffer.from(b));
    }),
  );
});

t.test('randomBytes', async (t) => {
  t.equal(randomBytes(32).length, 32);
  t.not(randomBytes(32).toString('hex'), randomBytes(32).toString('hex'));
});

t.test('publicRandomBytes: every byte of the pool handed out once, across refills', async (t) => {
  // 600 nonces of 32 bytes: the 4 KiB pool is drawn 5 times; a pool cut twice at the same place, or
  // reused after a refill, would repeat a value.
  const seen = new Set<string>();
  const held: Buffer[] = [];
  for (let i = 0; i < 600; i++) {
    const n = publicRandomBytes(32);
    t.equal(n.length, 32);
    seen.add(n.toString('hex'));
    held.push(n);
  }
  t.equal(seen.size, 600, 'no value repeats');
  // Odd sizes still fit the pool's end exactly or move to a new pool.
  for (const len of [1, 7, 31, 33, 511, 512]) t.equal(publicRandomBytes(len).length, len);
  // Larger requests come straight from the CSPRNG.
  t.equal(publicRandomBytes(4096).length, 4096);
  // A value handed out is its caller's own: wiping it changes no other value.
  const before = held.map((b) => b.toString('hex'));
  held[0]!.fill(0);
  t.same(
    held.slice(1).map((b) => b.toString('hex')),
    before.slice(1),
  );
});
