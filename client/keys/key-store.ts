// The client's encrypted key store (docs/keys.md "Requirements": "Client-side key storage: keys encrypted at rest in the
// client's home (0600), deleted on revocation"). Layout under the client home:
//
//   keys/            0700
//     <serial>.key   0600  one distributed AES key (pending or active) and its metadata
//     <serial>.sent  0600  the number of the last message we sent under it (docs/keys.md "Messages")
//     <serial>.recv  0600  our anti-replay window for the messages we received under it
//     prekeys/       0700
//       <id>.prekey  0600  the private half of one uploaded one-time (or last-resort) prekey
//     retired/       0700
//       <serial>.key 0600  the tombstone of a retired key (below)
//       .swept       0600  empty; its mtime is when retired/ was last pruned
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
//
// Tombstones live apart from the live keys, in retired/, because a peer decides how many there are: an
// enrolled sender may give us a short-lived key every second, and each one ends as a tombstone. What
// runs on every session open and every send (the pending re-check, the per-sender bound, the newest
// key with a peer) reads only the live keys (listLiveKeys), so its cost follows the keys we can use,
// not the keys we ever had. retired/ is pruned (pruneRetired, docs/keys.md "Client key store"): a
// tombstone is kept TOMBSTONE_GRACE_MS after its key's expiry, and while retired/ holds more than
// MAX_TOMBSTONES, tombstones of expired keys go at once, oldest first. Below HARD_MAX_TOMBSTONES a
// tombstone is never removed before its key expires: it is what makes a redelivered serial a duplicate
// (docs/keys.md "Last-resort prekey"), and once the key has expired a redelivery is refused as expired
// anyway. The file's mtime is set to that expiry, so the pruning pass needs no decryption to find
// candidates; it decrypts a candidate before removing it, so a copied store (whose mtimes were reset)
// loses nothing. A retirement writes the tombstone first and then deletes the live record, and a
// tombstone wins over a live record beside it (getKey, putKey, listLiveKeys).
import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError, InputError, StateError } from '../../shared/errors.js';
import { openBlob, sealBlob } from '../../shared/keys/aes-gcm.js';
import { hkdfSha256 } from '../../shared/crypto/hkdf.js';
import { AuthError } from '../../shared/errors.js';
import { encodeFields, text } from '../../shared/keys/transcript.js';
import { isKeySerial, isPrekeyId } from '../../shared/keys/serial.js';
import { acceptSeq, type ReplayState } from '../../shared/keys/replay-window.js';
import { withFileLock } from './file-lock.js';
import { hasCredentials, readClientHome, recoverRenewal } from '../home.js';
import { ensurePrivateDir, writeFileAtomic } from '../../io/fs-atomic.js';

const MAGIC = Buffer.from('KDSCKS1\0', 'latin1');
const LABEL = 'kds v1 client key store';

const DAY_MS = 24 * 60 * 60 * 1000;
/** How long a tombstone outlives its key's expiry: `kds client keys` can say why a key went. */
export const TOMBSTONE_GRACE_MS = 30 * DAY_MS;
/** Past this many tombstones, those of expired keys are pruned without the grace period. */
export const MAX_TOMBSTONES = 10_000;
/** Past this many, the oldest go whatever their expiry (a pass then costs ~0.5 s at most). */
const HARD_MAX_TOMBSTONES = 20_000;
/** retired/ is pruned at most this often (by any process of the client: the .swept file's mtime). */
const PRUNE_INTERVAL_MS = 60 * 60 * 1000;
const KEY_FILE = /^([0-9a-f]{32})\.key$/;

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

export interface KeyStoreOptions {
  /** The clock of retirement and of the pruning of retired/ (tests move it). */
  now?: () => number;
  /** MAX_TOMBSTONES unless given (tests use a few). */
  maxTombstones?: number;
  /** HARD_MAX_TOMBSTONES unless given. */
  hardMaxTombstones?: number;
}

export class ClientKeyStore {
  readonly dir: string;
  readonly #prekeyDir: string;
  readonly #retiredDir: string;
  readonly #storeKey: Buffer;
  readonly #now: () => number;
  readonly #maxTombstones: number;
  readonly #hardMaxTombstones: number;
  #prunedAt = -Infinity;

