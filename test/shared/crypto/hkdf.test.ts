// shared/crypto/hkdf.ts: Wycheproof HKDF-SHA256 through hkdfSha256, plus RFC 5869 A.1.
import t from 'tap';
import { hkdfSha256, HKDF_SHA256_MAX_LENGTH } from '../../../shared/crypto/hkdf.js';
import { hex, loadWycheproof } from './wycheproof.js';

interface HkdfTest {
  tcId: number;
  comment: string;
  flags: string[];
  ikm: string;
  salt: string;
  info: string;
  size: number;
  okm: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

t.test('Wycheproof HKDF-SHA256', async (t) => {
  const file = loadWycheproof<{ tests: HkdfTest[] }>('hkdf_sha256_test.json');
  const tests = file.testGroups.flatMap((g) => g.tests);
  t.equal(tests.length, 86);
  let valid = 0;
  let invalid = 0;
  for (const v of tests) {
    if (v.result === 'valid') {
      const okm = hkdfSha256(hex(v.ikm), hex(v.salt), hex(v.info), v.size);
      if (okm.toString('hex') !== v.okm) t.fail(`tcId ${v.tcId} (${v.comment}): okm mismatch`);
      valid += 1;
    } else {
      // The only invalid cases ask for more than 255 * HashLen bytes.
      t.throws(
        () => hkdfSha256(hex(v.ikm), hex(v.salt), hex(v.info), v.size),
        { code: 'bad_request' },
        `tcId ${v.tcId}`,
      );
      invalid += 1;
    }
  }
  t.equal(valid, 83);
  t.equal(invalid, 3);
});

t.test('RFC 5869 A.1 and the length bounds', async (t) => {
  const okm = hkdfSha256(
    hex('0b'.repeat(22)),
    hex('000102030405060708090a0b0c'),
    hex('f0f1f2f3f4f5f6f7f8f9'),
    42,
  );
  t.equal(
    okm.toString('hex'),
    '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  );
  t.equal(HKDF_SHA256_MAX_LENGTH, 8160);
  t.equal(hkdfSha256(Buffer.alloc(32), Buffer.alloc(0), Buffer.alloc(0), 8160).length, 8160);
  for (const n of [0, -1, 8161, 1.5]) {
    t.throws(
      () => hkdfSha256(Buffer.alloc(32), Buffer.alloc(0), Buffer.alloc(0), n),
      { code: 'bad_request' },
      String(n),
    );
  }
  // Empty salt == HashLen zero bytes (RFC 5869 section 2.2).
  t.same(
    hkdfSha256(Buffer.alloc(32, 1), Buffer.alloc(0), Buffer.from('x'), 32),
    hkdfSha256(Buffer.alloc(32, 1), Buffer.alloc(32), Buffer.from('x'), 32),
  );
});
