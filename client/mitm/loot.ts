// What Mallory stole (docs/attacks.md: "Mallory prints the AES key and decrypted messages it stole"). Loot only
// exists where Mallory holds session keys, i.e. when she terminated an insecure (unauthenticated) DH
// session on both sides (client/mitm/interceptor.ts). Against the secure mode nothing ever lands here:
// the report of a secure run has `stolen: null`, and a test greps it for the honest parties' keys.
//
// Sources of AES keys inside decrypted application messages (shared/protocol/messages-keys.ts):
// - the `key.create` response (a KDC-generated key, `--mode kdc`) and a `key.delivered` push of mode kdc;
// - an end-to-end key wrapped for a prekey Mallory substituted (if the sender ever accepted it);
// and messages (`msg.send` requests, `msg` pushes) decrypt with any key stolen before them.
import { keyFingerprint } from '../../shared/keys/digest.js';
import { openMessage } from '../../shared/keys/message.js';
import type { ClientRequest, ServerMessage } from '../../shared/protocol/secure-channel.js';

export interface StolenKey {
  serial: string;
  key: Buffer;
  fingerprint: string;
  from?: string;
  to?: string;
  /** Where it was read, e.g. "key.create response". */
  source: string;
  conn: number;
}

export interface StolenPlaintext {
  conn: number;
  dir: 'c2s' | 's2c';
  type: string;
  text: string;
}

/** Most decrypted messages kept (a long-running Mallory must not grow without bound). */
const MAX_PLAINTEXT = 500;

export class Loot {
  readonly keys = new Map<string, StolenKey>();
  readonly plaintext: StolenPlaintext[] = [];
  #onKey: (k: StolenKey) => void;
  #onPlaintext: (p: StolenPlaintext) => void;

  constructor(hooks: { onKey?: (k: StolenKey) => void; onPlaintext?: (p: StolenPlaintext) => void } = {}) {
    this.#onKey = hooks.onKey ?? (() => {});
    this.#onPlaintext = hooks.onPlaintext ?? (() => {});
  }

  get empty(): boolean {
    return this.keys.size === 0 && this.plaintext.length === 0;
  }

  addKey(k: Omit<StolenKey, 'fingerprint'>): void {
    if (k.key.length !== 32 || this.keys.has(k.serial)) return;
    const stolen = { ...k, key: Buffer.from(k.key), fingerprint: keyFingerprint(k.key) };
    this.keys.set(k.serial, stolen);
    this.#onKey(stolen);
  }

  addPlaintext(p: StolenPlaintext): void {
    if (this.plaintext.length >= MAX_PLAINTEXT) return;
    this.plaintext.push(p);
    this.#onPlaintext(p);
  }

  /** A request Mallory decrypted on its way to the KDC. `victim` is the name the client claimed. */
  inspectRequest(conn: number, victim: string, req: ClientRequest): void {
    const b = req.body as Record<string, unknown>;
    this.addPlaintext({ conn, dir: 'c2s', type: req.type, text: summarize(b) });
    if (req.type === 'msg.send') {
      this.#decryptMessage(conn, 'c2s', String(b.serial), victim, String(b.to), b.seq, b.nonce, b.ciphertext);
    }
  }

  /** A response or push Mallory decrypted on its way to the victim. */
  inspectServerMessage(conn: number, victim: string, msg: ServerMessage): void {
    if (msg.kind === 'error') {
      this.addPlaintext({
        conn,
        dir: 's2c',
        type: `${msg.type} error`,
        text: `[${msg.error.code}] ${msg.error.message}`,
      });
      return;
    }
    const b = msg.body as Record<string, unknown>;
    this.addPlaintext({
      conn,
      dir: 's2c',
      type: msg.kind === 'ok' ? `${msg.type} ok` : msg.type,
      text: summarize(b),
    });
    if (msg.kind === 'ok' && msg.type === 'key.create' && b.key instanceof Uint8Array) {
      this.addKey({
        serial: String(b.serial),
        key: Buffer.from(b.key),
        from: victim,
        to: String(b.peer),
        source: 'key.create response',
        conn,
      });
    }
    if (
      msg.kind === 'push' &&
      msg.type === 'key.delivered' &&
      b.mode === 'kdc' &&
      b.key instanceof Uint8Array
    ) {
      this.addKey({
        serial: String(b.serial),
        key: Buffer.from(b.key),
        from: String(b.from),
        to: String(b.to),
        source: 'key.delivered push',
        conn,
      });
    }
    if (msg.kind === 'push' && msg.type === 'msg') {
      this.#decryptMessage(
        conn,
        's2c',
        String(b.serial),
        String(b.from),
        String(b.to),
        b.seq,
        b.nonce,
        b.ciphertext,
      );
    }
  }

  #decryptMessage(
    conn: number,
    dir: 'c2s' | 's2c',
    serial: string,
    from: string,
    to: string,
    seq: unknown,
    nonce: unknown,
    ciphertext: unknown,
  ): void {
    const k = this.keys.get(serial);
    if (k === undefined || !(nonce instanceof Uint8Array) || !(ciphertext instanceof Uint8Array)) return;
    if (typeof seq !== 'number') return;
    try {
      const text = openMessage(
        k.key,
        { serial, from, to, seq },
        { nonce: Buffer.from(nonce), ciphertext: Buffer.from(ciphertext) },
      );
      this.addPlaintext({ conn, dir, type: 'message', text: `${from} -> ${to}: ${text.toString('utf8')}` });
    } catch {
      // not this key after all: nothing learned
    }
  }
}

/** A one-line rendering of a decrypted body: short byte strings in hex, long ones by size. */
export function summarize(body: unknown, depth = 0): string {
  if (body instanceof Uint8Array)
    return body.length <= 64 ? `0x${Buffer.from(body).toString('hex')}` : `<${body.length} bytes>`;
  if (Array.isArray(body))
    return depth > 2 ? '[...]' : `[${body.map((v) => summarize(v, depth + 1)).join(', ')}]`;
  if (body !== null && typeof body === 'object') {
    if (depth > 2) return '{...}';
    return `{${Object.entries(body)
      .map(([k, v]) => `${k}: ${summarize(v, depth + 1)}`)
      .join(', ')}}`;
  }
  return typeof body === 'string' ? JSON.stringify(body) : String(body);
}