  private constructor(dir: string, storeKey: Buffer, opts: KeyStoreOptions) {
    this.dir = dir;
    this.#prekeyDir = join(dir, 'prekeys');
    this.#retiredDir = join(dir, 'retired');
    this.#storeKey = storeKey;
    this.#now = opts.now ?? Date.now;
    this.#maxTombstones = opts.maxTombstones ?? MAX_TOMBSTONES;
    this.#hardMaxTombstones = opts.hardMaxTombstones ?? HARD_MAX_TOMBSTONES;
  }

  static open(
    home: string,
    name: string,
    identityKey: KeyObject,
    opts: KeyStoreOptions = {},
  ): ClientKeyStore {
    const dir = join(home, 'keys');
    ensurePrivateDir(dir);
    ensurePrivateDir(join(dir, 'prekeys'));
    ensurePrivateDir(join(dir, 'retired'));
    return new ClientKeyStore(dir, storeKeyOf(home, name, identityKey), opts);
  }

  /**
   * The record of `serial`: its tombstone when there is one (a retirement wins over any live record
   * left beside it: a crash between retire()'s two steps, or another process's write from a stale
   * read), else the live record.
   */
  getKey(serial: string): StoredKey | undefined {
    if (!isKeySerial(serial)) return undefined;
    return (
      this.#read<StoredKey>(this.#retiredPath(serial), 'key', serial) ??
      this.#read<StoredKey>(this.#livePath(serial), 'key', serial)
    );
  }

