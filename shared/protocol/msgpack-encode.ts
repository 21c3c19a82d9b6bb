// The encoder of kds frames: the subset of MessagePack that codec.ts accepts, written in its smallest
// form (msgpack spec, "Formats"), with one rule msgpackr cannot be told to follow: an integer that does
// not fit 32 bits is written as uint 64 (0xcf) when it is positive and int 64 (0xd3) when it is negative,
// never as float 64. msgpackr writes such numbers as float 64 (it has no option for uint 64; a bigint
// becomes int 64 even when positive), and a strict decoder of a `uint` field (times are epoch
// milliseconds, above 2^32 since 1970 + 50 days) refuses a float. docs/protocol.md "Integers".
//
//   nil 0xc0, false 0xc2, true 0xc3
//   0 .. 0x7f positive fixint; 0x80 .. 0xff uint 8 (0xcc); .. 0xffff uint 16 (0xcd);
//   .. 0xffffffff uint 32 (0xce); .. 2^53-1 uint 64 (0xcf)
//   -32 .. -1 negative fixint; int 8/16/32 (0xd0-0xd2) by size; -2^53+1 .. -2^31-1 int 64 (0xd3)
//   other numbers (fractions, NaN, infinities, integers beyond 2^53) float 64 (0xcb)
//   str: fixstr (< 32 bytes), str 8/16/32 (0xd9-0xdb); bin 8/16/32 (0xc4-0xc6)
//   array: fixarray (< 16), array 16/32 (0xdc, 0xdd); map: fixmap (< 16), map 16/32 (0xde, 0xdf)
//
// Map entries whose value is `undefined` are left out (an absent optional field); nothing else that has
// no msgpack form (undefined in an array, functions, symbols, class instances, cycles) is encoded: it
// throws InternalError `internal`, a bug of the caller, since values are schema-checked before this.
// Two passes: the exact size first (so an oversized frame is refused before anything is written), then
// the bytes into one buffer of that size.
import { InternalError } from '../errors.js';

/** Deeper than any schema allows (MAX_DEPTH is 8): only a cycle or a caller's bug gets here. */
const MAX_ENCODE_DEPTH = 64;
const UINT32_MAX = 0xffffffff;
const INT32_MIN = -0x80000000;

function unsupported(what: string): InternalError {
  return new InternalError('internal', `cannot encode ${what} as msgpack`);
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Header bytes of a str/bin/array/map of `n`: a fix form below `fixLimit`, an 8-bit form if `has8`. */
function headerSize(n: number, fixLimit: number, has8: boolean): number {
  if (n < fixLimit) return 1;
  if (has8 && n < 0x100) return 2;
  if (n < 0x10000) return 3;
  return 5;
}

function sizeOf(value: unknown, depth: number): number {
  if (depth > MAX_ENCODE_DEPTH) throw unsupported('a value nested this deep (a cycle?)');
  switch (typeof value) {
    case 'boolean':
      return 1;
    case 'number':
      if (!Number.isSafeInteger(value)) return 9;
      if (value >= 0)
        return value < 0x80 ? 1 : value < 0x100 ? 2 : value < 0x10000 ? 3 : value <= UINT32_MAX ? 5 : 9;
      return value >= -32 ? 1 : value >= -0x80 ? 2 : value >= -0x8000 ? 3 : value >= INT32_MIN ? 5 : 9;
    case 'string': {
      const n = utf8Length(value);
      return headerSize(n, 32, true) + n;
    }
    case 'object': {
      if (value === null) return 1;
      if (value instanceof Uint8Array) return headerSize(value.length, 0, true) + value.length;
      if (Array.isArray(value)) {
        let n = headerSize(value.length, 16, false);
        for (const item of value) {
          if (item === undefined) throw unsupported('undefined in an array');
          n += sizeOf(item, depth + 1);
        }
        return n;
      }
      if (!isPlainObject(value)) throw unsupported(`an instance of ${value.constructor?.name ?? 'a class'}`);
      let entries = 0;
      let n = 0;
      for (const key of Object.keys(value)) {
        const v = value[key];
        if (v === undefined) continue;
        entries += 1;
        n += sizeOf(key, depth + 1) + sizeOf(v, depth + 1);
      }
      return headerSize(entries, 16, false) + n;
    }
    default:
      throw unsupported(typeof value);
  }
}

/** UTF-8 length; short strings are measured in JS (a native call costs more than the loop). */
function utf8Length(s: string): number {
  if (s.length > 64) return Buffer.byteLength(s, 'utf8');
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    // Lone surrogates become U+FFFD (3 bytes) as Buffer.write does; a pair is 4 bytes for 2 units.
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2;
        i += 1;
      } else n += 2;
    } else n += 2;
  }
  return n;
}

