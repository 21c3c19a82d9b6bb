// shared/protocol/codec.ts: the raw-byte scan that enforces the limits and the accepted msgpack subset
// before msgpackr decodes anything. Each negative test builds the exact bad bytes.
import t from 'tap';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { decodeValue, encodeEntry, encodeValue } from '../../../shared/protocol/codec.js';
import { MAX_ARRAY, MAX_DEPTH, MAX_FRAME_BYTES, MAX_STRING } from '../../../shared/protocol/limits.js';

const raw = (hex: string): Buffer => Buffer.from(hex.replace(/\s+/g, ''), 'hex');
const str = (s: string): string => {
  const b = Buffer.from(s, 'utf8');
  if (b.length < 32) return (0xa0 | b.length).toString(16) + b.toString('hex');
  return `d9${b.length.toString(16).padStart(2, '0')}${b.toString('hex')}`;
};
/** {"t": <valueHex>} */
const mapT = (valueHex: string): Buffer => raw(`81${str('t')}${valueHex}`);

t.test('round trip and layout', async (t) => {
  const value = {
    t: 'x',
    n: 1,
    big: 1.7e12,
    b: Buffer.from([1, 2, 3]),
    a: [true, false, null],
    m: { k: 'v' },
  };
  const enc = encodeValue(value);
  const { value: back, layout } = decodeValue(enc);
  t.same(back, value);
  t.equal(enc[0], 0x86, 'small maps use fixmap (variableMapSize)');
  t.equal(layout.headerLength, 1);
  t.same(
    layout.entries.map((e) => e.key),
    ['t', 'n', 'big', 'b', 'a', 'm'],
  );
  for (const e of layout.entries)
    t.equal(enc.subarray(e.offset + 1, e.offset + 1 + e.key.length).toString(), e.key);
  t.same(decodeValue(raw('80')).value, {}, 'empty map');
  // uint64 and int64 decode as numbers (then schemas apply their own safe-integer bound).
  t.same(decodeValue(raw(`81${str('n')}cf0000000100000000`)).value, { n: 4294967296 });
  t.same(decodeValue(raw(`81${str('n')}d3ffffffffffffffff`)).value, { n: -1 });
  // map16 at top level works too (another encoder's choice), and the layout follows.
  const m16 = decodeValue(raw(`de0001${str('t')}01`));
  t.equal(m16.layout.headerLength, 3);
  t.same(m16.layout.entries, [{ key: 't', offset: 3 }]);
  t.same(
    encodeEntry('sig', Buffer.alloc(300, 1)).subarray(0, 7),
    raw(`a3736967c5012c`),
    'bin16 for 300 bytes',
  );
});

t.test('size limits', async (t) => {
  t.throws(() => decodeValue(Buffer.alloc(MAX_FRAME_BYTES + 1)), {
    code: 'frame_too_large',
    message: `frame of 65537 bytes exceeds 65536`,
  });
  // Exactly MAX_FRAME_BYTES is fine: {"t": bin32(n)} with 1 + 2 + 5 header bytes.
  const n = MAX_FRAME_BYTES - 8;
  const exact = Buffer.concat([
    raw(`81${str('t')}c6`),
    Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]),
    Buffer.alloc(n),
  ]);
  t.equal(exact.length, MAX_FRAME_BYTES);
  t.equal((decodeValue(exact).value.t as Buffer).length, n);
  t.throws(() => encodeValue({ t: Buffer.alloc(MAX_FRAME_BYTES) }), { code: 'frame_too_large' });
  // Strings: MAX_STRING bytes pass, one more is refused before it is read.
  const okStr = encodeValue({ t: 'a'.repeat(MAX_STRING) });
  t.equal(decodeValue(okStr).value.t, 'a'.repeat(MAX_STRING));
  const bigStr = encodeValue({ t: 'a'.repeat(MAX_STRING + 1) });
  t.throws(() => decodeValue(bigStr), {
    code: 'bad_frame',
    message: `string of ${MAX_STRING + 1} bytes exceeds ${MAX_STRING}`,
  });
  // A str32 header claiming 4 GiB: refused from the header, nothing allocated.
  t.throws(() => decodeValue(raw(`81${str('t')}dbffffffff`)), { code: 'bad_frame', message: /exceeds/ });
  t.throws(() => decodeValue(raw(`81${str('t')}c6ffffffff`)), {
    code: 'bad_frame',
    message: /binary of 4294967295 bytes exceeds/,
  });
  // Arrays and maps: MAX_ARRAY entries pass, one more is refused; a map32 claiming 2^32-1 entries too.
  t.equal(
    (decodeValue(encodeValue({ t: new Array(MAX_ARRAY).fill(0) })).value.t as number[]).length,
    MAX_ARRAY,
  );
  t.throws(() => decodeValue(encodeValue({ t: new Array(MAX_ARRAY + 1).fill(0) })), {
    code: 'bad_frame',
    message: `array of ${MAX_ARRAY + 1} entries exceeds ${MAX_ARRAY}`,
  });
  t.throws(() => decodeValue(raw('dfffffffff')), {
    code: 'bad_frame',
    message: /map of 4294967295 entries exceeds/,
  });
});

