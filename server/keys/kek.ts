// The key-encryption keys (KEKs) of the KDC-generated flow (docs/keys.md "Requirements", flow 2): "The KDC generates the
// key, stores it wrapped under a key-encryption key (never plaintext at rest; the KEK lives under the
// data dir, encrypted like the CA key, with a version so it can be rotated)".
//
// Files: <dataDir>/kek/kek-v<N>.bin (dir 0700, files 0600), each holding one 32-byte KEK encrypted
// with the CA passphrase:
//
//   magic "KDSKEK1\0" (8) | version u32 BE | log2(N) u8 | r u8 | p u8 | salt (16)      = header (35 bytes)
//   nonce (12) | AES-256-GCM(scrypt(passphrase, salt, N, r, p), KEK, AAD = header) (32) | tag (16)
//
// The header is the AEAD's associated data, so a file renamed to another version, or with weakened
// scrypt parameters, fails to open (`bad_passphrase`, the same fixed message as a wrong passphrase).
// The highest version is current: new keys are wrapped under it; older versions stay loaded so keys
// wrapped before a rotation still open (rotation re-wraps nothing; `rewrap` is left to an admin tool).
//
// A distributed key is wrapped as nonce (12) || AES-256-GCM(KEK_v, key, AAD) || tag (16) with
// AAD = "kds v1 kek wrap" || 0x00 || len-prefixed(serial) || version u32, so a wrapped key copied
// onto another record (another serial) or relabelled with another KEK version does not open.
import { scrypt } from 'node:crypto';
import { randomBytes } from '../../shared/crypto/random.js';
import {
  linkSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
  existsSync,
  chmodSync,
} from 'node:fs';
import { join } from 'node:path';
import { InputError, AuthError, EnvironmentError, InternalError } from '../../shared/errors.js';
import { openBlob, sealBlob } from '../../shared/keys/aes-gcm.js';
import { encodeFields, text } from '../../shared/keys/transcript.js';
import { assertKeySerial } from '../../shared/keys/serial.js';
import { ensurePrivateDir, fsyncDir, PRIVATE_FILE_MODE } from '../../io/fs-atomic.js';

const KEK_DIR = 'kek';
const MAGIC = Buffer.from('KDSKEK1\0', 'latin1');
const HEADER_BYTES = MAGIC.length + 4 + 3 + 16;
const FILE_BYTES = HEADER_BYTES + 12 + 32 + 16;
const FILE_PATTERN = /^kek-v([1-9][0-9]{0,8})\.bin$/;
const WRAP_LABEL = 'kds v1 kek wrap';

/** scrypt cost: N = 2^15, r = 8, p = 1 (RFC 7914 section 2 recommends r = 8, p = 1). ~32 MiB, ~0.1 s. */
export interface ScryptCost {
  log2N: number;
  r: number;
  p: number;
}
const DEFAULT_SCRYPT_COST: ScryptCost = { log2N: 15, r: 8, p: 1 };

export interface WrappedKey {
  wrapped: Buffer;
  version: number;
}

export class KeyEncryptionKeys {
  readonly #keys: Map<number, Buffer>;
  readonly #dir: string;
  readonly #passphrase: string;
  readonly #cost: ScryptCost;

  private constructor(dir: string, passphrase: string, cost: ScryptCost, keys: Map<number, Buffer>) {
    this.#dir = dir;
    this.#passphrase = passphrase;
    this.#cost = cost;
    this.#keys = keys;
  }

