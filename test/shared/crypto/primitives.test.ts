// shared/crypto/{hash,ct,random}.ts: known answers and the constant-time comparison contract.
import t from 'tap';
import fc from 'fast-check';
import { equalBytes } from '../../../shared/crypto/ct.js';
import { hmacSha256, sha256 } from '../../../shared/crypto/hash.js';
import { randomBytes } from '../../../shared/crypto/random.js';

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
