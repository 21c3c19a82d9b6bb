// shared/crypto/aead.ts: Wycheproof AES-GCM (the 256-bit key, 96-bit IV, 128-bit tag groups: the only
// parameters the record layer uses) and the pinned 16-byte tag.
import t from 'tap';
import { createCipheriv } from 'node:crypto';
import { aesGcmOpen, aesGcmSeal } from '../../../shared/crypto/aead.js';
import { hex, loadWycheproof } from './wycheproof.js';

interface AeadTest {
  tcId: number;
  comment: string;
  flags: string[];
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  result: 'valid' | 'invalid' | 'acceptable';
}
interface AeadGroup {
  keySize: number;
  ivSize: number;
  tagSize: number;
  tests: AeadTest[];
}

t.test('Wycheproof AES-256-GCM, 96-bit IV, 128-bit tag', async (t) => {
  const file = loadWycheproof<AeadGroup>('aes_gcm_test.json');
  const tests = file.testGroups
    .filter((g) => g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128)
    .flatMap((g) => g.tests);
  t.equal(tests.length, 66, 'the whole group is used');
  let valid = 0;
  let invalid = 0;
  for (const v of tests) {
    const key = hex(v.key);
    const iv = hex(v.iv);
    const aad = hex(v.aad);
    const sealed = Buffer.concat([hex(v.ct), hex(v.tag)]);
    if (v.result === 'valid') {
      const out = aesGcmSeal(key, iv, hex(v.msg), aad);
      if (!out.equals(sealed)) t.fail(`tcId ${v.tcId}: seal mismatch`);
      const pt = aesGcmOpen(key, iv, sealed, aad);
      if (!pt.equals(hex(v.msg))) t.fail(`tcId ${v.tcId}: open mismatch`);
      valid += 1;
    } else {
      t.throws(
        () => aesGcmOpen(key, iv, sealed, aad),
        { code: 'record_auth', message: 'record authentication failed' },
        `tcId ${v.tcId}`,
      );
      invalid += 1;
    }
  }
  t.equal(valid, 39, 'valid vectors seal and open byte for byte');
  t.equal(invalid, 27, 'invalid vectors (modified tags) are refused');
});

t.test('truncated tags are refused (authTagLength pinned to 16)', async (t) => {
  const key = Buffer.alloc(32, 1);
  const iv = Buffer.alloc(12, 2);
  const aad = Buffer.from('aad');
  const sealed = aesGcmSeal(key, iv, Buffer.from('hello world'), aad);
  t.equal(sealed.length, 11 + 16);
  t.same(aesGcmOpen(key, iv, sealed, aad), Buffer.from('hello world'));
  // A valid 12-byte (or 4-byte) truncation of the real tag: Node would accept it without authTagLength.
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const ct = Buffer.concat([cipher.update('hello world'), cipher.final()]);
  const tag = cipher.getAuthTag();
  for (const n of [4, 8, 12, 15]) {
    t.throws(
      () => aesGcmOpen(key, iv, Buffer.concat([ct, tag.subarray(0, n)]), aad),
      { code: 'record_auth' },
      `tag of ${n} bytes`,
    );
  }
  for (const n of [0, 1, 15])
    t.throws(() => aesGcmOpen(key, iv, Buffer.alloc(n), aad), { code: 'record_auth' }, `${n}-byte input`);
  // Wrong AAD / key / nonce all fail the same way.
  t.throws(() => aesGcmOpen(key, iv, sealed, Buffer.from('aae')), { code: 'record_auth' });
  t.throws(() => aesGcmOpen(Buffer.alloc(32, 9), iv, sealed, aad), { code: 'record_auth' });
  t.throws(() => aesGcmOpen(key, Buffer.alloc(12, 3), sealed, aad), { code: 'record_auth' });
  // A custom code for other users of the wrapper, with a neutral fixed message.
  t.throws(() => aesGcmOpen(key, iv, Buffer.alloc(20), aad, 'bad_mac'), {
    code: 'bad_mac',
    message: 'decryption failed',
  });
});

t.test('key and nonce sizes are enforced', async (t) => {
  t.throws(() => aesGcmSeal(Buffer.alloc(16), Buffer.alloc(12), Buffer.alloc(1), Buffer.alloc(0)), {
    code: 'bad_request',
    message: 'expected AES-256 key of 32 bytes, got 16',
  });
  t.throws(() => aesGcmSeal(Buffer.alloc(32), Buffer.alloc(8), Buffer.alloc(1), Buffer.alloc(0)), {
    code: 'bad_request',
    message: 'expected GCM nonce of 12 bytes, got 8',
  });
  t.throws(() => aesGcmOpen(Buffer.alloc(32), Buffer.alloc(16), Buffer.alloc(32), Buffer.alloc(0)), {
    code: 'bad_request',
  });
});
