// The handshake transcript (docs/protocol.md, "Transcript"): SHA-256 over the exact bytes of the
// handshake messages in order, and the "core" of a message that carries its own signature and MAC.
//
// server_hello and client_finish end with the entries `sig` (when present) and then `mac`. A signature
// cannot cover itself, so each is computed over the message with the entries from itself onwards cut
// off: the frame's bytes up to the first byte of that entry's key, with the top-level map header's count
// reduced by the number of entries removed (the header keeps its format: fixmap, map16 or map32). The
// receiver cuts the exact bytes it received, so no re-encoding (and no canonical form) is ever needed.
import { sha256 } from '../crypto/hash.js';
import { ProtocolError, InternalError } from '../errors.js';
import { encodeEntry, type FrameLayout } from './codec.js';

const SERVER_SIGNATURE_CONTEXT = 'kds v1 server CertificateVerify';
const CLIENT_SIGNATURE_CONTEXT = 'kds v1 client CertificateVerify';

export function transcriptHash(...messages: readonly Uint8Array[]): Buffer {
  return sha256(...messages);
}

/**
 * What a CertificateVerify-style signature covers (the TLS 1.3 pattern, RFC 8446 section 4.4.3):
 * the context string, a single 0 byte, then the transcript hash.
 */
export function signatureInput(role: 'server' | 'client', th: Uint8Array): Buffer {
  const context = role === 'server' ? SERVER_SIGNATURE_CONTEXT : CLIENT_SIGNATURE_CONTEXT;
  return Buffer.concat([Buffer.from(context, 'latin1'), Buffer.from([0]), th]);
}

/** The received frame with the entries from `key` (inclusive) to the end removed. */
export function frameWithout(raw: Buffer, layout: FrameLayout, key: string): Buffer {
  return Buffer.concat(frameWithoutParts(raw, layout, key));
}

/**
 * frameWithout as its two pieces, the rewritten map header and a view of the rest, for hashing
 * without a copy: transcriptHash(a, ...frameWithoutParts(raw, layout, key)) hashes the same bytes as
 * transcriptHash(a, frameWithout(raw, layout, key)).
 */
export function frameWithoutParts(raw: Buffer, layout: FrameLayout, key: string): [Buffer, Buffer] {
  const index = layout.entries.findIndex((e) => e.key === key);
  if (index < 0) throw new ProtocolError('schema', `no ${key} entry to cut`);
  const removed = layout.entries.length - index;
  const header = setMapCount(raw.subarray(0, layout.headerLength), layout.entries.length - removed);
  return [header, raw.subarray(layout.headerLength, layout.entries[index]!.offset)];
}

/** The sender's side: `core` (an encoded map) with the entries appended and the header count raised. */
export function appendEntries(core: Buffer, entries: readonly (readonly [string, Uint8Array])[]): Buffer {
  const { count, headerLength } = readMapHeader(core);
  const header = setMapCount(core.subarray(0, headerLength), count + entries.length);
  return Buffer.concat([header, core.subarray(headerLength), ...entries.map(([k, v]) => encodeEntry(k, v))]);
}

function readMapHeader(frame: Buffer): { count: number; headerLength: number } {
  const b = frame[0]!;
  if (b >= 0x80 && b <= 0x8f) return { count: b & 0x0f, headerLength: 1 };
  if (b === 0xde) return { count: frame.readUInt16BE(1), headerLength: 3 };
  if (b === 0xdf) return { count: frame.readUInt32BE(1), headerLength: 5 };
  throw new InternalError('internal', 'not a msgpack map');
}

function setMapCount(header: Buffer, count: number): Buffer {
  const out = Buffer.from(header);
  if (out.length === 1) {
    if (count > 15) throw new InternalError('internal', 'fixmap overflow');
    out[0] = 0x80 | count;
  } else if (out.length === 3) {
    out.writeUInt16BE(count, 1);
  } else {
    out.writeUInt32BE(count, 1);
  }
  return out;
}