  /**
   * Store a pending or active key (retire() writes tombstones). Nothing is written for a key already
   * retired: a process that read the record before another retired it (`listen` and `send` side by
   * side) must not bring its material back.
   */
  putKey(record: StoredKey): void {
    if (existsSync(this.#retiredPath(record.serial))) return;
    this.#write(this.#livePath(record.serial), 'key', record.serial, record);
  }

  /**
   * Every key record, live and retired, oldest first: what `kds client keys` shows without the KDC.
   * Files that do not open with this identity are skipped.
   */
  listKeys(): StoredKey[] {
    const bySerial = new Map<string, StoredKey>();
    for (const rec of this.#readDir(this.dir)) bySerial.set(rec.serial, rec);
    for (const rec of this.#readDir(this.#retiredDir))
      if (!bySerial.has(rec.serial)) bySerial.set(rec.serial, rec);
    return byAge([...bySerial.values()]);
  }

  /**
   * The keys that may still be used (pending or active; some may have expired since they were read),
   * oldest first, without reading a tombstone. A tombstone found among them (a retirement cut short by
   * a crash, or a home from before retired/ existed) is moved to retired/.
   */
  listLiveKeys(): StoredKey[] {
    this.pruneRetired();
    const out: StoredKey[] = [];
    for (const rec of this.#readDir(this.dir)) {
      if (existsSync(this.#retiredPath(rec.serial))) this.#unlink(this.#livePath(rec.serial));
      else if (rec.state === 'pending' || rec.state === 'active') out.push(rec);
      else this.#moveToRetired(rec);
    }
    return byAge(out);
  }

  /** Remove the key material, keeping a tombstone with the new state (in retired/). */
  retire(
    serial: string,
    state: Exclude<LocalKeyState, 'pending' | 'active'>,
    info: { reason?: string; revokedAt?: number } = {},
  ): StoredKey | undefined {
    const rec = this.getKey(serial);
    if (rec === undefined) return undefined;
    const { key: _material, ...rest } = rec;
    const next: StoredKey = { ...rest, state, updatedAt: this.#now() };
    if (info.reason !== undefined) next.reason = info.reason;
    if (info.revokedAt !== undefined) next.revokedAt = info.revokedAt;
    // The tombstone first, in retired/ (one atomic write), then the live record goes. From the first
    // step on the key reads as retired (getKey prefers the tombstone, putKey writes nothing), so a crash
    // in between, or another process's write, cannot bring it back; listLiveKeys deletes a live record
    // left beside a tombstone.
    const tomb = this.#retiredPath(serial);
    ensurePrivateDir(this.#retiredDir); // removed by hand while a process ran: made again
    this.#write(tomb, 'key', serial, next);
    setMtime(tomb, tombstoneKeepUntil(next));
    this.#unlink(this.#livePath(serial));
    // The message counters go with the material: a retired key can neither send nor accept messages,
    // so its replay memory is no longer needed (a key's lifetime bounds that memory).
    this.#unlink(join(this.dir, `${serial}.sent`));
    this.#unlink(join(this.dir, `${serial}.recv`));
    this.pruneRetired();
    return next;
  }

  /**
   * Prune retired/ (see the header), at most once per PRUNE_INTERVAL_MS across the client's processes
   * unless `force`. Returns how many tombstones were removed.
   */
  pruneRetired(force = false): number {
    const now = this.#now();
    if (!force && now - this.#prunedAt < PRUNE_INTERVAL_MS) return 0;
    const stamp = join(this.#retiredDir, '.swept');
    if (!force) {
      const last = mtimeOf(stamp);
      if (last !== undefined && now - last < PRUNE_INTERVAL_MS && last <= now) {
        this.#prunedAt = last;
        return 0;
      }
    }
    this.#prunedAt = now;
    const files: { serial: string; keepUntil: number }[] = [];
    for (const entry of safeReaddir(this.#retiredDir)) {
      const m = KEY_FILE.exec(entry);
      const keepUntil = m ? mtimeOf(join(this.#retiredDir, entry)) : undefined;
      if (m && keepUntil !== undefined) files.push({ serial: m[1]!, keepUntil });
    }
    // Past the grace period; then, over the bound, expired ones oldest first until within it.
    const due = new Set(files.filter((f) => f.keepUntil + TOMBSTONE_GRACE_MS <= now).map((f) => f.serial));
    let excess = files.length - due.size - this.#maxTombstones;
    if (excess > 0) {
      for (const f of files.filter((x) => !due.has(x.serial)).sort((a, b) => a.keepUntil - b.keepUntil)) {
        if (excess <= 0 || f.keepUntil > now) break;
        due.add(f.serial);
        excess--;
      }
    }
    // Past the hard bound even so (keys revoked long before their expiry, at a sender's creation rate):
    // the oldest go whatever their expiry. The duplicate rule then holds for the newest ones only; an
    // honest KDC never delivers a key again once it is revoked (key.sync skips it), so only a dishonest
    // one replaying an old delivery could use the gap, and such a KDC can withhold a revocation anyway.
    const forced = new Set<string>();
    let hardExcess = files.length - due.size - this.#hardMaxTombstones;
    if (hardExcess > 0) {
      for (const f of files.filter((x) => !due.has(x.serial)).sort((a, b) => a.keepUntil - b.keepUntil)) {
        if (hardExcess <= 0) break;
        due.add(f.serial);
        forced.add(f.serial);
        hardExcess--;
      }
    }
    const overBound = files.length > this.#maxTombstones;
    let removed = 0;
    for (const serial of due) {
      const path = this.#retiredPath(serial);
      if (forced.has(serial)) {
        this.#unlink(path);
        removed++;
        continue;
      }
      try {
        const rec = this.#read<StoredKey>(path, 'key', serial);
        // The mtime only nominates: the record decides (a copy of the store has fresh mtimes, a file of
        // another identity cannot be judged and waits a grace period more).
        const keepUntil = rec === undefined ? now : tombstoneKeepUntil(rec);
        if (rec !== undefined && keepUntil + (overBound ? 0 : TOMBSTONE_GRACE_MS) <= now) {
          this.#unlink(path);
          removed++;
        } else {
          setMtime(path, keepUntil);
        }
      } catch {
        // Housekeeping: a file that cannot be read or touched (removed by another process of this
        // client, damaged) stays as it is; the live keys do not depend on it.
      }
    }
    try {
      writeFileSync(stamp, '', { mode: 0o600 });
      setMtime(stamp, now);
    } catch {
      // Housekeeping: without the stamp the next process prunes again, which is only repeated work.
    }
    return removed;
  }

  #livePath(serial: string): string {
    return join(this.dir, `${serial}.key`);
  }

  #retiredPath(serial: string): string {
    return join(this.#retiredDir, `${serial}.key`);
  }

  /** A tombstone written among the live keys goes to retired/, its mtime set to its key's expiry. */
  #moveToRetired(rec: StoredKey): void {
    const from = this.#livePath(rec.serial);
    try {
      setMtime(from, tombstoneKeepUntil(rec));
      ensurePrivateDir(this.#retiredDir); // removed by hand while a process ran: made again
      renameSync(from, this.#retiredPath(rec.serial));
    } catch (err) {
      // Another process of this client moved it first.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || existsSync(from)) throw err;
    }
  }

  #readDir(dir: string): StoredKey[] {
    const out: StoredKey[] = [];
    for (const entry of safeReaddir(dir)) {
      const m = KEY_FILE.exec(entry);
      if (!m) continue;
      const rec = this.#read<StoredKey>(join(dir, entry), 'key', m[1]!);
      if (rec !== undefined) out.push(rec);
    }
    return out;
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
      // Moved to retired/ or pruned by another process of this client since existsSync: not here.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
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
 * without rewriting a file.
 *
 * Another process may renew this client between our caller's read of key.pem and this call (a command
 * reads its credentials, then waits for its session). The wrap is then for the new key and does not
 * open with ours. The store key is the same for both keys, so it is taken through the home's current
 * key. Falling back to our own derived key instead would open an empty store under the wrong key:
 * the keys received into it would be acknowledged to the KDC and then never open again. A committed
 * renewal is finished first, so key.pem and keys/store-key are read as one pair.
 *
 * A wrap that opens with neither key (a re-enrollment replaced the key and left the old wrap) is
 * ignored: the store then reads as this identity's, as before renewal existed.
 */
export function storeKeyOf(home: string, name: string, identityKey: KeyObject): Buffer {
  recoverRenewal(home);
  const own = openStoreKey(home, name, identityKey);
  if (own !== undefined) return own;
  if (hasCredentials(home)) {
    const current = readClientHome(home).privateKey;
    if (!sameKey(current, identityKey)) {
      const through = openStoreKey(home, name, current);
      if (through !== undefined) return through;
    }
  }
  return derivedStoreKey(identityKey, name);
}

/** undefined: keys/store-key holds a wrap this identity key does not open. */
function openStoreKey(home: string, name: string, identityKey: KeyObject): Buffer | undefined {
  const path = join(home, 'keys', STORE_KEY_FILE);
  if (!existsSync(path)) return derivedStoreKey(identityKey, name);
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    throw new EnvironmentError('io_error', `cannot read ${path}`, { path }, { cause: err });
  }
  if (!raw.subarray(0, MAGIC.length).equals(MAGIC)) return derivedStoreKey(identityKey, name);
  try {
    return openBlob(wrappingKey(identityKey, name), raw.subarray(MAGIC.length), aad('store-key', name));
  } catch (err) {
    if (err instanceof AuthError) return undefined;
    throw err;
  }
}

function derivedStoreKey(identityKey: KeyObject, name: string): Buffer {
  const ikm = identityKey.export({ type: 'pkcs8', format: 'der' });
  return hkdfSha256(ikm, Buffer.from(LABEL, 'latin1'), Buffer.from(name, 'utf8'), 32);
}

function sameKey(a: KeyObject, b: KeyObject): boolean {
  const spki = (k: KeyObject) => createPublicKey(k).export({ type: 'spki', format: 'der' });
  return spki(a).equals(spki(b));
}

/** The content of keys/store-key that gives `storeKey` to `identityKey` (a renewal's new key). */
export function wrapStoreKey(storeKey: Buffer, identityKey: KeyObject, name: string): Buffer {
  return Buffer.concat([MAGIC, sealBlob(wrappingKey(identityKey, name), storeKey, aad('store-key', name))]);
}

function wrappingKey(identityKey: KeyObject, name: string): Buffer {
  const ikm = identityKey.export({ type: 'pkcs8', format: 'der' });
  return hkdfSha256(ikm, Buffer.from(LABEL, 'latin1'), encodeFields(WRAP_INFO, [text(name)]), 32);
}

/** When a tombstone stops being what makes its serial a duplicate: its key's expiry (or retirement). */
function tombstoneKeepUntil(rec: StoredKey): number {
  return Math.max(rec.expiresAt, rec.updatedAt);
}

function byAge(keys: StoredKey[]): StoredKey[] {
  return keys.sort((a, b) => a.createdAt - b.createdAt || a.serial.localeCompare(b.serial));
}

function mtimeOf(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

function setMtime(path: string, ms: number): void {
  const s = Math.max(0, ms) / 1000;
  utimesSync(path, s, s);
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
