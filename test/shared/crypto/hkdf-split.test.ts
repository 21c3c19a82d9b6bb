// shared/crypto/hkdf.ts hkdfExtract + hkdfExpand (what the key schedule uses since bench/handshake.ts
// showed one hkdfSync per output was ~250 us of server CPU per handshake): the same Wycheproof
// HKDF-SHA256 vectors and RFC 5869 A.1 as hkdfSha256, and equality with hkdfSha256 on random inputs.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { hkdfExpand, hkdfExtract, hkdfSha256 } from '../../../shared/crypto/hkdf.js';
import { hex, loadWycheproof } from './wycheproof.js';

interface HkdfTest {
  tcId: number;
  ikm: string;
  salt: string;
  info: string;
  size: number;
  okm: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

t.test('Wycheproof HKDF-SHA256 through extract + expand', async (t) => {
  const file = loadWycheproof<{ tests: HkdfTest[] }>('hkdf_sha256_test.json');
  let valid = 0;
  for (const v of file.testGroups.flatMap((g) => g.tests)) {
    const prk = hkdfExtract(hex(v.salt), hex(v.ikm));
    if (v.result === 'valid') {
      const okm = hkdfExpand(prk, hex(v.info), v.size);
      if (okm.toString('hex') !== v.okm) t.fail(`tcId ${v.tcId}: okm mismatch`);
      valid += 1;
    } else {
      t.throws(() => hkdfExpand(prk, hex(v.info), v.size), { code: 'bad_request' }, `tcId ${v.tcId}`);
    }
  }
  t.equal(valid, 83);
});

t.test('RFC 5869 A.1: PRK and OKM', async (t) => {
  const prk = hkdfExtract(hex('000102030405060708090a0b0c'), hex('0b'.repeat(22)));
  t.equal(prk.toString('hex'), '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5');
  t.equal(
    hkdfExpand(prk, hex('f0f1f2f3f4f5f6f7f8f9'), 42).toString('hex'),
    '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  );
});

t.test('equals hkdfSha256 for the lengths the key schedule uses and beyond', async (t) => {
  for (const length of [1, 12, 16, 31, 32, 33, 64, 100]) {
    const ikm = randomBytes(32);
    const salt = randomBytes(32);
    const info = Buffer.from(`kds v1 label ${length}`);
    t.same(
      hkdfExpand(hkdfExtract(salt, ikm), info, length),
      hkdfSha256(ikm, salt, info, length),
      `L=${length}`,
    );
  }
  // Empty salt: HMAC's empty key equals RFC 5869's "string of HashLen zeros".
  const ikm = randomBytes(32);
  t.same(hkdfExtract(Buffer.alloc(0), ikm), hkdfExtract(Buffer.alloc(32), ikm));
});

t.test('bounds', async (t) => {
  const prk = Buffer.alloc(32, 1);
  for (const n of [0, -1, 8161, 1.5])
    t.throws(() => hkdfExpand(prk, Buffer.alloc(0), n), { code: 'bad_request' });
  t.throws(() => hkdfExpand(Buffer.alloc(16), Buffer.alloc(0), 32), { code: 'bad_request' });
  t.equal(hkdfExpand(prk, Buffer.alloc(0), 8160).length, 8160);
});
