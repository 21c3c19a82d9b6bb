// fast-check arbitraries that turn one VALID frame (or application message) into hostile variants, for
// the fuzz tests of test/hardening/. Two families, mixed:
//   - byte level: bit flips, truncation, extension, insertion, overwrite with msgpack's tricky bytes;
//   - structure level (decode the template, change one container somewhere in it, re-encode with the
//     permissive writer of msgpack-raw.ts): type confusion, missing/unknown/duplicate/non-string keys,
//     length headers that claim up to 4 GiB, nesting far past MAX_DEPTH, msgpack extension types
//     (including msgpackr's record and timestamp extensions), invalid UTF-8, oversized strings/arrays,
//     a top level that is not a map.
// Every variant records its `kind`, so a test can report the mix it ran and a failure names its family.
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { MAX_ARRAY, MAX_DEPTH, MAX_STRING } from '../../shared/protocol/limits.js';
import { Entries, Raw, encodeRaw, extension, lyingHeader, nested } from './msgpack-raw.js';

export interface Mutant {
  kind: string;
  bytes: Buffer;
}

const unpackr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'bigint' });

/** msgpack bytes that parsers historically get wrong: nil/never-used, ext markers, 32-bit headers. */
const TRICKY_BYTES = [
  0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcf, 0xd3,
  0xd4, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff,
];

const HUGE = [0xffffffff, 0x7fffffff, 0x10001, MAX_STRING + 1, 2 ** 31];

/** Values of every msgpack type, and the well-known bombs, to put where the schema expects another. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -(2 ** 31), max: 2 ** 32 }),
  fc.constantFrom<unknown>(
    2 ** 53,
    -(2 ** 53),
    2n ** 64n - 1n,
    -(2n ** 63n),
    Number.NaN,
    Infinity,
    -Infinity,
    -0,
    0.5,
    1e308,
  ),
  fc.string({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
  fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 8 })), { maxLength: 5 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.integer(), { maxKeys: 4 }),
  // huge lengths: a header that promises up to 4 GiB, followed by almost nothing
  fc
    .tuple(
      fc.constantFrom('bin', 'str', 'array', 'map', 'ext') as fc.Arbitrary<
        'bin' | 'str' | 'array' | 'map' | 'ext'
      >,
      fc.constantFrom(...HUGE),
    )
    .map(([kind, n]) => new Raw(lyingHeader(kind, n))),
  // deep nesting: just past the limit, and far past it
  fc
    .tuple(
      fc.oneof(fc.integer({ min: MAX_DEPTH, max: MAX_DEPTH + 3 }), fc.integer({ min: 100, max: 20_000 })),
      fc.constantFrom('array', 'map') as fc.Arbitrary<'array' | 'map'>,
    )
    .map(([depth, kind]) => new Raw(nested(depth, kind))),
  // extension types: fixext/ext, including msgpackr's records (0x72) and timestamps (-1)
  fc
    .tuple(
      fc.constantFrom(0x00, 0x01, 0x72, 0x73, 0x78, 0x7f, 0xff, 0xfe),
      fc.constantFrom(0, 1, 2, 4, 8, 12, 16, 17, 300),
    )
    .map(([type, len]) => new Raw(extension(type, Buffer.alloc(len, 0x41)))),
  // invalid UTF-8, the never-used byte, oversized strings and arrays that still fit in a frame
  fc.constantFrom(
    new Raw(Buffer.from([0xa2, 0xc3, 0x28])),
    new Raw(Buffer.from([0xa3, 0xed, 0xa0, 0x80])), // a UTF-16 surrogate encoded in UTF-8
    new Raw(Buffer.from([0xc1])),
    'x'.repeat(MAX_STRING + 1),
    new Raw(
      Buffer.concat([
        Buffer.from([0xdc, (MAX_ARRAY + 1) >> 8, (MAX_ARRAY + 1) & 0xff]),
        Buffer.alloc(MAX_ARRAY + 1, 0xc0),
      ]),
    ),
    new Raw(Buffer.from([0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1])), // a signalling NaN
  ),
);

type Container = Record<string, unknown> | unknown[];

function isContainer(v: unknown): v is Container {
  return (
    (Array.isArray(v) || (typeof v === 'object' && v !== null)) &&
    !(v instanceof Uint8Array) &&
    !(v instanceof Raw) &&
    !(v instanceof Entries)
  );
}

/** Paths (lists of keys/indices) to every map or array in `value`, the root first. */
function containerPaths(
  value: unknown,
  path: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  if (!isContainer(value)) return out;
  out.push(path);
  if (Array.isArray(value)) value.forEach((v, i) => containerPaths(v, [...path, i], out));
  else for (const [k, v] of Object.entries(value)) containerPaths(v, [...path, k], out);
  return out;
}

