// The channel after the handshake (docs/protocol.md, "Application messages"): application messages,
// each one msgpack map, sealed one per record. The client sends requests {t, id, b}; the server sends
// responses {t: 'ok', id, b} / {t: 'error', id, code, message} and pushes {t, b}. Every body is checked
// against the catalog schema of its type before it is returned or sealed.
//
// Sealing order must equal sending order (the sequence number is implicit): seal and send in one step.
import { KdsError, InputError, ProtocolError, type ErrorCode } from '../errors.js';
import { getAppType, APP_TYPE_PATTERN } from './catalog.js';
import { decodeValue, encodeValue } from './codec.js';
import { exportKeyingMaterial, type TrafficKeys } from './key-schedule.js';
import {
  clip,
  decodeFrame,
  encodeFrame,
  errorFromWire,
  ERROR_CODE_PATTERN,
  MAX_ERROR_MESSAGE,
} from './messages.js';
import { MAX_RECORD_PLAINTEXT, MAX_REQUEST_ID } from './limits.js';
import { RecordOpener, RecordSealer } from './record-layer.js';
import { canonicalize, validate, type MapSchema } from './schema.js';
import { ALL_DEFENCES_ON, labOff, type Defences } from '../lab-switches.js';

export type ServerMessage =
  | { kind: 'ok'; type: string; id: number; body: unknown }
  | { kind: 'error'; type: string; id: number; error: KdsError }
  | { kind: 'push'; type: string; body: unknown };

export interface ClientRequest {
  type: string;
  id: number;
  body: unknown;
}

export interface ChannelOptions {
  /** Records per direction before sequence_exhausted (default SEQUENCE_LIMIT; tests lower it). */
  sequenceLimit?: number | undefined;
  /** The MITM lab's ablation switches (shared/lab-switches.ts); default: every defence on. */
  defences?: Defences;
}

abstract class Channel {
  readonly sessionId: string;
  protected readonly sealer: RecordSealer;
  protected readonly opener: RecordOpener;
  readonly #exporterSecret: Buffer;

  constructor(role: 'client' | 'server', keys: TrafficKeys, opts: ChannelOptions = {}) {
    this.sessionId = keys.sessionId.toString('hex');
    const defences = opts.defences ?? ALL_DEFENCES_ON;
    const c2s = [keys.c2sKey, keys.c2sIv] as const;
    let s2c = [keys.s2cKey, keys.s2cIv] as const;
    let s2cDir: 'c2s' | 's2c' = 's2c';
    // LAB SWITCH direction-bound-keys: the server sends with the client's key, IV and additional data.
    if (labOff(defences, 'direction-bound-keys')) [s2c, s2cDir] = [c2s, 'c2s'];
    const [outKey, outIv, outDir] = role === 'client' ? [...c2s, 'c2s' as const] : [...s2c, s2cDir];
    const [inKey, inIv, inDir] = role === 'client' ? [...s2c, s2cDir] : [...c2s, 'c2s' as const];
    this.sealer = new RecordSealer(outKey, outIv, outDir, opts.sequenceLimit);
    this.opener = new RecordOpener(inKey, inIv, inDir, opts.sequenceLimit, defences);
    this.#exporterSecret = keys.exporterSecret;
  }

  /** Keying material bound to this session (docs/protocol.md, "Exporter"). */
  exportKeyingMaterial(label: string, length: number): Buffer {
    return exportKeyingMaterial(this.#exporterSecret, label, length);
  }

  /** Records sealed so far in the sending direction. */
  get sentRecords(): number {
    return this.sealer.sequence;
  }

  protected sealValue(value: Record<string, unknown>): Buffer {
    const plaintext = encodeValue(value);
    if (plaintext.length > MAX_RECORD_PLAINTEXT) {
      throw new ProtocolError(
        'frame_too_large',
        `message of ${plaintext.length} bytes exceeds ${MAX_RECORD_PLAINTEXT}`,
      );
    }
    return encodeFrame({ t: 'r', c: this.sealer.seal(plaintext) });
  }

  /** Frame -> authenticated plaintext -> decoded map. Anything but a record here is unexpected. */
  protected openValue(frame: Uint8Array): Record<string, unknown> {
    const decoded = decodeFrame(frame);
    if (decoded.t !== 'r') {
      throw new ProtocolError(
        'unexpected_message',
        `expected a record after the handshake, got ${decoded.t}`,
      );
    }
    const plaintext = this.opener.open(decoded.c);
    return decodeValue(plaintext).value;
  }
}

function bodySchema(type: string, part: 'request' | 'response' | 'push'): MapSchema {
  const spec = getAppType(type);
  const schema = spec?.[part];
  if (schema === undefined) {
    throw new ProtocolError('unknown_type', `unknown ${part} type ${JSON.stringify(type.slice(0, 64))}`);
  }
  return schema;
}

function checkKeys(value: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new ProtocolError('schema', `${what}.${key}: unknown field`);
  }
  for (const key of allowed) {
    if (!Object.hasOwn(value, key)) throw new ProtocolError('schema', `${what}.${key}: missing`);
  }
}

