// shared/protocol/transcript.ts and key-schedule.ts: cutting the trailing sig/mac entries off a frame
// (both header formats), the sender/receiver symmetry, the signature input, and the HKDF labels.
import t from 'tap';
import fc from 'fast-check';
import { hkdfSync } from 'node:crypto';
import { decodeValue, encodeValue } from '../../../shared/protocol/codec.js';
import {
  deriveHandshakeKeys,
  deriveTrafficKeys,
  exportKeyingMaterial,
  LABELS,
} from '../../../shared/protocol/key-schedule.js';
import {
  appendEntries,
  frameWithout,
  frameWithoutParts,
  signatureInput,
  transcriptHash,
} from '../../../shared/protocol/transcript.js';

t.test('appendEntries and frameWithout are inverse (fixmap)', async (t) => {
  fc.assert(
    fc.property(
      fc.dictionary(
        fc.stringMatching(/^[a-l]{1,6}$/),
        fc.oneof(
          fc.string({ maxLength: 20 }),
          fc.nat(),
          fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
        ),
        { maxKeys: 10 },
      ),
      fc.uint8Array({ minLength: 1, maxLength: 300 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      (fields, sig, mac) => {
        const core = encodeValue(fields);
        const withSig = appendEntries(core, [['sig', sig]]);
        const full = appendEntries(withSig, [['mac', mac]]);
        const { value, layout } = decodeValue(full);
        return (
          frameWithout(full, layout, 'sig').equals(core) &&
          frameWithout(full, layout, 'mac').equals(withSig) &&
          Buffer.from(value.sig as Uint8Array).equals(Buffer.from(sig)) &&
          appendEntries(core, [
            ['sig', sig],
            ['mac', mac],
          ]).equals(full)
        );
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

t.test('frameWithoutParts: the same bytes as frameWithout, the body a view of the frame', async (t) => {
  const body = Buffer.from('a16101a3736967c40101a36d6163c40102', 'hex');
  const prefix = Buffer.from('client hello bytes');
  for (const header of ['83', 'de0003', 'df00000003']) {
    const frame = Buffer.concat([Buffer.from(header, 'hex'), body]);
    const { layout } = decodeValue(frame);
    for (const key of ['sig', 'mac']) {
      const parts = frameWithoutParts(frame, layout, key);
      t.same(Buffer.concat(parts), frameWithout(frame, layout, key), `${header} without ${key}`);
      t.same(
        transcriptHash(prefix, ...parts),
        transcriptHash(prefix, frameWithout(frame, layout, key)),
        `${header} without ${key}: same transcript hash`,
      );
      t.equal(parts[1].buffer, frame.buffer, 'the body is not copied');
      t.equal(frame.subarray(0, header.length / 2).toString('hex'), header, 'the frame is left unchanged');
    }
  }
  t.throws(
    () =>
      frameWithoutParts(
        Buffer.from('81a16101', 'hex'),
        decodeValue(Buffer.from('81a16101', 'hex')).layout,
        'sig',
      ),
    {
      code: 'schema',
    },
  );
});

t.test('map16 and map32 headers keep their format when cut', async (t) => {
  // {"a": 1, "sig": bin(1), "mac": bin(1)} with a map16 header, then a map32 header.
  const body = Buffer.from('a16101a3736967c40101a36d6163c40102', 'hex');
  const m16 = Buffer.concat([Buffer.from('de0003', 'hex'), body]);
  t.same(frameWithout(m16, decodeValue(m16).layout, 'sig'), Buffer.from('de0001a16101', 'hex'));
  t.same(frameWithout(m16, decodeValue(m16).layout, 'mac'), Buffer.from('de0002a16101a3736967c40101', 'hex'));
  const m32 = Buffer.concat([Buffer.from('df00000003', 'hex'), body]);
  t.same(frameWithout(m32, decodeValue(m32).layout, 'sig'), Buffer.from('df00000001a16101', 'hex'));
  t.same(
    appendEntries(Buffer.from('de0001a16101', 'hex'), [
      ['sig', Buffer.from([1])],
      ['mac', Buffer.from([2])],
    ]),
    m16,
  );
  t.throws(() => frameWithout(m16, decodeValue(m16).layout, 'nope'), { code: 'schema' });
  t.throws(
    () =>
      appendEntries(encodeValue(Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, i]))), [
        ['sig', Buffer.alloc(1)],
      ]),
    {
      code: 'internal',
    },
  );
});

t.test('signature input and transcript hash', async (t) => {
  const th = Buffer.alloc(32, 0xab);
  t.same(
    signatureInput('server', th),
    Buffer.concat([Buffer.from('kds v1 server CertificateVerify'), Buffer.from([0]), th]),
  );
  t.same(signatureInput('client', th).subarray(0, 31).toString(), 'kds v1 client CertificateVerify');
  t.equal(
    transcriptHash(Buffer.from('a'), Buffer.from('b')).toString('hex'),
    transcriptHash(Buffer.from('ab')).toString('hex'),
  );
});

t.test('key schedule: HKDF-SHA256(Z, salt = TH, info = label)', async (t) => {
  const z = Buffer.alloc(32, 1);
  const th = Buffer.alloc(32, 2);
  const h = (label: string, n: number) => Buffer.from(hkdfSync('sha256', z, th, Buffer.from(label), n));
  const hs = deriveHandshakeKeys(z, th);
  t.same(hs.serverFinishedKey, h('kds v1 server finished', 32));
  t.same(hs.clientFinishedKey, h('kds v1 client finished', 32));
  const tk = deriveTrafficKeys(z, th);
  t.same(tk.c2sKey, h('kds v1 c2s key', 32));
  t.same(tk.c2sIv, h('kds v1 c2s iv', 12));
  t.same(tk.s2cKey, h('kds v1 s2c key', 32));
  t.same(tk.s2cIv, h('kds v1 s2c iv', 12));
  t.same(tk.sessionId, h('kds v1 session id', 16));
  t.same(tk.exporterSecret, h('kds v1 exporter', 32));
  const labels = Object.values(LABELS);
  t.equal(new Set(labels).size, labels.length, 'labels are distinct');
  t.same(
    exportKeyingMaterial(tk.exporterSecret, 'x', 16),
    Buffer.from(hkdfSync('sha256', tk.exporterSecret, Buffer.alloc(0), Buffer.from('kds v1 exporter x'), 16)),
  );
  t.throws(() => exportKeyingMaterial(tk.exporterSecret, '', 16), { code: 'bad_request' });
  // Another transcript, other keys.
  t.not(deriveTrafficKeys(z, Buffer.alloc(32, 3)).c2sKey.toString('hex'), tk.c2sKey.toString('hex'));
});