function clone(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(clone);
  if (isContainer(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, clone(v)]));
  return value;
}

function at(root: unknown, path: (string | number)[]): Container {
  let v = root;
  for (const p of path) v = (v as Record<string | number, unknown>)[p];
  return v as Container;
}

function setAt(root: unknown, path: (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const parent = at(root, path.slice(0, -1)) as Record<string | number, unknown>;
  parent[path[path.length - 1]!] = value;
  return root;
}

type StructuralOp = 'replace' | 'delete' | 'add' | 'duplicate' | 'nonStringKey' | 'retype' | 'protoKey';

interface StructuralChoice {
  pathPick: number;
  keyPick: number;
  op: StructuralOp;
  value: unknown;
  extraKey: string;
}

function applyStructural(template: unknown, c: StructuralChoice): Mutant {
  const root = clone(template);
  const paths = containerPaths(root);
  const path = paths[c.pathPick % paths.length]!;
  const container = at(root, path);
  const keys: (string | number)[] = Array.isArray(container)
    ? container.map((_, i) => i)
    : Object.keys(container);
  const key = keys.length === 0 ? undefined : keys[c.keyPick % keys.length];
  let result: unknown = root;
  switch (c.op) {
    case 'replace':
      if (key === undefined) (container as Record<string, unknown>)[c.extraKey] = c.value;
      else (container as Record<string | number, unknown>)[key] = c.value;
      break;
    case 'delete':
      if (key !== undefined) {
        if (Array.isArray(container)) container.splice(Number(key), 1);
        else delete container[key as string];
      }
      break;
    case 'add':
      if (Array.isArray(container)) container.push(c.value);
      else container[c.extraKey] = c.value;
      break;
    case 'duplicate':
    case 'nonStringKey':
    case 'protoKey': {
      if (Array.isArray(container)) {
        result = setAt(root, path, new Entries(container.map((v, i) => [i, v] as const)));
        break;
      }
      const pairs: [unknown, unknown][] = Object.entries(container);
      if (c.op === 'duplicate' && key !== undefined) pairs.push([key, c.value]);
      else if (c.op === 'nonStringKey')
        pairs.splice(c.keyPick % (pairs.length + 1), 0, [
          c.keyPick % 3 === 0 ? null : c.keyPick % 3 === 1 ? 7 : Buffer.from('t'),
          c.value,
        ]);
      else pairs.push([c.keyPick % 2 === 0 ? '__proto__' : 'constructor', c.value]);
      result = setAt(root, path, new Entries(pairs));
      break;
    }
    case 'retype':
      result = setAt(root, path, c.value);
      break;
  }
  return { kind: `struct:${c.op}`, bytes: encodeRaw(result) };
}

const structuralChoice: fc.Arbitrary<StructuralChoice> = fc.record({
  pathPick: fc.nat(),
  keyPick: fc.nat(),
  op: fc.constantFrom<StructuralOp>(
    'replace',
    'replace',
    'replace',
    'delete',
    'add',
    'duplicate',
    'nonStringKey',
    'retype',
    'protoKey',
  ),
  value: hostileValue,
  extraKey: fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.constantFrom('t', 'id', 'b', 'v', 'mac', 'sig', 'cert', 'x'.repeat(200)),
  ),
});

function bitFlips(bytes: Buffer): fc.Arbitrary<Mutant> {
  return fc.array(fc.nat({ max: bytes.length * 8 - 1 }), { minLength: 1, maxLength: 8 }).map((bits) => {
    const out = Buffer.from(bytes);
    for (const bit of bits) out[bit >> 3]! ^= 1 << (bit & 7);
    return { kind: 'bytes:flip', bytes: out };
  });
}

function byteLevel(bytes: Buffer): fc.Arbitrary<Mutant> {
  const n = bytes.length;
  return fc.oneof(
    { weight: 4, arbitrary: bitFlips(bytes) },
    {
      weight: 2,
      arbitrary: fc
        .nat({ max: Math.max(0, n - 1) })
        .map((i) => ({ kind: 'bytes:truncate', bytes: bytes.subarray(0, i) })),
    },
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ minLength: 1, maxLength: 64 })
        .map((extra) => ({ kind: 'bytes:extend', bytes: Buffer.concat([bytes, extra]) })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.nat({ max: n }), fc.uint8Array({ minLength: 1, maxLength: 16 }))
        .map(([i, extra]) => ({
          kind: 'bytes:insert',
          bytes: Buffer.concat([bytes.subarray(0, i), extra, bytes.subarray(i)]),
        })),
    },
    {
      weight: 2,
      arbitrary: fc
        .array(fc.tuple(fc.nat({ max: Math.max(0, n - 1) }), fc.constantFrom(...TRICKY_BYTES)), {
          minLength: 1,
          maxLength: 4,
        })
        .map((edits) => {
          const out = Buffer.from(bytes);
          for (const [i, b] of edits) out[i] = b;
          return { kind: 'bytes:tricky', bytes: out };
        }),
    },
  );
}