  /**
   * Load every KEK under <dataDir>/kek, creating version 1 if there is none. Several processes may
   * open the same data dir at once: creation is create-if-absent (link(2) of a complete temp file),
   * so exactly one version-1 file ever exists and every process uses it.
   */
  static async open(
    dataDir: string,
    passphrase: string,
    opts: { cost?: ScryptCost } = {},
  ): Promise<KeyEncryptionKeys> {
    if (typeof passphrase !== 'string' || passphrase === '') {
      throw new EnvironmentError('config', 'the KEK needs the CA passphrase');
    }
    const cost = opts.cost ?? DEFAULT_SCRYPT_COST;
    const dir = join(dataDir, KEK_DIR);
    ensurePrivateDir(dir);
    const keys = new Map<number, Buffer>();
    for (const version of listVersions(dir)) {
      keys.set(version, await openKekFile(join(dir, fileName(version)), version, passphrase));
    }
    const ring = new KeyEncryptionKeys(dir, passphrase, cost, keys);
    if (keys.size === 0) await ring.#create(1);
    return ring;
  }

  get currentVersion(): number {
    return Math.max(...this.#keys.keys());
  }

  get versions(): number[] {
    return [...this.#keys.keys()].sort((a, b) => a - b);
  }

  /** Make version current+1 the current KEK and return it. */
  async rotate(): Promise<number> {
    // Pick up versions another process may have created since we opened.
    await this.reload();
    const next = this.currentVersion + 1;
    await this.#create(next);
    return this.currentVersion;
  }

  /** Load versions written by other processes (e.g. `kds admin` rotating while the server runs). */
  async reload(): Promise<void> {
    for (const version of listVersions(this.#dir)) {
      if (!this.#keys.has(version)) {
        this.#keys.set(
          version,
          await openKekFile(join(this.#dir, fileName(version)), version, this.#passphrase),
        );
      }
    }
  }

  wrap(serial: string, key: Uint8Array): WrappedKey {
    const version = this.currentVersion;
    const kek = this.#keys.get(version)!;
    return { wrapped: sealBlob(kek, key, wrapAad(serial, version)), version };
  }

  /** Unwrap a stored key; tampering, a wrong serial or a wrong version give `bad_mac`. */
  unwrap(serial: string, wrapped: Uint8Array, version: number): Buffer {
    const kek = this.#keys.get(version);
    if (kek === undefined) throw new EnvironmentError('config', `KEK version ${version} is not available`);
    return openBlob(kek, wrapped, wrapAad(serial, version), 'bad_mac');
  }

  async #create(version: number): Promise<void> {
    const path = join(this.#dir, fileName(version));
    const kek = randomBytes(32);
    const salt = randomBytes(16);
    const header = encodeHeader(version, this.#cost, salt);
    const wrappingKey = await deriveFileKey(this.#passphrase, salt, this.#cost);
    const sealed = sealBlob(wrappingKey, kek, header);
    const tmp = join(this.#dir, `.${fileName(version)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    writeFileSync(tmp, Buffer.concat([header, sealed]), { mode: PRIVATE_FILE_MODE, flag: 'wx', flush: true });
    chmodSync(tmp, PRIVATE_FILE_MODE);
    let won = false;
    try {
      linkSync(tmp, path); // fails with EEXIST if another process created this version first
      fsyncDir(this.#dir);
      won = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new EnvironmentError('io_error', `cannot write ${path}`, { path }, { cause: err });
      }
    } finally {
      unlinkSync(tmp);
    }
    // Whoever won the race, the file on disk is the KEK of this version: ours when the link succeeded
    // (no need to derive the wrapping key a second time to read it back: a scrypt, ~0.15 s of CPU at
    // every KDC's first start), else the winner's, which only opening the file tells.
    this.#keys.set(version, won ? kek : await openKekFile(path, version, this.#passphrase));
  }
}

/**
 * The KEK files of `dataDir` (version and path, oldest first), for `kds server passphrase`, which
 * re-encrypts each under a new passphrase without changing the KEK inside.
 */
export function kekFiles(dataDir: string): { version: number; path: string }[] {
  const dir = join(dataDir, KEK_DIR);
  return listVersions(dir).map((version) => ({ version, path: join(dir, fileName(version)) }));
}

/**
 * The bytes of KEK file `path` (version `version`) encrypted under `next` instead of `current`: the same
 * KEK, a fresh salt and nonce, the file's own scrypt cost. `bad_passphrase` when `current` does not open it.
 */
export async function reencryptKekFile(
  path: string,
  version: number,
  current: string,
  next: string,
): Promise<Buffer> {
  const kek = await openKekFile(path, version, current);
  const raw = readFileSync(path);
  const cost: ScryptCost = {
    log2N: raw.readUInt8(MAGIC.length + 4),
    r: raw.readUInt8(MAGIC.length + 5),
    p: raw.readUInt8(MAGIC.length + 6),
  };
  const header = encodeHeader(version, cost, randomBytes(16));
  const wrappingKey = await deriveFileKey(next, header.subarray(MAGIC.length + 7), cost);
  return Buffer.concat([header, sealBlob(wrappingKey, kek, header)]);
}

/** Does `passphrase` open KEK file `path` (version `version`)? Throws `bad_passphrase` if not. */
export async function checkKekFile(path: string, version: number, passphrase: string): Promise<void> {
  await openKekFile(path, version, passphrase);
}

function fileName(version: number): string {
  return `kek-v${version}.bin`;
}

function listVersions(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const versions: number[] = [];
  for (const entry of readdirSync(dir)) {
    const m = FILE_PATTERN.exec(entry);
    if (m) versions.push(Number(m[1]));
  }
  return versions.sort((a, b) => a - b);
}

function encodeHeader(version: number, cost: ScryptCost, salt: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32BE(version, MAGIC.length);
  header.writeUInt8(cost.log2N, MAGIC.length + 4);
  header.writeUInt8(cost.r, MAGIC.length + 5);
  header.writeUInt8(cost.p, MAGIC.length + 6);
  salt.copy(header, MAGIC.length + 7);
  return header;
}

async function openKekFile(path: string, version: number, passphrase: string): Promise<Buffer> {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    throw new EnvironmentError('io_error', `cannot read ${path}`, { path }, { cause: err });
  }
  if (raw.length !== FILE_BYTES || !raw.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new InputError('malformed', `${path} is not a kds KEK file`);
  }
  const header = raw.subarray(0, HEADER_BYTES);
  if (header.readUInt32BE(MAGIC.length) !== version) {
    throw new InputError('malformed', `${path} does not hold KEK version ${version}`);
  }
  const cost: ScryptCost = {
    log2N: header.readUInt8(MAGIC.length + 4),
    r: header.readUInt8(MAGIC.length + 5),
    p: header.readUInt8(MAGIC.length + 6),
  };
  // Refuse parameters below our floor: an attacker who can write the file must not make it cheap to
  // brute-force (the header is authenticated, but only with the key we would derive from it).
  if (cost.log2N < 14 || cost.log2N > 20 || cost.r < 8 || cost.r > 32 || cost.p < 1 || cost.p > 4) {
    throw new InputError('malformed', `${path} has unsupported scrypt parameters`);
  }
  const salt = header.subarray(MAGIC.length + 7);
  const wrappingKey = await deriveFileKey(passphrase, salt, cost);
  try {
    return openBlob(wrappingKey, raw.subarray(HEADER_BYTES), header, 'bad_passphrase');
  } catch {
    throw new AuthError('bad_passphrase', 'cannot decrypt the key-encryption key');
  }
}

function deriveFileKey(passphrase: string, salt: Buffer, cost: ScryptCost): Promise<Buffer> {
  const N = 2 ** cost.log2N;
  return new Promise((resolve, reject) => {
    scrypt(
      passphrase,
      salt,
      32,
      { N, r: cost.r, p: cost.p, maxmem: 256 * N * cost.r + 1024 * 1024 },
      (err, key) =>
        err
          ? reject(new InternalError('internal', 'scrypt failed', undefined, { cause: err }))
          : resolve(key),
    );
  });
}

function wrapAad(serial: string, version: number): Buffer {
  assertKeySerial(serial);
  const v = Buffer.alloc(4);
  v.writeUInt32BE(version);
  return encodeFields(WRAP_LABEL, [text(serial), v]);
}
