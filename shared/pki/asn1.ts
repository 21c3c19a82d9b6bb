// A small, strict DER (ITU-T X.690 section 10) reader and writer on Buffers, for the parts of X.509,
// PKCS#10 and CRLs that kds reads or writes itself.
//
// Why not forge.asn1 here: reading, we need the EXACT bytes of sub-structures (the signed
// tbsCertificate / certificationRequestInfo / tbsCertList, the issuer Name copied into CRLs) and
// zero-copy slices of a 100k-entry CRL; writing, the CRL must be assembled from pre-encoded entry
// Buffers with hand-written length headers (a revocation re-signs the whole list). forge's binary-string
// ByteBuffers re-encode on output and copy on input. Everything here is DER only: definite, minimal
// lengths and low tag numbers; anything else is rejected as `malformed`.
import { InputError } from '../errors.js';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific tag byte: [n] primitive (0x80|n) or constructed (0xa0|n). */
export function contextTag(n: number, constructed: boolean): number {
  return (constructed ? 0xa0 : 0x80) | n;
}

/** One decoded TLV. `bytes` is the whole element, `content` its value; both are views, not copies. */
export interface Tlv {
  tag: number; // the identifier octet (class | constructed | number)
  constructed: boolean;
  bytes: Buffer;
  content: Buffer;
}

function malformed(what: string): InputError {
  return new InputError('malformed', `malformed DER: ${what}`);
}

/** Position of one element: identifier octet, content [start, end). No copies, no views. */
export interface Header {
  tag: number;
  start: number;
  end: number;
}

/** Read the identifier and length octets at `offset`; the element must end by `limit`. */
export function readHeader(buf: Buffer, offset: number, limit: number = buf.length): Header {
  if (offset + 2 > limit) throw malformed('truncated header');
  const tag = buf[offset]!;
  // X.690 8.1.2.4: tag numbers >= 31 use the high-tag-number form; nothing kds reads needs them.
  if ((tag & 0x1f) === 0x1f) throw malformed('high tag number');
  let pos = offset + 1;
  const first = buf[pos++]!;
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const n = first & 0x7f;
    // X.690 10.1: "The definite form of length encoding shall be used" (0x80 = indefinite).
    if (n === 0) throw malformed('indefinite length');
    if (n > 4) throw malformed('length too large');
    if (pos + n > limit) throw malformed('truncated length');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos++]!;
    // X.690 10.1: "... encoded in the minimum number of octets."
    if (length < 0x80 || buf[pos - n] === 0) throw malformed('non-minimal length');
  }
  const end = pos + length;
  if (end > limit) throw malformed('truncated content');
  return { tag, start: pos, end };
}

/** Read one TLV at `offset`. */
export function readTlv(buf: Buffer, offset = 0): Tlv {
  const h = readHeader(buf, offset);
  return {
    tag: h.tag,
    constructed: (h.tag & 0x20) !== 0,
    bytes: buf.subarray(offset, h.end),
    content: buf.subarray(h.start, h.end),
  };
}

/** Decode exactly one element that spans all of `buf` (no trailing bytes). */
export function readOne(buf: Buffer, expectTag?: number): Tlv {
  const tlv = readTlv(buf, 0);
  if (tlv.bytes.length !== buf.length) throw malformed('trailing bytes');
  if (expectTag !== undefined) expectTagOf(tlv, expectTag);
  return tlv;
}

/** The child elements of a constructed TLV, in order. */
export function childrenOf(tlv: Tlv): Tlv[] {
  if (!tlv.constructed) throw malformed(`tag 0x${tlv.tag.toString(16)} is not constructed`);
  const out: Tlv[] = [];
  let offset = 0;
  const c = tlv.content;
  while (offset < c.length) {
    const child = readTlv(c, offset);
    out.push(child);
    offset += child.bytes.length;
  }
  return out;
}