/** Hostile variants of one valid msgpack frame (or application message plaintext). */
export function mutantsOf(template: Buffer): fc.Arbitrary<Mutant> {
  const decoded: unknown = unpackr.unpack(template);
  const structural = structuralChoice.map((c) => applyStructural(decoded, c));
  const wholeFrame = hostileValue.map((v) => ({ kind: 'struct:toplevel', bytes: encodeRaw(v) }));
  return fc.oneof(
    { weight: 5, arbitrary: byteLevel(template) },
    { weight: 6, arbitrary: structural },
    { weight: 1, arbitrary: wholeFrame },
  );
}

/** Paths to every leaf (scalar or byte string) in `value`. */
function leafPaths(
  value: unknown,
  path: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  if (isContainer(value)) {
    if (Array.isArray(value)) value.forEach((v, i) => leafPaths(v, [...path, i], out));
    else for (const [k, v] of Object.entries(value)) leafPaths(v, [...path, k], out);
  } else if (path.length > 0) {
    out.push(path);
  }
  return out;
}

// Built once: fast-check compiles a regular expression into an arbitrary at ~25 ms of CPU each (a
// `{0,66}` quantifier), and sameTypeVariant runs for every field mutant. The values drawn are the same.
const HEX_LIKE = fc.stringMatching(/^[0-9a-f]{0,66}$/);
const NAME_LIKE = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,66}$/);

/** A value of the SAME msgpack type as `v`, chosen to sit on the edges a handler must check. */
function sameTypeVariant(v: unknown): fc.Arbitrary<unknown> {
  if (typeof v === 'string') {
    return fc.oneof(
      fc.string({ maxLength: 70 }),
      HEX_LIKE,
      NAME_LIKE,
      fc.constantFrom(
        '',
        'admin',
        'kdc',
        'root-ca',
        '..',
        '../../etc/passwd',
        'A'.repeat(300),
        `${v}x`,
        v.slice(1),
        v.toUpperCase(),
        '\u0000',
        'é',
        v.replace(/[0-9]/g, 'f'),
      ),
    );
  }
  if (v instanceof Uint8Array) {
    const n = v.length;
    return fc
      .oneof(
        fc.uint8Array({ minLength: n, maxLength: n }),
        fc.uint8Array({ minLength: Math.max(0, n - 3), maxLength: n + 3 }),
        fc.constant(new Uint8Array(0)),
        fc.nat({ max: Math.max(0, n * 8 - 1) }).map((bit) => {
          const out = Buffer.from(v);
          if (n > 0) out[bit >> 3]! ^= 1 << (bit & 7);
          return out;
        }),
      )
      .map((u) => Buffer.from(u));
  }
  if (typeof v === 'number') {
    return fc.oneof(
      fc.constantFrom(
        0,
        -1,
        1,
        v + 1,
        v - 1,
        2 ** 31,
        2 ** 32 - 1,
        2 ** 32,
        2 ** 53 - 1,
        2 ** 53,
        -(2 ** 53),
        0.5,
      ),
      fc.integer(),
    );
  }
  if (typeof v === 'boolean') return fc.constant(!v);
  return hostileValue;
}

/**
 * Variants that keep the message well-formed msgpack and its field types, changing one leaf to an
 * edge value of the same type (an empty name, a serial one digit off, a 31-byte key, 2^53): these pass
 * the codec and often the schema, so they reach the handlers' own checks.
 */
export function fieldMutantsOf(template: Buffer): fc.Arbitrary<Mutant> {
  const decoded: unknown = unpackr.unpack(template);
  const leaves = leafPaths(decoded);
  if (leaves.length === 0) return mutantsOf(template);
  return fc
    .nat({ max: leaves.length - 1 })
    .chain((i) =>
      sameTypeVariant(
        at(decoded, leaves[i]!.slice(0, -1) as (string | number)[])[leaves[i]!.at(-1) as never],
      ).map((value) => ({ i, value })),
    )
    .map(({ i, value }) => {
      const root = clone(decoded);
      setAt(root, leaves[i]!, value);
      return { kind: 'field:same-type', bytes: encodeRaw(root) };
    });
}

/** Count of each mutation family in a list (for t.comment). */
export function tally(kinds: Iterable<string>): string {
  const counts = new Map<string, number>();
  for (const k of kinds) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k}=${n}`)
    .join(' ');
}
