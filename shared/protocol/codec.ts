// The frame codec: one msgpack value per WebSocket message (docs/protocol.md, "Framing and limits").
// Encoding is msgpack-encode.ts (smallest forms; integers beyond 32 bits as uint 64 / int 64, never
// float 64). Decoding is two passes: a strict iterative scan of the raw bytes that enforces every limit and the
// accepted subset of msgpack BEFORE anything is allocated or recursed into, then msgpackr to build the
// value. The scan also records where each top-level entry starts, which the transcript needs to cut the
// signature and MAC entries off a handshake message (transcript.ts).
//
// Accepted subset: nil, booleans, integers, floats, str (valid UTF-8), bin, arrays, and maps whose keys
// are distinct strings. Refused (bad_frame): extension types (fixext/ext 8/16/32, including msgpackr's
// own records and timestamps), the never-used byte 0xc1, non-string or duplicate map keys, trailing
// bytes, truncation, and a top level that is not a map.
import { isUtf8 } from 'node:buffer';
import { Packr } from 'msgpackr';
import { ProtocolError } from '../errors.js';
import { MAX_ARRAY, MAX_BYTES, MAX_DEPTH, MAX_FRAME_BYTES, MAX_STRING } from './limits.js';
import { msgpackEncode, msgpackSize } from './msgpack-encode.js';

// Decoding only (encoding is msgpack-encode.ts).
const packr = new Packr({
  useRecords: false, // no msgpackr record extension: plain msgpack maps only
  mapsAsObjects: true,
  int64AsType: 'number', // uint64/int64 -> number; beyond 2^53 the schema's safe-integer check refuses it
});

/** Where a top-level map entry starts in the raw frame (the key's first byte). */
export interface EntryOffset {
  readonly key: string;
  readonly offset: number;
}

export interface FrameLayout {
  /** Bytes of the top-level map header (1 fixmap, 3 map16, 5 map32). */
  readonly headerLength: number;
  readonly entries: readonly EntryOffset[];
}

export interface DecodedValue {
  readonly value: Record<string, unknown>;
  readonly layout: FrameLayout;
  /** With LabDecodeLimits.ignoreTrailing only: the bytes of the message, without what followed it. */
  readonly used?: Buffer;
}

function badFrame(message: string): ProtocolError {
  return new ProtocolError('bad_frame', message);
}

/** Encodes an already-validated map into a fresh buffer; over MAX_FRAME_BYTES is frame_too_large. */
export function encodeValue(value: Record<string, unknown>): Buffer {
  const size = msgpackSize(value);
  if (size > MAX_FRAME_BYTES) {
    throw new ProtocolError('frame_too_large', `message of ${size} bytes exceeds ${MAX_FRAME_BYTES}`);
  }
  return msgpackEncode(value, size);
}

/** One map entry (a string key and a binary value) as it appears inside an encoded map. */
export function encodeEntry(key: string, value: Uint8Array): Buffer {
  return Buffer.concat([msgpackEncode(key), msgpackEncode(value)]);
}

/**
 * The MITM lab's relaxations of the decoder (shared/lab-switches.ts; only the KDC's handshake passes
 * them, and only with its switch off): a larger frame size, and bytes after the map ignored.
 */
export interface LabDecodeLimits {
  maxBytes?: number;
  ignoreTrailing?: boolean;
}

/** Scan (limits, subset, layout) then decode. Throws ProtocolError bad_frame / frame_too_large only. */
export function decodeValue(raw: Uint8Array, lab: LabDecodeLimits = {}): DecodedValue {
  if (!(raw instanceof Uint8Array)) throw badFrame('expected a binary frame');
  const maxBytes = lab.maxBytes ?? MAX_FRAME_BYTES;
  if (raw.length > maxBytes) {
    throw new ProtocolError('frame_too_large', `frame of ${raw.length} bytes exceeds ${MAX_FRAME_BYTES}`);
  }
  const whole = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const { layout, end } = scan(whole, lab.ignoreTrailing === true);
  const buf = end === whole.length ? whole : whole.subarray(0, end);
  let value: unknown;
  try {
    value = packr.unpack(buf);
  } catch {
    // Unreachable after a successful scan; kept so no decoder exception can escape untyped.
    throw badFrame('malformed msgpack');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw badFrame('top-level value must be a map');
  }
  return { value: value as Record<string, unknown>, layout, ...(buf !== whole ? { used: buf } : {}) };
}

interface Container {
  remaining: number; // items left (a map entry counts as two: key, value)
  isMap: boolean;
  keys: Set<string> | undefined; // distinct-key check (maps only)
}

/**
 * Iterative scan of one msgpack value. Depth is the number of open containers, so a depth bomb costs
 * one stack entry per level up to MAX_DEPTH and is refused at MAX_DEPTH + 1 without recursion.
 */