t.test(
  'depth: MAX_DEPTH levels pass, one more is refused; a 64 KiB depth bomb is refused without recursion',
  async (t) => {
    // Top-level map is depth 1; then MAX_DEPTH - 1 nested one-element arrays.
    const nest = (levels: number): Buffer =>
      Buffer.concat([raw(`81${str('t')}`), Buffer.alloc(levels, 0x91), raw('01')]);
    t.same(decodeValue(nest(MAX_DEPTH - 1)).value.t, [[[[[[[1]]]]]]]);
    t.throws(() => decodeValue(nest(MAX_DEPTH)), {
      code: 'bad_frame',
      message: `nesting deeper than ${MAX_DEPTH}`,
    });
    const bomb = Buffer.concat([raw(`81${str('t')}`), Buffer.alloc(MAX_FRAME_BYTES - 4, 0x91)]);
    t.throws(() => decodeValue(bomb), { code: 'bad_frame', message: `nesting deeper than ${MAX_DEPTH}` });
    // Maps nest the same way.
    const mapBomb = Buffer.concat([
      Buffer.from([0x81]),
      ...new Array(MAX_DEPTH).fill(raw(`${str('k')}81`)),
      raw(`${str('k')}01`),
    ]);
    t.throws(() => decodeValue(mapBomb), { code: 'bad_frame', message: `nesting deeper than ${MAX_DEPTH}` });
  },
);

t.test('the accepted subset', async (t) => {
  const bad = (hex: Buffer | string, message: string | RegExp, label: string): void => {
    t.throws(
      () => decodeValue(typeof hex === 'string' ? raw(hex) : hex),
      { code: 'bad_frame', message },
      label,
    );
  };
  for (const [ext, label] of [
    ['d40000', 'fixext 1 (msgpackr undefined)'],
    ['d5000000', 'fixext 2'],
    ['d6ff00000000', 'fixext 4 (timestamp 32)'],
    ['d7ff0000000000000000', 'fixext 8'],
    ['d872' + '00'.repeat(16), 'fixext 16'],
    ['c70172' + '00', 'ext 8'],
    ['c8000172' + '00', 'ext 16'],
    ['c90000000172' + '00', 'ext 32'],
  ]) {
    bad(mapT(ext!), 'msgpack extension types are not accepted', label!);
  }
  bad(
    new Packr({ useRecords: false }).pack({ t: new Date(0) }),
    'msgpack extension types are not accepted',
    'msgpackr Date',
  );
  bad(
    new Packr({ useRecords: true }).pack({ t: 1 }),
    'top-level value must be a map',
    'msgpackr record at top level',
  );
  bad(mapT('c1'), 'invalid msgpack byte 0xc1', '0xc1');
  bad('', 'empty frame', 'empty');
  bad('91' + '01', 'top-level value must be a map', 'array');
  bad(str('hello'), 'top-level value must be a map', 'string');
  bad('2a', 'top-level value must be a map', 'integer');
  bad('c0', 'top-level value must be a map', 'nil');
  bad(mapT('a5616263'), 'truncated msgpack', 'truncated string');
  bad(raw('82a174'), 'truncated msgpack', 'map missing entries');
  bad(raw('81a1'), 'truncated msgpack', 'truncated key');
  bad(Buffer.concat([mapT('01'), raw('00')]), 'trailing bytes after the message', 'trailing byte');
  bad(
    Buffer.concat([mapT('01'), mapT('01')]),
    'trailing bytes after the message',
    'two messages in one frame',
  );
  bad('810102', 'map keys must be strings', 'integer key');
  bad(`81c40174${'01'}`, 'map keys must be strings', 'binary key');
  bad(`82${str('t')}01${str('t')}02`, 'duplicate map key "t"', 'duplicate key');
  bad(`81${str('__proto__')}01`, 'map key "__proto__" is not accepted', '__proto__');
  bad(mapT('a2c328'), 'string is not valid UTF-8', 'invalid UTF-8 value');
  bad(raw('81a2eda080' + '01'), /not valid UTF-8|truncated/, 'surrogate in key');
  t.throws(() => decodeValue('abc' as never), { code: 'bad_frame', message: 'expected a binary frame' });
  // Nested duplicate keys are caught too.
  bad(`81${str('m')}82${str('k')}01${str('k')}02`, 'duplicate map key "k"', 'nested duplicate key');
});

t.test('Uint8Array input (not a Buffer) decodes the same', async (t) => {
  const enc = encodeValue({ t: 'x', b: Buffer.from([9]) });
  const copy = new Uint8Array(enc.length + 4).subarray(2, 2 + enc.length);
  copy.set(enc);
  t.same(decodeValue(copy).value, { t: 'x', b: Buffer.from([9]) });
});