class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  /** A length header: the fix form (prefix | n) below `fix`, else the 8/16/32-bit form of `codes`. */
  length(n: number, fixPrefix: number, fix: number, codes: [number | undefined, number, number]): void {
    if (n < fix) this.byte(fixPrefix | n);
    else if (n < 0x100 && codes[0] !== undefined) {
      this.byte(codes[0]);
      this.byte(n);
    } else if (n < 0x10000) {
      this.byte(codes[1]);
      this.pos = this.buf.writeUInt16BE(n, this.pos);
    } else {
      this.byte(codes[2]);
      this.pos = this.buf.writeUInt32BE(n, this.pos);
    }
  }

  value(v: unknown): void {
    switch (typeof v) {
      case 'boolean':
        this.byte(v ? 0xc3 : 0xc2);
        return;
      case 'number':
        this.number(v);
        return;
      case 'string': {
        const n = utf8Length(v);
        this.length(n, 0xa0, 32, [0xd9, 0xda, 0xdb]);
        if (n === v.length) {
          // ASCII (the names, codes, serials and types that make up most fields): no native call.
          for (let i = 0; i < n; i++) this.buf[this.pos + i] = v.charCodeAt(i);
          this.pos += n;
        } else {
          this.pos += this.buf.write(v, this.pos, n, 'utf8');
        }
        return;
      }
      default:
        break;
    }
    if (v === null) {
      this.byte(0xc0);
      return;
    }
    if (v instanceof Uint8Array) {
      this.length(v.length, 0, 0, [0xc4, 0xc5, 0xc6]);
      this.buf.set(v, this.pos);
      this.pos += v.length;
      return;
    }
    if (Array.isArray(v)) {
      this.length(v.length, 0x90, 16, [undefined, 0xdc, 0xdd]);
      for (const item of v) this.value(item);
      return;
    }
    const map = v as Record<string, unknown>;
    const keys = Object.keys(map);
    let entries = 0;
    for (const key of keys) if (map[key] !== undefined) entries += 1;
    this.length(entries, 0x80, 16, [undefined, 0xde, 0xdf]);
    for (const key of keys) {
      const item = map[key];
      if (item === undefined) continue;
      this.value(key);
      this.value(item);
    }
  }

  number(v: number): void {
    if (!Number.isSafeInteger(v)) {
      // Fractions, NaN, infinities and integers a number cannot hold exactly (no schema accepts them).
      this.byte(0xcb);
      this.pos = this.buf.writeDoubleBE(v, this.pos);
    } else if (v >= 0) {
      if (v < 0x80) this.byte(v);
      else if (v < 0x100) {
        this.byte(0xcc);
        this.byte(v);
      } else if (v < 0x10000) {
        this.byte(0xcd);
        this.pos = this.buf.writeUInt16BE(v, this.pos);
      } else if (v <= UINT32_MAX) {
        this.byte(0xce);
        this.pos = this.buf.writeUInt32BE(v, this.pos);
      } else {
        this.byte(0xcf);
        this.pos = this.buf.writeBigUInt64BE(BigInt(v), this.pos);
      }
    } else if (v >= -32) this.byte(0x100 + v);
    else if (v >= -0x80) {
      this.byte(0xd0);
      this.pos = this.buf.writeInt8(v, this.pos);
    } else if (v >= -0x8000) {
      this.byte(0xd1);
      this.pos = this.buf.writeInt16BE(v, this.pos);
    } else if (v >= INT32_MIN) {
      this.byte(0xd2);
      this.pos = this.buf.writeInt32BE(v, this.pos);
    } else {
      this.byte(0xd3);
      this.pos = this.buf.writeBigInt64BE(BigInt(v), this.pos);
    }
  }
}

/** The exact encoded size of `value` (throws for what has no msgpack form). */
export function msgpackSize(value: unknown): number {
  return sizeOf(value, 0);
}

/** Encodes `value` whose size msgpackSize gave; a fresh buffer the caller owns. */
export function msgpackEncode(value: unknown, size = msgpackSize(value)): Buffer {
  const w = new Writer(Buffer.allocUnsafe(size));
  w.value(value);
  if (w.pos !== size) throw new InternalError('internal', 'msgpack size mismatch');
  return w.buf;
}
