// A deliberately permissive msgpack WRITER for hostile-input tests (msgpack spec,
// https://github.com/msgpack/msgpack/blob/master/spec.md). The production codec (shared/protocol/codec.ts)
// refuses to encode anything outside the accepted subset; a fuzzer needs the opposite: duplicate and
// non-string map keys, extension types, length headers that lie, nesting far beyond MAX_DEPTH. Values:
//   null, boolean, number (integers as the smallest int format, others as float64), bigint (int64/uint64),
//   string, Uint8Array (bin), arrays, plain objects (maps), Entries (a map written from explicit
//   [key, value] pairs: keys of any type, repeated at will) and Raw (bytes copied verbatim).
export class Raw {
  constructor(readonly bytes: Buffer) {}
}

export class Entries {
  constructor(readonly pairs: readonly (readonly [unknown, unknown])[]) {}
}

export function encodeRaw(value: unknown): Buffer {
  const out: Buffer[] = [];
  write(value, out);
  return Buffer.concat(out);
}

function header(byte: number, length: number, size: 0 | 1 | 2 | 4 | 8): Buffer {
  const b = Buffer.alloc(1 + size);
  b[0] = byte;
  if (size === 1) b.writeUInt8(length, 1);
  else if (size === 2) b.writeUInt16BE(length, 1);
  else if (size === 4) b.writeUInt32BE(length, 1);
  return b;
}

function lengthHeader(
  length: number,
  fix: number | undefined,
  fixMax: number,
  b8: number | undefined,
  b16: number,
  b32: number,
): Buffer {
  if (fix !== undefined && length <= fixMax) return Buffer.from([fix | length]);
  if (b8 !== undefined && length <= 0xff) return header(b8, length, 1);
  if (length <= 0xffff) return header(b16, length, 2);
  return header(b32, length, 4);
}

function write(value: unknown, out: Buffer[]): void {
  if (value instanceof Raw) {
    out.push(value.bytes);
  } else if (value === null || value === undefined) {
    out.push(Buffer.from([0xc0]));
  } else if (typeof value === 'boolean') {
    out.push(Buffer.from([value ? 0xc3 : 0xc2]));
  } else if (typeof value === 'bigint') {
    const b = Buffer.alloc(9);
    if (value < 0n) {
      b[0] = 0xd3;
      b.writeBigInt64BE(BigInt.asIntN(64, value), 1);
    } else {
      b[0] = 0xcf;
      b.writeBigUInt64BE(BigInt.asUintN(64, value), 1);
    }
    out.push(b);
  } else if (typeof value === 'number') {
    out.push(encodeNumber(value));
  } else if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    out.push(lengthHeader(bytes.length, 0xa0, 31, 0xd9, 0xda, 0xdb), bytes);
  } else if (value instanceof Uint8Array) {
    out.push(lengthHeader(value.length, undefined, 0, 0xc4, 0xc5, 0xc6), Buffer.from(value));
  } else if (Array.isArray(value)) {
    out.push(lengthHeader(value.length, 0x90, 15, undefined, 0xdc, 0xdd));
    for (const item of value) write(item, out);
  } else if (value instanceof Entries) {
    out.push(lengthHeader(value.pairs.length, 0x80, 15, undefined, 0xde, 0xdf));
    for (const [k, v] of value.pairs) {
      write(k, out);
      write(v, out);
    }
  } else if (typeof value === 'object') {
    write(new Entries(Object.entries(value as Record<string, unknown>)), out);
  } else {
    throw new TypeError(`cannot encode ${typeof value}`);
  }
}

function encodeNumber(n: number): Buffer {
  if (!Number.isInteger(n) || Object.is(n, -0) || n >= 2 ** 64 || n < -(2 ** 63)) {
    const b = Buffer.alloc(9);
    b[0] = 0xcb;
    b.writeDoubleBE(n, 1);
    return b;
  }
  if (n >= 0 && n <= 0x7f) return Buffer.from([n]);
  if (n < 0 && n >= -32) return Buffer.from([0xe0 | (n + 32)]);
  if (n >= 0) {
    if (n <= 0xff) return Buffer.from([0xcc, n]);
    if (n <= 0xffff) return header(0xcd, n, 2);
    if (n <= 0xffffffff) return header(0xce, n, 4);
    const b = Buffer.alloc(9);
    b[0] = 0xcf;
    b.writeBigUInt64BE(BigInt(n), 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = 0xd3;
  b.writeBigInt64BE(BigInt(n), 1);
  return b;
}

/** Header bytes that claim `length` items/bytes of a container or string type, with no content after. */
export function lyingHeader(kind: 'bin' | 'str' | 'array' | 'map' | 'ext', length: number): Buffer {
  const codes = { bin: 0xc6, str: 0xdb, array: 0xdd, map: 0xdf, ext: 0xc9 } as const;
  const b = Buffer.alloc(kind === 'ext' ? 6 : 5);
  b[0] = codes[kind];
  b.writeUInt32BE(length >>> 0, 1);
  if (kind === 'ext') b[5] = 0x01;
  return b;
}

/** An extension value: fixext 1/2/4/8/16 when the data fits exactly, else ext 8/16/32. */
export function extension(type: number, data: Buffer): Buffer {
  const fixed: Record<number, number> = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };
  const code = fixed[data.length];
  const t = Buffer.from([type & 0xff]);
  if (code !== undefined) return Buffer.concat([Buffer.from([code]), t, data]);
  if (data.length <= 0xff) return Buffer.concat([header(0xc7, data.length, 1), t, data]);
  if (data.length <= 0xffff) return Buffer.concat([header(0xc8, data.length, 2), t, data]);
  return Buffer.concat([header(0xc9, data.length, 4), t, data]);
}

/** `depth` nested one-element arrays (or maps {"a": ...}) around nil: a depth bomb in few bytes. */
export function nested(depth: number, kind: 'array' | 'map' = 'array'): Buffer {
  const open = kind === 'array' ? Buffer.from([0x91]) : Buffer.from([0x81, 0xa1, 0x61]);
  return Buffer.concat([...Array.from({ length: depth }, () => open), Buffer.from([0xc0])]);
}