export function expectTagOf(tlv: Tlv, tag: number): Tlv {
  if (tlv.tag !== tag) throw malformed(`expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  return tlv;
}

/** Children of a SEQUENCE (or any constructed tag given), with a bound on how many there may be. */
export function sequenceOf(tlv: Tlv, tag: number = TAG.SEQUENCE): Tlv[] {
  return childrenOf(expectTagOf(tlv, tag));
}

// ---- primitive readers ----

export function readOid(tlv: Tlv): string {
  expectTagOf(tlv, TAG.OID);
  const c = tlv.content;
  if (c.length === 0) throw malformed('empty OID');
  const arcs: number[] = [];
  let value = 0;
  let started = false;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    // X.690 8.19.2: subidentifiers are minimal: the leading octet is never 0x80.
    if (!started && b === 0x80) throw malformed('non-minimal OID arc');
    started = true;
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER) throw malformed('OID arc too large');
    if ((b & 0x80) === 0) {
      arcs.push(value);
      value = 0;
      started = false;
    }
  }
  if (started) throw malformed('truncated OID');
  const first = arcs[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join('.');
}

/** INTEGER as unsigned big-endian magnitude bytes (the sign is reported separately). */
export function readIntegerBytes(
  tlv: Tlv,
  tag: number = TAG.INTEGER,
): { negative: boolean; magnitude: Buffer } {
  expectTagOf(tlv, tag);
  const c = tlv.content;
  if (c.length === 0) throw malformed('empty INTEGER');
  // X.690 8.3.2: the first nine bits are not all ones or all zeros.
  if (c.length > 1 && ((c[0] === 0x00 && c[1]! < 0x80) || (c[0] === 0xff && c[1]! >= 0x80))) {
    throw malformed('non-minimal INTEGER');
  }
  const negative = (c[0]! & 0x80) !== 0;
  return { negative, magnitude: c[0] === 0 && c.length > 1 ? c.subarray(1) : c };
}

export function readBigInt(tlv: Tlv, tag: number = TAG.INTEGER): bigint {
  const { negative, magnitude } = readIntegerBytes(tlv, tag);
  if (negative) throw malformed('negative INTEGER');
  return magnitude.length === 0 ? 0n : BigInt(`0x${magnitude.toString('hex')}`);
}

export function readSmallInt(tlv: Tlv, tag: number = TAG.INTEGER): number {
  const v = readBigInt(tlv, tag);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('INTEGER too large');
  return Number(v);
}

export function readBoolean(tlv: Tlv): boolean {
  expectTagOf(tlv, TAG.BOOLEAN);
  // X.690 11.1: DER TRUE is 0xFF.
  if (tlv.content.length !== 1 || (tlv.content[0] !== 0x00 && tlv.content[0] !== 0xff)) {
    throw malformed('BOOLEAN');
  }
  return tlv.content[0] === 0xff;
}

export function readBitString(tlv: Tlv): { unusedBits: number; bytes: Buffer } {
  expectTagOf(tlv, TAG.BIT_STRING);
  const c = tlv.content;
  if (c.length === 0) throw malformed('empty BIT STRING');
  const unusedBits = c[0]!;
  if (unusedBits > 7 || (c.length === 1 && unusedBits !== 0)) throw malformed('BIT STRING unused bits');
  return { unusedBits, bytes: c.subarray(1) };
}

/** The named bits of a BIT STRING (bit 0 = most significant bit of the first octet). */
export function readNamedBits(tlv: Tlv): number[] {
  const { unusedBits, bytes } = readBitString(tlv);
  const bits: number[] = [];
  const total = bytes.length * 8 - unusedBits;
  for (let i = 0; i < total; i++) {
    if ((bytes[i >> 3]! & (0x80 >> (i & 7))) !== 0) bits.push(i);
  }
  return bits;
}

const STRING_TAGS = new Set<number>([
  TAG.UTF8_STRING,
  TAG.PRINTABLE_STRING,
  TAG.IA5_STRING,
  TAG.T61_STRING,
  TAG.BMP_STRING,
  TAG.UNIVERSAL_STRING,
]);

/** A DirectoryString / IA5String as a JS string. */
export function readString(tlv: Tlv): string {
  if (!STRING_TAGS.has(tlv.tag)) throw malformed(`tag 0x${tlv.tag.toString(16)} is not a string`);
  if (tlv.tag === TAG.BMP_STRING) {
    if (tlv.content.length % 2 !== 0) throw malformed('BMPString length');
    return Buffer.from(tlv.content).swap16().toString('utf16le');
  }
  if (tlv.tag === TAG.UNIVERSAL_STRING) {
    if (tlv.content.length % 4 !== 0) throw malformed('UniversalString length');
    let s = '';
    for (let i = 0; i < tlv.content.length; i += 4) s += String.fromCodePoint(tlv.content.readUInt32BE(i));
    return s;
  }
  if (tlv.tag === TAG.UTF8_STRING) return tlv.content.toString('utf8');
  return tlv.content.toString('latin1');
}

/**
 * UTCTime / GeneralizedTime as epoch milliseconds. RFC 5280 4.1.2.5.1: UTCTime "MUST be expressed in
 * Greenwich Mean Time (Zulu) and MUST include seconds (i.e., times are YYMMDDHHMMSSZ)"; "Where YY is
 * greater than or equal to 50, the year SHALL be interpreted as 19YY; and Where YY is less than 50, the
 * year SHALL be interpreted as 20YY." 4.1.2.5.2: GeneralizedTime "MUST NOT include fractional seconds".
 */
export function readTime(tlv: Tlv): number {
  return readTimeAt(tlv.content, 0, tlv.content.length, tlv.tag);
}

/** readTime on a content range [start, end) of `buf` (the CRL parser's allocation-free path). */
export function readTimeAt(buf: Buffer, start: number, end: number, tag: number): number {
  let pos = start;
  const digits = (n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const c = buf[pos++]! - 0x30;
      if (c < 0 || c > 9) throw malformed('Time digits');
      v = v * 10 + c;
    }
    return v;
  };
  let year: number;
  if (tag === TAG.UTC_TIME) {
    if (end - start !== 13) throw malformed('UTCTime');
    const yy = digits(2);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (tag === TAG.GENERALIZED_TIME) {
    if (end - start !== 15) throw malformed('GeneralizedTime');
    year = digits(4);
  } else {
    throw malformed(`tag 0x${tag.toString(16)} is not a Time`);
  }
  const mo = digits(2);
  const d = digits(2);
  const h = digits(2);
  const mi = digits(2);
  const se = digits(2);
  if (buf[pos] !== 0x5a /* Z */) throw malformed('Time must end in Z');
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) throw malformed('invalid date');
  let ms = Date.UTC(year, mo - 1, d, h, mi, se);
  if (year < 100) ms = new Date(ms).setUTCFullYear(year); // Date.UTC maps years 0..99 to 1900..1999
  if (new Date(ms).getUTCDate() !== d) throw malformed('invalid date'); // e.g. Feb 30
  return ms;
}

// ---- writers ----

/** DER length octets (X.690 8.1.3: short form below 128, else minimal long form). */
export function derLength(length: number): Buffer {
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`bad DER length ${length}`);
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Identifier + length octets for a value of `contentLength` bytes (the content is appended by the caller). */
export function derHeader(tag: number, contentLength: number): Buffer {
  const len = derLength(contentLength);
  const out = Buffer.allocUnsafe(1 + len.length);
  out[0] = tag;
  len.copy(out, 1);
  return out;
}

export function derTlv(tag: number, content: Buffer | readonly Buffer[]): Buffer {
  const parts = Buffer.isBuffer(content) ? [content] : content;
  let length = 0;
  for (const p of parts) length += p.length;
  return Buffer.concat([derHeader(tag, length), ...parts]);
}

export function derSequence(parts: readonly Buffer[]): Buffer {
  return derTlv(TAG.SEQUENCE, parts);
}

export function derSet(parts: readonly Buffer[]): Buffer {
  return derTlv(TAG.SET, parts);
}

/** INTEGER from a non-negative magnitude (bytes, bigint or number), minimal two's complement. */
export function derUnsignedInteger(value: Buffer | bigint | number, tag: number = TAG.INTEGER): Buffer {
  let mag: Buffer;
  if (Buffer.isBuffer(value)) {
    mag = value;
  } else {
    const v = BigInt(value);
    if (v < 0n) throw new RangeError('negative INTEGER');
    let hex = v.toString(16);
    if (hex.length % 2 !== 0) hex = `0${hex}`;
    mag = Buffer.from(hex, 'hex');
  }
  let start = 0;
  while (start < mag.length - 1 && mag[start] === 0) start++;
  mag = mag.subarray(start);
  if (mag.length === 0) mag = Buffer.from([0]);
  // X.690 8.3.3: two's complement, so a set top bit needs a leading 0x00 to stay positive.
  return mag[0]! & 0x80 ? derTlv(tag, [Buffer.from([0]), mag]) : derTlv(tag, mag);
}

export function derBoolean(value: boolean): Buffer {
  return Buffer.from([TAG.BOOLEAN, 1, value ? 0xff : 0x00]);
}

export function derNull(): Buffer {
  return Buffer.from([TAG.NULL, 0]);
}

export function derOctetString(bytes: Buffer): Buffer {
  return derTlv(TAG.OCTET_STRING, bytes);
}

/** BIT STRING of whole octets (signatures, keys): unused-bits octet 0. */
export function derBitString(bytes: Buffer): Buffer {
  return derTlv(TAG.BIT_STRING, [Buffer.from([0]), bytes]);
}

const oidCache = new Map<string, Buffer>();

export function derOid(oid: string): Buffer {
  const cached = oidCache.get(oid);
  if (cached) return cached;
  const arcs = oid.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new RangeError(`bad OID ${oid}`);
    return Number(a);
  });
  if (arcs.length < 2 || arcs[0]! > 2 || (arcs[0]! < 2 && arcs[1]! > 39))
    throw new RangeError(`bad OID ${oid}`);
  const body: number[] = [];
  const subs = [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)];
  for (const sub of subs) {
    const chunk: number[] = [sub & 0x7f];
    for (let n = Math.floor(sub / 128); n > 0; n = Math.floor(n / 128)) chunk.unshift((n & 0x7f) | 0x80);
    body.push(...chunk);
  }
  const out = derTlv(TAG.OID, Buffer.from(body));
  oidCache.set(oid, out);
  return out;
}

const JAN_1_1950 = Date.UTC(1950, 0, 1);
const JAN_1_2050 = Date.UTC(2050, 0, 1);

/**
 * Time for certificates and CRLs, RFC 5280 4.1.2.5 / 5.1.2.4: "CRL issuers MUST encode thisUpdate as
 * UTCTime for dates through the year 2049. CRL issuers MUST encode thisUpdate as GeneralizedTime for
 * dates in the year 2050 or later." Milliseconds are truncated to whole seconds.
 */
export function derTime(ms: number): Buffer {
  if (!Number.isFinite(ms)) throw new RangeError('bad time');
  const d = new Date(Math.floor(ms / 1000) * 1000);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const rest = `${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}Z`;
  const year = d.getUTCFullYear();
  if (ms >= JAN_1_1950 && ms < JAN_1_2050) {
    return derTlv(TAG.UTC_TIME, Buffer.from(`${p2(year % 100)}${rest}`, 'latin1'));
  }
  if (year < 0 || year > 9999) throw new RangeError('time out of range');
  return derTlv(TAG.GENERALIZED_TIME, Buffer.from(`${String(year).padStart(4, '0')}${rest}`, 'latin1'));
}
