// The client's encrypted key store (docs/keys.md "Requirements": "Client-side key storage: keys encrypted at rest in the
// client's home (0600), deleted on revocation"). Layout under the client home:
//
//   keys/            0700
//     <serial>.key   0600  one distributed AES key and its metadata
//     <serial>.sent  0600  the number of the last message we sent under it (docs/keys.md "Messages")
//     <serial>.recv  0600  our anti-replay window for the messages we received under it
//     prekeys/       0700
//       <id>.prekey  0600  the private half of one uploaded one-time (or last-resort) prekey
//
// Every file is "KDSCKS1\0" || nonce (12) || AES-256-GCM(store key, JSON record, AAD) || tag (16), with
// AAD = "kds v1 client key store" || 0x00 || len-prefixed(kind, id), so a file renamed to another
// serial or kind does not open. The store key is HKDF-SHA256(IKM = the client's identity private key
// as PKCS#8 DER, salt = "kds v1 client key store", info = name): whoever can use the identity key can
// read the store, nobody else; when KDS_CLIENT_PASSPHRASE encrypts key.pem, the store inherits that
// protection with no second secret to manage. (A re-enrolled client has a new identity key and cannot
// read the old store: its keys were bound to the old certificate anyway.)
//
// On revocation, expiry or a failed verification the key material is removed: the file is rewritten
// without it (a tombstone that keeps serial, peer, state and reason, so `kds client keys` can still say
// why a key is gone), and the receiver's prekey private is deleted as soon as it was used (or, when it
// was never used, once the KDC no longer holds its public half: KeyClient.topUpPrekeys).
import type { KeyObject } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError, InputError, StateError } from '../../shared/errors.js';
import { openBlob, sealBlob } from '../../shared/keys/aes-gcm.js';
import { hkdfSha256 } from '../../shared/crypto/hkdf.js';
import { AuthError } from '../../shared/errors.js';
import { encodeFields, text } from '../../shared/keys/transcript.js';
import { isKeySerial, isPrekeyId } from '../../shared/keys/serial.js';
import { acceptSeq, type ReplayState } from '../../shared/keys/replay-window.js';
import { withFileLock } from './file-lock.js';
import { ensurePrivateDir, writeFileAtomic } from '../../io/fs-atomic.js';

const MAGIC = Buffer.from('KDSCKS1\0', 'latin1');
const LABEL = 'kds v1 client key store';

/** Local states: `pending` until the exchange is confirmed (see client/keys/key-client.ts). */
export type LocalKeyState = 'pending' | 'active' | 'revoked' | 'expired' | 'superseded' | 'mismatch';

export interface StoredKey {
  serial: string;
  mode: 'e2e' | 'kdc';
  /** sender: we created it (owner); receiver: it was delivered to us. */
  role: 'sender' | 'receiver';
  owner: string;
  peer: string;
  state: LocalKeyState;
  createdAt: number;
  expiresAt: number;
  /** hex SHA-256 of the delivered ciphertext (e2e) or kdcKeyDigest (kdc): what key.verify presents. */
  digest: string;
  /** First 16 hex of SHA-256(key): shown to users instead of the key. */
  fingerprint: string;
  /** hex transcript hash (for the receiver's signature in key.verify). */
  transcriptHash?: string;
  /** base64 AES-256 key; absent once revoked, expired, superseded or rejected. */
  key?: string;
  reason?: string;
  revokedAt?: number;
  updatedAt: number;
}

export interface StoredPrekey {
  id: string;
  certSerial: string;
  publicKey: string; // base64, 32 bytes
  privateKey: string; // base64, the raw 32-byte X25519 private scalar
  createdAt: number;
  /** Our last-resort prekey: kept when an exchange uses it (docs/keys.md "Last-resort prekey"). */
  lastResort?: true;
}

export class ClientKeyStore {
  readonly dir: string;
  readonly #prekeyDir: string;
  readonly #storeKey: Buffer;

  private constructor(dir: string, storeKey: Buffer) {
    this.dir = dir;
    this.#prekeyDir = join(dir, 'prekeys');
    this.#storeKey = storeKey;
  }

  static open(home: string, name: string, identityKey: KeyObject): ClientKeyStore {
    const dir = join(home, 'keys');
    ensurePrivateDir(dir);
    ensurePrivateDir(join(dir, 'prekeys'));
    return new ClientKeyStore(dir, storeKeyOf(home, name, identityKey));
  }

