// Key wrapping, message encryption and digests of shared/keys: round trips and tamper detection.
import t from 'tap';
import fc from 'fast-check';
import { deriveWrappingKey, unwrapKey, wrapKey, WRAPPED_KEY_BYTES } from '../../../shared/keys/key-wrap.js';
import { messageAad, openMessage, sealMessage, MAX_MESSAGE_BYTES } from '../../../shared/keys/message.js';
import { ciphertextDigest, kdcKeyDigest, keyFingerprint } from '../../../shared/keys/digest.js';
import { isKeySerial, newKeySerial, newPrekeyId, assertKeySerial } from '../../../shared/keys/serial.js';
import { verdictExitCode, verdictForState } from '../../../shared/keys/verdict.js';
import { openBlob, sealBlob } from '../../../shared/keys/aes-gcm.js';

const th = Buffer.alloc(32, 9);
const shared = Buffer.alloc(32, 3);

t.test('wrapKey/unwrapKey round-trip and refuse any change', async (t) => {
  const key = Buffer.alloc(32, 0x42);
  const wk = deriveWrappingKey(shared, th);
  t.equal(wk.length, 32);
  t.not(
    deriveWrappingKey(shared, Buffer.alloc(32, 8)).toString('hex'),
    wk.toString('hex'),
    'the transcript is the salt',
  );
  const blob = wrapKey(key, wk, th);
  t.equal(blob.length, WRAPPED_KEY_BYTES);
  t.ok(unwrapKey(blob, wk, th).equals(key));
  t.not(wrapKey(key, wk, th).toString('hex'), blob.toString('hex'), 'fresh nonce per wrap');
  for (let i = 0; i < blob.length; i += 7) {
    const bad = Buffer.from(blob);
    bad[i]! ^= 1;
    t.throws(() => unwrapKey(bad, wk, th), { code: 'bad_mac', message: 'decryption failed' }, `byte ${i}`);
  }
  t.throws(() => unwrapKey(blob, wk, Buffer.alloc(32, 1)), { code: 'bad_mac' }, 'other transcript');
  t.throws(() => unwrapKey(blob.subarray(0, 59), wk, th), { code: 'malformed' });
});

t.test('messages: AAD binds serial, sender, receiver and sequence number', async (t) => {
  const key = Buffer.alloc(32, 1);
  const header = { serial: newKeySerial(), from: 'alice', to: 'bob', seq: 7 };
  const sealed = sealMessage(key, header, Buffer.from('hi bob'));
  t.equal(sealed.seq, 7, 'the sealed message carries its seq for msg.send');
  t.equal(openMessage(key, header, sealed).toString(), 'hi bob');
  t.throws(() => openMessage(key, { ...header, seq: 8 }, sealed), { code: 'bad_mac' }, 'seq rewritten');
  t.throws(() => openMessage(key, { ...header, seq: 0 }, sealed), { code: 'malformed' });
  t.throws(() => sealMessage(key, { ...header, seq: 2 ** 53 }, Buffer.from('x')), { code: 'malformed' });
  // v2 AAD, byte for byte: label, 0x00, then 2-byte-length-prefixed serial, from, to, u64(seq).
  const expected = Buffer.concat([
    Buffer.from('kds v2 message\0', 'latin1'),
    Buffer.from([0, 32]),
    Buffer.from(header.serial),
    Buffer.from([0, 5]),
    Buffer.from('alice'),
    Buffer.from([0, 3]),
    Buffer.from('bob'),
    Buffer.from([0, 8, 0, 0, 0, 0, 0, 0, 0, 7]),
  ]);
  t.ok(messageAad(header).equals(expected), 'AAD encoding as docs/keys.md specifies');
  t.throws(() => openMessage(key, { ...header, from: 'mallory' }, sealed), { code: 'bad_mac' });
  t.throws(() => openMessage(key, { ...header, to: 'carol' }, sealed), { code: 'bad_mac' });
  t.throws(() => openMessage(key, { ...header, serial: newKeySerial() }, sealed), { code: 'bad_mac' });
  t.throws(() => openMessage(Buffer.alloc(32, 2), header, sealed), { code: 'bad_mac' });
  t.throws(() => openMessage(key, header, { ...sealed, ciphertext: sealed.ciphertext.subarray(0, 10) }), {
    code: 'bad_mac',
  });
  t.throws(() => sealMessage(key, header, Buffer.alloc(MAX_MESSAGE_BYTES + 1)), { code: 'bad_request' });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (plain) =>
      openMessage(key, header, sealMessage(key, header, plain)).equals(Buffer.from(plain)),
    ),
    { numRuns: 100 },
  );
});

t.test('blobs, digests, serials, verdicts', async (t) => {
  const blob = sealBlob(Buffer.alloc(32), Buffer.from('x'), Buffer.from('aad'));
  t.equal(openBlob(Buffer.alloc(32), blob, Buffer.from('aad')).toString(), 'x');
  t.throws(() => openBlob(Buffer.alloc(32), blob.subarray(0, 20), Buffer.from('aad')), { code: 'bad_mac' });
  t.equal(
    ciphertextDigest(Buffer.from('abc')).toString('hex'),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    'SHA-256("abc")',
  );
  const s = newKeySerial();
  t.ok(isKeySerial(s));
  t.notOk(isKeySerial(s.toUpperCase()));
  t.notOk(isKeySerial(`${s}0`));
  t.throws(() => assertKeySerial('nope'), { code: 'malformed' });
  t.match(newPrekeyId(), /^[0-9a-f]{16}$/);
  t.equal(kdcKeyDigest(s, Buffer.alloc(32)).length, 32);
  t.throws(() => keyFingerprint(Buffer.alloc(16)), { code: 'malformed' });
  t.same(
    (['valid', 'revoked', 'mismatch', 'expired', 'not_found'] as const).map(verdictExitCode),
    [0, 3, 4, 5, 6],
  );
  t.equal(verdictForState('superseded'), 'revoked');
  t.equal(verdictForState('expired'), 'expired');
});
