// The plaintext frames of kds wire protocol v1 (docs/protocol.md, "Frames"): the three handshake
// messages, the alert (an error before keys exist) and the record that carries everything after the
// handshake. Each is one msgpack map with a `t` field naming its type.
import { KdsError, ProtocolError, InternalError, errorFor, isErrorCode } from '../errors.js';
import { NAME_PATTERN } from '../pki/names.js';
import { decodeValue, encodeValue, type FrameLayout, type LabDecodeLimits } from './codec.js';
import {
  MAC_BYTES,
  MAX_BYTES,
  MAX_CERT_BYTES,
  MAX_GROUPS,
  MAX_SIGNATURE_BYTES,
  MAX_TICKET_BYTES,
  NONCE_BYTES,
  PROTOCOL_VERSION,
} from './limits.js';
import { canonicalize, s, validate, type Infer } from './schema.js';

export const HANDSHAKE_MODES = ['auth', 'enroll', 'insecure', 'resume'] as const;
export type HandshakeMode = (typeof HANDSHAKE_MODES)[number];

/** Group names on the wire: unknown names are allowed in `groups` (ignored), like TLS. */
const groupName = s.string({ min: 1, max: 32, pattern: /^[a-z0-9_-]+$/ });
const version = s.uint({ max: 255 });
const nonce = s.bytes({ len: NONCE_BYTES });
/** Sized for the largest group (ffdhe2048: 256 bytes); the exact length per group is checked by dh.ts. */
const share = s.bytes({ min: 32, max: 512 });
const cert = s.bytes({ min: 1, max: MAX_CERT_BYTES });
const sig = s.bytes({ min: 1, max: MAX_SIGNATURE_BYTES });
const mac = s.bytes({ len: MAC_BYTES });
export const ERROR_CODE_PATTERN = /^[a-z][a-z0-9_]{0,39}$/;
export const MAX_ERROR_MESSAGE = 512;

// In `resume` mode the hello also carries the ticket and, as its LAST entry, the binder (transcript.ts
// cuts it off to compute it); both are present exactly in that mode.
const clientHelloCore = {
  t: s.literal('client_hello'),
  v: version,
  mode: s.enumOf(HANDSHAKE_MODES),
  groups: s.array(groupName, { min: 1, max: MAX_GROUPS }),
  group: groupName,
  nonce,
  share,
  ticket: s.optional(s.bytes({ min: 1, max: MAX_TICKET_BYTES })),
} as const;
export const ClientHelloCoreSchema = s.map(clientHelloCore);
export const ClientHelloSchema = s.map(
  { ...clientHelloCore, binder: s.optional(mac) },
  (m) =>
    (m.mode === 'resume') !== (m.ticket !== undefined) ||
    (m.ticket === undefined) !== (m.binder === undefined)
      ? 'ticket and binder are present exactly in resume mode'
      : undefined,
  '`ticket` and `binder` are present exactly when `mode` is `resume`',
);

// Field order is part of the protocol: `sig` then `mac` are the LAST entries (transcript.ts). The
// "core" schemas are what the sender encodes before it can compute them.
const serverHelloCore = {
  t: s.literal('server_hello'),
  v: version,
  group: groupName,
  nonce,
  share,
  cert: s.optional(cert),
} as const;
export const ServerHelloCoreSchema = s.map(serverHelloCore);
export const ServerHelloSchema = s.map(
  { ...serverHelloCore, sig: s.optional(sig), mac },
  (m) =>
    (m.cert === undefined) !== (m.sig === undefined)
      ? 'cert and sig must be both present or both absent'
      : undefined,
  '`cert` and `sig` are both present or both absent',
);

const clientFinishCore = {
  t: s.literal('client_finish'),
  cert: s.optional(cert),
  name: s.optional(s.string({ min: 1, max: 64, pattern: NAME_PATTERN })),
} as const;
export const ClientFinishCoreSchema = s.map(clientFinishCore);
export const ClientFinishSchema = s.map(
  { ...clientFinishCore, sig: s.optional(sig), mac },
  (m) =>
    (m.cert === undefined) !== (m.sig === undefined)
      ? 'cert and sig must be both present or both absent'
      : undefined,
  '`cert` and `sig` are both present or both absent',
);

export const AlertSchema = s.map({
  t: s.literal('alert'),
  code: s.string({ min: 1, max: 40, pattern: ERROR_CODE_PATTERN }),
  message: s.string({ max: MAX_ERROR_MESSAGE }),
});

/** `c` is ciphertext || 16-byte tag; a shorter `c` is a record_auth failure, not a schema one. */
export const RecordFrameSchema = s.map({
  t: s.literal('r'),
  c: s.bytes({ max: MAX_BYTES }),
});