  getKey(serial: string): StoredKey | undefined {
    if (!isKeySerial(serial)) return undefined;
    return this.#read<StoredKey>(join(this.dir, `${serial}.key`), 'key', serial);
  }

  putKey(record: StoredKey): void {
    this.#write(join(this.dir, `${record.serial}.key`), 'key', record.serial, record);
  }

  /** Every key record, oldest first. Files that do not open with this identity are skipped. */
  listKeys(): StoredKey[] {
    const out: StoredKey[] = [];
    for (const entry of safeReaddir(this.dir)) {
      const m = /^([0-9a-f]{32})\.key$/.exec(entry);
      if (!m) continue;
      const rec = this.getKey(m[1]!);
      if (rec !== undefined) out.push(rec);
    }
    return out.sort((a, b) => a.createdAt - b.createdAt || a.serial.localeCompare(b.serial));
  }

  /** Remove the key material, keeping a tombstone with the new state. */
  retire(
    serial: string,
    state: Exclude<LocalKeyState, 'pending' | 'active'>,
    info: { reason?: string; revokedAt?: number } = {},
  ): StoredKey | undefined {
    const rec = this.getKey(serial);
    if (rec === undefined) return undefined;
    const { key: _material, ...rest } = rec;
    const next: StoredKey = { ...rest, state, updatedAt: Date.now() };
    if (info.reason !== undefined) next.reason = info.reason;
    if (info.revokedAt !== undefined) next.revokedAt = info.revokedAt;
    this.putKey(next);
    // The message counters go with the material: a retired key can neither send nor accept messages,
    // so its replay memory is no longer needed (a key's lifetime bounds that memory).
    this.#unlink(join(this.dir, `${serial}.sent`));
    this.#unlink(join(this.dir, `${serial}.recv`));
    return next;
  }

  // Message counters (docs/keys.md "Messages"). Each in its own file, written by one role only: the
  // sender's number by `send`, the receiver's window by `listen`. In the key record, a `send` and a
  // `listen` of the same client (two processes) would each rewrite the other's field from a stale read,
  // and a lost window update would let a replay through. Two processes of the same role (two `send`s,
  // two `listen`s) update a file under its lock (file-lock.ts): nextSentSeq and acceptReceivedSeq.