t.test('integers beyond 32 bits are written as uint 64 (0xcf) / int 64 (0xd3), never float 64', async (t) => {
  // A time (epoch ms) as the server sends it in `ready.expiresAt`: 2026-01-01T00:00:00Z.
  const at = Date.UTC(2026, 0, 1);
  t.same(
    encodeValue({ expiresAt: at }),
    raw(`81 a9 ${Buffer.from('expiresAt').toString('hex')} cf 0000019b76daa800`),
    'fixmap, fixstr key, uint 64 big-endian',
  );
  // Each width at its boundaries, smallest form first (msgpack spec "int format family").
  const cases: [number, string][] = [
    [0, '00'],
    [0x7f, '7f'],
    [0x80, 'cc80'],
    [0xff, 'ccff'],
    [0x100, 'cd0100'],
    [0xffff, 'cdffff'],
    [0x10000, 'ce00010000'],
    [0xffffffff, 'ceffffffff'],
    [0x100000000, 'cf0000000100000000'],
    [Number.MAX_SAFE_INTEGER, 'cf001fffffffffffff'],
    [-1, 'ff'],
    [-32, 'e0'],
    [-33, 'd0df'],
    [-0x80, 'd080'],
    [-0x81, 'd1ff7f'],
    [-0x8000, 'd18000'],
    [-0x8001, 'd2ffff7fff'],
    [-0x80000000, 'd280000000'],
    [-0x80000001, 'd3ffffffff7fffffff'],
    [0.5, 'cb3fe0000000000000'],
    [2 ** 53, 'cb4340000000000000'],
  ];
  for (const [n, hex] of cases) {
    const enc = encodeValue({ n });
    t.equal(enc.subarray(3).toString('hex'), hex, `${n}`);
    t.equal(decodeValue(enc).value.n, n, `${n} decodes back`);
  }
  // A float 64 holding an integer (what kds wrote for times before) still decodes, to the same number.
  t.same(decodeValue(raw(`81${str('n')}cb4279b76daa800000`)).value, { n: 1767225600000 });
});

t.test(
  'the encoder writes the smallest str/bin/array/map headers and leaves undefined entries out',
  async (t) => {
    const hdr = (v: unknown): string => encodeValue({ v }).subarray(3, 8).toString('hex');
    t.equal(hdr('a'.repeat(31)).slice(0, 2), 'bf', 'fixstr up to 31 bytes');
    t.equal(hdr('a'.repeat(32)).slice(0, 4), 'd920', 'str 8');
    t.equal(hdr('a'.repeat(256)).slice(0, 6), 'da0100', 'str 16');
    t.equal(hdr(Buffer.alloc(0)).slice(0, 4), 'c400', 'bin 8 (bin has no fix form)');
    t.equal(hdr(Buffer.alloc(256)).slice(0, 6), 'c50100', 'bin 16');
    t.equal(hdr(new Array(15).fill(0)).slice(0, 2), '9f', 'fixarray up to 15');
    t.equal(hdr(new Array(16).fill(0)).slice(0, 6), 'dc0010', 'array 16');
    t.equal(
      hdr(Object.fromEntries([...Array(16).keys()].map((i) => [`k${i}`, i]))).slice(0, 6),
      'de0010',
      'map 16',
    );
    t.equal(encodeValue({ a: 1, b: undefined }).toString('hex'), '81a16101', 'undefined = absent');
    t.equal(encodeValue({ s: 'é' }).toString('hex'), '81a173a2c3a9', 'UTF-8 bytes are counted');
    t.throws(() => encodeValue({ a: [undefined] }), { code: 'internal' }, 'undefined in an array');
    t.throws(() => encodeValue({ d: new Date(0) }), { code: 'internal' }, 'class instances');
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    t.throws(() => encodeValue(cycle), { code: 'internal' }, 'a cycle');
  },
);

t.test('property: the encoder writes what msgpackr writes, except integers beyond 32 bits', async (t) => {
  const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });
  const leaf = fc.oneof(
    fc.boolean(),
    fc.constant(null),
    fc.integer({ min: -0x80000000, max: 0xffffffff }),
    fc.double({ noInteger: true }),
    fc.string({ unit: 'binary', maxLength: 300 }), // lone surrogates included
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
  );
  const value = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('node'), { maxLength: 20 }),
      fc.dictionary(
        fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
        tie('node'),
        {
          maxKeys: 20,
        },
      ),
    ),
  })).node;
  fc.assert(
    fc.property(
      fc.dictionary(
        fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
        value,
      ),
      (v) => {
        const ours = encodeValue(v);
        const theirs = Buffer.from(packr.pack(v));
        if (!ours.equals(theirs)) throw new Error(`${ours.toString('hex')} != ${theirs.toString('hex')}`);
      },
    ),
    { numRuns: 500 },
  );
  t.pass('500 random values encoded byte for byte as msgpackr does');
});