function checkId(id: unknown, what: string): number {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0 || id > MAX_REQUEST_ID) {
    throw new ProtocolError('schema', `${what}.id: expected unsigned integer up to ${MAX_REQUEST_ID}`);
  }
  return id;
}

function checkTypeName(t: unknown, what: string): string {
  if (typeof t !== 'string' || t.length > 64 || !APP_TYPE_PATTERN.test(t)) {
    throw new ProtocolError('schema', `${what}.t: expected a message type`);
  }
  return t;
}

export class ClientChannel extends Channel {
  readonly #pending = new Map<number, string>();

  constructor(keys: TrafficKeys, opts?: ChannelOptions) {
    super('client', keys, opts);
  }

  /** Seals a request; the body is validated first (a bug here never reaches the wire). */
  sealRequest(type: string, id: number, body: unknown): Buffer {
    const schema = bodySchema(type, 'request');
    checkId(id, 'request');
    if (this.#pending.has(id)) throw new InputError('bad_request', `request id ${id} is already in flight`);
    const b = canonicalize(schema, body, `${type}.b`);
    const frame = this.sealValue({ t: type, id, b });
    this.#pending.set(id, type);
    return frame;
  }

  /** Request ids sent and not yet answered. */
  get pendingIds(): number[] {
    return [...this.#pending.keys()];
  }

  open(frame: Uint8Array): ServerMessage {
    const value = this.openValue(frame);
    const t = value.t;
    if (t === 'ok' || t === 'error') {
      const id = checkId(value.id, t);
      const type = this.#pending.get(id);
      if (type === undefined)
        throw new ProtocolError('unexpected_message', `${t} for unknown request id ${id}`);
      if (t === 'ok') {
        checkKeys(value, ['t', 'id', 'b'], 'ok');
        const body = validate(bodySchema(type, 'response'), value.b, `${type}.b`);
        this.#pending.delete(id);
        return { kind: 'ok', type, id, body };
      }
      checkKeys(value, ['t', 'id', 'code', 'message'], 'error');
      const code = value.code;
      const message = value.message;
      if (typeof code !== 'string' || !ERROR_CODE_PATTERN.test(code))
        throw new ProtocolError('schema', 'error.code: expected an error code');
      if (typeof message !== 'string' || Buffer.byteLength(message) > MAX_ERROR_MESSAGE) {
        throw new ProtocolError(
          'schema',
          `error.message: expected string of at most ${MAX_ERROR_MESSAGE} bytes`,
        );
      }
      this.#pending.delete(id);
      return { kind: 'error', type, id, error: errorFromWire(code, message) };
    }
    const type = checkTypeName(t, 'push');
    checkKeys(value, ['t', 'b'], 'push');
    const body = validate(bodySchema(type, 'push'), value.b, `${type}.b`);
    return { kind: 'push', type, body };
  }
}

export class ServerChannel extends Channel {
  constructor(keys: TrafficKeys, opts?: ChannelOptions) {
    super('server', keys, opts);
  }

  /**
   * Opens one request. A record failure is AuthError record_auth (close the connection). Envelope and
   * body errors are ProtocolErrors; when the envelope's id was readable it is in `details.id`, so the
   * server may answer with an `error` response instead of closing.
   */
  open(frame: Uint8Array): ClientRequest {
    const value = this.openValue(frame);
    let id: number | undefined;
    try {
      id = checkId(value.id, 'request');
      const type = checkTypeName(value.t, 'request');
      checkKeys(value, ['t', 'id', 'b'], 'request');
      const body = validate(bodySchema(type, 'request'), value.b, `${type}.b`);
      return { type, id, body };
    } catch (err) {
      if (id !== undefined && err instanceof ProtocolError) {
        throw new ProtocolError(err.code, err.message, { ...err.details, id });
      }
      throw err;
    }
  }

  sealOk(type: string, id: number, body: unknown): Buffer {
    checkId(id, 'ok');
    const b = canonicalize(bodySchema(type, 'response'), body, `${type}.b`);
    return this.sealValue({ t: 'ok', id, b });
  }

  sealError(id: number, code: ErrorCode, message: string): Buffer {
    checkId(id, 'error');
    return this.sealValue({ t: 'error', id, code, message: clip(message, MAX_ERROR_MESSAGE) });
  }

  sealPush(type: string, body: unknown): Buffer {
    const b = canonicalize(bodySchema(type, 'push'), body, `${type}.b`);
    return this.sealValue({ t: type, b });
  }
}