  /**
   * Reserve the next message number under this key (durable before it is returned: a crash after this
   * costs a gap, never a reused number), or `key_expired` past `max`.
   */
  nextSentSeq(serial: string, max: number): number {
    assertSerial(serial);
    return withFileLock(this.#lockPath(serial, 'sent'), () => {
      const seq = this.sentSeq(serial) + 1;
      if (seq > max) throw new StateError('key_expired', `key ${serial} has sent its last message`);
      this.putSentSeq(serial, seq);
      return seq;
    });
  }

  /**
   * Accept message `seq` into this key's replay window, durably, or throw `replayed` (shared/keys/
   * replay-window.ts) leaving the window as it was.
   */
  acceptReceivedSeq(serial: string, seq: number): void {
    assertSerial(serial);
    withFileLock(this.#lockPath(serial, 'recv'), () => {
      this.putReplayState(serial, acceptSeq(this.replayState(serial), seq));
    });
  }

  #lockPath(serial: string, kind: 'sent' | 'recv'): string {
    return join(this.dir, `${serial}.${kind}.lock`);
  }

  /** The number of the last message we sent under this key (0: none). */
  sentSeq(serial: string): number {
    if (!isKeySerial(serial)) return 0;
    return this.#readCounter<{ seq: number }>(serial, 'sent')?.seq ?? 0;
  }

  putSentSeq(serial: string, seq: number): void {
    assertSerial(serial);
    this.#write(join(this.dir, `${serial}.sent`), 'sent', serial, { seq });
  }

  /** What we accepted from the other party under this key (shared/keys/replay-window.ts). */
  replayState(serial: string): ReplayState | undefined {
    if (!isKeySerial(serial)) return undefined;
    return this.#readCounter<ReplayState>(serial, 'recv');
  }

  putReplayState(serial: string, state: ReplayState): void {
    assertSerial(serial);
    this.#write(join(this.dir, `${serial}.recv`), 'recv', serial, state);
  }

  /** A counter file that exists but does not open fails closed: forgetting it would reopen replays. */
  #readCounter<T>(serial: string, kind: 'sent' | 'recv'): T | undefined {
    const path = join(this.dir, `${serial}.${kind}`);
    if (!existsSync(path)) return undefined;
    const value = this.#read<T>(path, kind, serial);
    if (value === undefined) {
      throw new InputError('malformed', `the message counter of key ${serial} is damaged`, { serial });
    }
    return value;
  }

  #unlink(path: string): void {
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  putPrekey(p: StoredPrekey): void {
    this.#write(join(this.#prekeyDir, `${p.id}.prekey`), 'prekey', p.id, p);
  }

  getPrekey(id: string): StoredPrekey | undefined {
    if (!isPrekeyId(id)) return undefined;
    return this.#read<StoredPrekey>(join(this.#prekeyDir, `${id}.prekey`), 'prekey', id);
  }

  deletePrekey(id: string): void {
    if (!isPrekeyId(id)) return;
    try {
      unlinkSync(join(this.#prekeyDir, `${id}.prekey`));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  prekeyIds(): string[] {
    return safeReaddir(this.#prekeyDir)
      .map((e) => /^([0-9a-f]{16})\.prekey$/.exec(e)?.[1])
      .filter((id): id is string => id !== undefined);
  }

  #write(path: string, kind: string, id: string, value: unknown): void {
    const sealed = sealBlob(this.#storeKey, Buffer.from(JSON.stringify(value), 'utf8'), aad(kind, id));
    writeFileAtomic(path, Buffer.concat([MAGIC, sealed]), 0o600);
  }

  #read<T>(path: string, kind: string, id: string): T | undefined {
    if (!existsSync(path)) return undefined;
    let raw: Buffer;
    try {
      raw = readFileSync(path);
    } catch (err) {
      throw new EnvironmentError('io_error', `cannot read ${path}`, { path }, { cause: err });
    }
    if (!raw.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
    try {
      return JSON.parse(
        openBlob(this.#storeKey, raw.subarray(MAGIC.length), aad(kind, id)).toString('utf8'),
      ) as T;
    } catch (err) {
      // Not ours (another identity's store, a renamed or damaged file): treated as absent.
      if (err instanceof AuthError) return undefined;
      throw err;
    }
  }
}

/** keys/store-key: the store key, wrapped for the current identity key after a renewal. */
export const STORE_KEY_FILE = 'store-key';
const WRAP_INFO = 'store key wrap';

/**
 * The store key of a home for `identityKey`: unwrapped from keys/store-key when a renewal left one
 * there, else derived from the identity key (a home never renewed). A renewal gives the client a new
 * identity key but keeps the store key (wrapStoreKey), so the keys and prekeys it holds carry over
 * without rewriting a file. A wrap that does not open with this identity (a re-enrollment replaced the
 * key) is ignored: the store then reads as this identity's, as before renewal existed.
 */
export function storeKeyOf(home: string, name: string, identityKey: KeyObject): Buffer {
  const ikm = identityKey.export({ type: 'pkcs8', format: 'der' });
  const derived = hkdfSha256(ikm, Buffer.from(LABEL, 'latin1'), Buffer.from(name, 'utf8'), 32);
  const path = join(home, 'keys', STORE_KEY_FILE);
  if (!existsSync(path)) return derived;
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    throw new EnvironmentError('io_error', `cannot read ${path}`, { path }, { cause: err });
  }
  if (!raw.subarray(0, MAGIC.length).equals(MAGIC)) return derived;
  try {
    return openBlob(wrappingKey(identityKey, name), raw.subarray(MAGIC.length), aad('store-key', name));
  } catch (err) {
    if (err instanceof AuthError) return derived;
    throw err;
  }
}

/** The content of keys/store-key that gives `storeKey` to `identityKey` (a renewal's new key). */
export function wrapStoreKey(storeKey: Buffer, identityKey: KeyObject, name: string): Buffer {
  return Buffer.concat([MAGIC, sealBlob(wrappingKey(identityKey, name), storeKey, aad('store-key', name))]);
}

function wrappingKey(identityKey: KeyObject, name: string): Buffer {
  const ikm = identityKey.export({ type: 'pkcs8', format: 'der' });
  return hkdfSha256(ikm, Buffer.from(LABEL, 'latin1'), encodeFields(WRAP_INFO, [text(name)]), 32);
}

/** A file name is built from it: only a well-formed serial (32 lowercase hex digits). */
function assertSerial(serial: string): void {
  if (!isKeySerial(serial)) throw new InputError('malformed', 'expected a key serial of 32 hex digits');
}

function aad(kind: string, id: string): Buffer {
  return encodeFields(LABEL, [text(kind), text(id)]);
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
