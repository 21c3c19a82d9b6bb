// shared/protocol/record-layer.ts: the RFC 8446 5.3 nonce, implicit sequence numbers, and every
// way a record stream can be disturbed: replay, reorder, drop, truncation, tampering, reflection.
import t from 'tap';
import { createDecipheriv } from 'node:crypto';
import { recordAad, recordNonce, RecordOpener, RecordSealer } from '../../../shared/protocol/record-layer.js';
import { SEQUENCE_LIMIT } from '../../../shared/protocol/limits.js';

const key = Buffer.alloc(32, 0x5a);
const iv = Buffer.from('000102030405060708090a0b', 'hex');
const pair = (limit?: number) => ({
  tx: new RecordSealer(key, iv, 'c2s', limit),
  rx: new RecordOpener(key, iv, 'c2s', limit),
});
const msgs = ['one', 'two', 'three', 'four'].map((m) => Buffer.from(m));

t.test('nonce = IV XOR 64-bit big-endian sequence, left-padded (RFC 8446 5.3)', async (t) => {
  t.same(recordNonce(iv, 0), iv);
  t.equal(recordNonce(iv, 1).toString('hex'), '000102030405060708090a0a');
  t.equal(recordNonce(iv, 0x0102).toString('hex'), '000102030405060708090b09');
  t.equal(recordNonce(Buffer.alloc(12), 2 ** 32).toString('hex'), '000000000000000100000000');
  t.equal(recordNonce(Buffer.alloc(12), Number.MAX_SAFE_INTEGER).toString('hex'), '00000000001fffffffffffff');
  t.equal(recordAad('c2s').toString(), 'kds v1 c2s');
  t.equal(recordAad('s2c').toString(), 'kds v1 s2c');
});

t.test(
  'in order: every record opens; the ciphertext is AES-256-GCM under the documented nonce and AAD',
  async (t) => {
    const { tx, rx } = pair();
    const sealed = msgs.map((m) => tx.seal(m));
    t.equal(tx.sequence, 4);
    sealed.forEach((c, i) => t.same(rx.open(c), msgs[i]));
    t.equal(rx.sequence, 4);
    // Independent check of record 2 with node:crypto directly.
    const c = sealed[2]!;
    const d = createDecipheriv('aes-256-gcm', key, recordNonce(iv, 2), { authTagLength: 16 });
    d.setAAD(Buffer.from('kds v1 c2s'));
    d.setAuthTag(c.subarray(c.length - 16));
    t.same(Buffer.concat([d.update(c.subarray(0, c.length - 16)), d.final()]), msgs[2]);
    t.equal(c.length, msgs[2]!.length + 16);
  },
);

t.test('replayed, reordered, dropped, truncated, tampered and reflected records are refused', async (t) => {
  const fresh = () => {
    const p = pair();
    return { ...p, sealed: msgs.map((m) => p.tx.seal(m)) };
  };
  const refused = (label: string, run: (rx: RecordOpener, sealed: Buffer[]) => void) => {
    const { rx, sealed } = fresh();
    t.throws(() => run(rx, sealed), { code: 'record_auth', message: 'record authentication failed' }, label);
    // Fail closed: after one failure even the correct next record is refused.
    t.throws(() => rx.open(sealed[rx.sequence]!), { code: 'record_auth' }, `${label}: opener stays failed`);
  };
  refused('replay', (rx, s) => {
    rx.open(s[0]!);
    rx.open(s[0]!);
  });
  refused('reorder', (rx, s) => rx.open(s[1]!));
  refused('drop', (rx, s) => {
    rx.open(s[0]!);
    rx.open(s[2]!);
  });
  refused('truncated tag', (rx, s) => rx.open(s[0]!.subarray(0, s[0]!.length - 1)));
  refused('tag only 15 bytes', (rx) => rx.open(Buffer.alloc(15)));
  refused('empty', (rx) => rx.open(Buffer.alloc(0)));
  refused('flipped ciphertext bit', (rx, s) => {
    const c = Buffer.from(s[0]!);
    c[0]! ^= 1;
    rx.open(c);
  });
  refused('flipped tag bit', (rx, s) => {
    const c = Buffer.from(s[0]!);
    c[c.length - 1]! ^= 0x80;
    rx.open(c);
  });
  refused('extended', (rx, s) => rx.open(Buffer.concat([s[0]!, Buffer.alloc(1)])));
  // Reflection: the same key and IV in the other direction still fail on the AAD.
  const tx = new RecordSealer(key, iv, 's2c');
  t.throws(
    () => new RecordOpener(key, iv, 'c2s').open(tx.seal(Buffer.from('x'))),
    { code: 'record_auth' },
    'reflected record',
  );
});

t.test('sequence limit: seal and open stop at the limit', async (t) => {
  const { tx, rx } = pair(3);
  const sealed = [tx.seal(msgs[0]!), tx.seal(msgs[1]!), tx.seal(msgs[2]!)];
  t.throws(() => tx.seal(msgs[3]!), { code: 'sequence_exhausted' });
  t.equal(tx.sequence, 3, 'a refused seal does not advance the sequence');
  sealed.forEach((c) => rx.open(c));
  t.throws(() => rx.open(sealed[0]!), { code: 'sequence_exhausted' });
  t.equal(SEQUENCE_LIMIT, 2 ** 32);
  t.throws(() => new RecordSealer(key, iv, 'c2s', 0), { code: 'bad_request' });
  t.throws(() => new RecordSealer(key, iv, 'c2s', 2 ** 33), { code: 'bad_request' });
  t.throws(() => new RecordSealer(Buffer.alloc(16), iv, 'c2s'), { code: 'bad_request' });
  t.throws(() => new RecordOpener(key, Buffer.alloc(8), 'c2s'), { code: 'bad_request' });
});