export type ClientHello = Infer<typeof ClientHelloSchema>;
export type ServerHello = Infer<typeof ServerHelloSchema>;
export type ClientFinish = Infer<typeof ClientFinishSchema>;
export type Alert = Infer<typeof AlertSchema>;
export type RecordFrame = Infer<typeof RecordFrameSchema>;
export type Frame = ClientHello | ServerHello | ClientFinish | Alert | RecordFrame;
export type FrameType = Frame['t'];

export const FRAME_SCHEMAS = {
  client_hello: ClientHelloSchema,
  server_hello: ServerHelloSchema,
  client_finish: ClientFinishSchema,
  alert: AlertSchema,
  r: RecordFrameSchema,
} as const;

export interface DecodedFrame {
  readonly frame: Frame;
  readonly raw: Buffer;
  readonly layout: FrameLayout;
}

/** Validates and encodes one frame (fields in schema order, absent optionals dropped). */
export function encodeFrame(frame: Frame): Buffer {
  const schema = FRAME_SCHEMAS[frame.t];
  if (schema === undefined)
    throw new ProtocolError('unknown_type', `unknown frame type ${JSON.stringify(frame.t)}`);
  return encodeValue(canonicalize(schema, frame, frame.t) as Record<string, unknown>);
}

/**
 * Limits, then `t`, then (hellos) the version, then the schema. Errors: frame_too_large, bad_frame,
 * unknown_type, version_unsupported, schema.
 */
export function decodeFrame(raw: Uint8Array): Frame {
  return decodeFrameWithLayout(raw).frame;
}

export function decodeFrameWithLayout(raw: Uint8Array, lab: LabDecodeLimits = {}): DecodedFrame {
  const { value, layout, used } = decodeValue(raw, lab);
  const t = value.t;
  if (typeof t !== 'string') throw new ProtocolError('schema', 'frame.t: expected string');
  if (!Object.hasOwn(FRAME_SCHEMAS, t)) {
    throw new ProtocolError('unknown_type', `unknown frame type ${JSON.stringify(t.slice(0, 40))}`);
  }
  if (
    (t === 'client_hello' || t === 'server_hello') &&
    typeof value.v === 'number' &&
    value.v !== PROTOCOL_VERSION
  ) {
    // Checked before the schema: a future version may change every other field.
    throw new ProtocolError(
      'version_unsupported',
      `protocol version ${value.v} is not supported (this is ${PROTOCOL_VERSION})`,
    );
  }
  const frame = validate(FRAME_SCHEMAS[t as FrameType], value, t) as Frame;
  if (t === 'server_hello' || t === 'client_finish') checkTrailingEntries(t, layout, value.sig !== undefined);
  if (t === 'client_hello' && value.binder !== undefined && layout.entries.at(-1)?.key !== 'binder')
    // The binder covers the hello cut at its `binder` entry: an entry after it would not be covered.
    throw new ProtocolError('schema', 'client_hello: binder must be the last entry');
  const buf = used ?? (Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
  return { frame, raw: buf, layout };
}

/**
 * docs/protocol.md, server_hello and client_finish: "`sig` (when present) and then `mac` MUST be the
 * last entries of the map, in that order". The transcript cuts a message at its `sig` (or `mac`) entry
 * (transcript.ts), so an entry placed after `sig` would travel outside what the signature covers;
 * checked on the shape, before any certificate is parsed or any signature verified.
 */
function checkTrailingEntries(
  t: 'server_hello' | 'client_finish',
  layout: FrameLayout,
  hasSig: boolean,
): void {
  const keys = layout.entries.map((e) => e.key);
  const n = keys.length;
  if (hasSig) {
    if (keys[n - 2] !== 'sig' || keys[n - 1] !== 'mac')
      throw new ProtocolError('schema', `${t}: sig and then mac must be the last entries`);
  } else if (keys[n - 1] !== 'mac') {
    throw new ProtocolError('schema', `${t}: mac must be the last entry`);
  }
}

/**
 * The alert frame for an error before keys exist. Errors that are not KdsErrors become `internal`
 * with a fixed message, so no internal detail reaches the peer.
 */
export function encodeAlert(err: unknown): Buffer {
  const e = err instanceof KdsError ? err : new InternalError('internal', 'internal error');
  return encodeFrame({ t: 'alert', code: e.code, message: clip(e.message, MAX_ERROR_MESSAGE) });
}

export function clip(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  let out = text.slice(0, maxBytes);
  while (Buffer.byteLength(out, 'utf8') > maxBytes) out = out.slice(0, -1);
  return out;
}

/**
 * The KdsError for a code and message received from the peer (alert or `error` response). Unknown
 * codes (a newer peer) become `internal`; the peer's message is kept, clipped: it is text, not code.
 */
export function errorFromWire(code: string, message: string): KdsError {
  const details = { remote: true };
  if (!isErrorCode(code))
    return new InternalError('internal', clip(`peer error ${code}: ${message}`, MAX_ERROR_MESSAGE), details);
  // The class is the code's own (shared/errors.ts), as if the error had been raised on this side.
  return errorFor(code, clip(message, MAX_ERROR_MESSAGE), details);
}