function scan(buf: Buffer, ignoreTrailing = false): { layout: FrameLayout; end: number } {
  const end = buf.length;
  if (end === 0) throw badFrame('empty frame');
  let pos = 0;
  const stack: Container[] = [];
  const entries: EntryOffset[] = [];
  let headerLength = 0;

  const need = (n: number): void => {
    if (pos + n > end) throw badFrame('truncated msgpack');
  };
  const readUint = (n: 1 | 2 | 4): number => {
    need(n);
    const v = n === 1 ? buf[pos]! : n === 2 ? buf.readUInt16BE(pos) : buf.readUInt32BE(pos);
    pos += n;
    return v;
  };

  // The first byte must open a map.
  const first = buf[0]!;
  if (!((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf)) {
    throw badFrame('top-level value must be a map');
  }

  let started = false;
  while (!started || stack.length > 0) {
    started = true;
    const top = stack[stack.length - 1];
    const isKey = top !== undefined && top.isMap && top.remaining % 2 === 0;
    const atTopLevelKey = isKey && stack.length === 1;
    const itemStart = pos;
    need(1);
    const b = buf[pos++]!;
    let strLen = -1;
    let binLen = -1;
    let open: { count: number; isMap: boolean } | undefined;

    if (b <= 0x7f || b >= 0xe0) {
      // positive / negative fixint
    } else if (b <= 0x8f) open = { count: b & 0x0f, isMap: true };
    else if (b <= 0x9f) open = { count: b & 0x0f, isMap: false };
    else if (b <= 0xbf) strLen = b & 0x1f;
    else {
      switch (b) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break;
        case 0xc4:
          binLen = readUint(1);
          break;
        case 0xc5:
          binLen = readUint(2);
          break;
        case 0xc6:
          binLen = readUint(4);
          break;
        case 0xca:
          need(4);
          pos += 4;
          break;
        case 0xcb:
          need(8);
          pos += 8;
          break;
        case 0xcc:
        case 0xd0:
          need(1);
          pos += 1;
          break;
        case 0xcd:
        case 0xd1:
          need(2);
          pos += 2;
          break;
        case 0xce:
        case 0xd2:
          need(4);
          pos += 4;
          break;
        case 0xcf:
        case 0xd3:
          need(8);
          pos += 8;
          break;
        case 0xd9:
          strLen = readUint(1);
          break;
        case 0xda:
          strLen = readUint(2);
          break;
        case 0xdb:
          strLen = readUint(4);
          break;
        case 0xdc:
          open = { count: readUint(2), isMap: false };
          break;
        case 0xdd:
          open = { count: readUint(4), isMap: false };
          break;
        case 0xde:
          open = { count: readUint(2), isMap: true };
          break;
        case 0xdf:
          open = { count: readUint(4), isMap: true };
          break;
        case 0xc1:
          throw badFrame('invalid msgpack byte 0xc1');
        default:
          // 0xc7-0xc9 ext 8/16/32, 0xd4-0xd8 fixext: never accepted.
          throw badFrame('msgpack extension types are not accepted');
      }
    }

    if (isKey && strLen < 0) throw badFrame('map keys must be strings');
    if (strLen >= 0) {
      if (strLen > MAX_STRING) throw badFrame(`string of ${strLen} bytes exceeds ${MAX_STRING}`);
      need(strLen);
      const bytes = buf.subarray(pos, pos + strLen);
      if (!isUtf8(bytes)) throw badFrame('string is not valid UTF-8');
      if (isKey) {
        const key = bytes.toString('utf8');
        if (key === '__proto__') throw badFrame('map key "__proto__" is not accepted');
        if (top!.keys!.has(key)) throw badFrame(`duplicate map key ${JSON.stringify(key.slice(0, 40))}`);
        top!.keys!.add(key);
        if (atTopLevelKey) entries.push({ key, offset: itemStart });
      }
      pos += strLen;
    } else if (binLen >= 0) {
      if (binLen > MAX_BYTES) throw badFrame(`binary of ${binLen} bytes exceeds ${MAX_BYTES}`);
      need(binLen);
      pos += binLen;
    }

    if (top !== undefined) top.remaining -= 1;
    if (open !== undefined) {
      if (stack.length + 1 > MAX_DEPTH) throw badFrame(`nesting deeper than ${MAX_DEPTH}`);
      if (open.count > MAX_ARRAY) {
        throw badFrame(`${open.isMap ? 'map' : 'array'} of ${open.count} entries exceeds ${MAX_ARRAY}`);
      }
      if (stack.length === 0) headerLength = pos;
      stack.push({
        remaining: open.isMap ? open.count * 2 : open.count,
        isMap: open.isMap,
        keys: open.isMap ? new Set() : undefined,
      });
    }
    while (stack.length > 0 && stack[stack.length - 1]!.remaining === 0) stack.pop();
  }
  if (pos !== end && !ignoreTrailing) throw badFrame('trailing bytes after the message');
  return { layout: { headerLength, entries }, end: pos };
}
