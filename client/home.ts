// A client's state directory ("home"): `key.pem` (PKCS#8; encrypted with aes-256-cbc when
// KDS_CLIENT_PASSPHRASE is set), `cert.pem` (the client's certificate) and `ca.pem` (the root CA it
// pinned at enrollment, its trust anchor for every later session). Default location
// `<data-dir>/clients/<name>/`. Directory 0700, files 0600: the private key never leaves this folder.
//
// A renewal (client/renew.ts) stages its files in `renewal/` and swaps them in by rename(2), so that a
// crash at any point leaves a working identity, old or new (recoverRenewal, run before every read):
//   1. renewal/key.pem and renewal/store-key (the key store's key wrapped for the new key), each
//      written atomically (temp file, fsync, rename, fsync of the directory), BEFORE the request;
//   2. renewal/cert.pem, written the same way once the KDC's certificate is checked: the commit point;
//   3. renames into place: key.pem, keys/store-key, then cert.pem last; then renewal/ is removed.
// Recovery: renewal/cert.pem present means the renewal committed: finish step 3 (every rename is done
// only if its source is still there, so it is idempotent). Absent: the renewal never committed, the old
// key.pem and cert.pem are untouched, and the staged files are deleted. A KDC-side certificate that was
// issued but never installed is harmless: the KDC keeps the old one active until the new one is used.
//
// An enrollment (client/enroll.ts) keeps its new key and its CSR in `enrollment/` from before the
// request is sent until the certificate is saved: `enrollment/key.pem` (encrypted like key.pem) and
// `enrollment/request.json` ({name, tokenHash, csr}: the SHA-256 of the token, never the token). If the
// answer is lost for good (every retry unanswered, the process killed), running `kds client enroll`
// again with the same token sends the same CSR, which the KDC answers with the certificate it issued
// for it (docs/protocol.md "Lost answers"); another token starts over with a new key.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import {
  describeHolder,
  holderGone,
  holderLine,
  parseHolder,
  systemProbe,
  type LockHolder,
} from '../io/lock-holder.js';
import { crashPoint } from '../io/crash-point.js';
import { dirname, join, resolve } from 'node:path';
import { InputError, PolicyError, AuthError, EnvironmentError, StateError } from '../shared/errors.js';
import { assertValidName } from '../shared/pki/names.js';
import { ensurePrivateDir, fsyncDir, writeFileAtomic } from '../io/fs-atomic.js';
import { entryKind, explainFsError } from '../io/fs-errors.js';

export const KEY_FILE = 'key.pem';
const CERT_FILE = 'cert.pem';
const CA_FILE = 'ca.pem';
const DEFAULT_DATA_DIR = 'certs';
/** Where a renewal stages its files (see the header). */
const RENEWAL_DIR = 'renewal';
/** Where an enrollment keeps its key and CSR until its certificate is saved (see the header). */
export const ENROLLMENT_DIR = 'enrollment';
const ENROLLMENT_REQUEST = 'request.json';
/** The key store's key wrapped for the current identity key (client/keys/key-store.ts). */
const STORE_KEY_PATH = join('keys', 'store-key');

/** The environment variable that, when set, encrypts the client's key at rest. */
const CLIENT_PASSPHRASE_ENV = 'KDS_CLIENT_PASSPHRASE';

export interface HomeLocation {
  name: string;
  home?: string | undefined;
  dataDir?: string | undefined;
}

/** `--home` if given, else `<data-dir>/clients/<name>`. The name is validated first (it becomes a path). */
export function resolveHome(loc: HomeLocation): string {
  assertValidName(loc.name);
  if (loc.home !== undefined && loc.home !== '') return resolve(loc.home);
  return resolve(loc.dataDir ?? DEFAULT_DATA_DIR, 'clients', loc.name);
}

/**
 * The client key's passphrase: undefined when KDS_CLIENT_PASSPHRASE is unset (the key is stored
 * unencrypted). Set but empty is refused (`config`, exit 2) by every client command rather than read as
 * "no passphrase": it is what `KDS_CLIENT_PASSPHRASE=$PASS` gives when PASS is unset, and whoever wrote
 * it meant the key to be encrypted; storing it in the clear without a word would defeat that.
 */
export function clientPassphrase(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[CLIENT_PASSPHRASE_ENV];
  if (value === '') {
    throw new EnvironmentError(
      'config',
      `${CLIENT_PASSPHRASE_ENV} is set but empty: set it to the client key's passphrase, or unset it to keep the key unencrypted (a 0600 file)`,
    );
  }
  return value;
}

export interface ClientFiles {
  privateKey: KeyObject;
  certPem: string;
  caPem: string;
}

export function hasCredentials(home: string): boolean {
  // entryKind, not existsSync: a home this user may not read is not "not enrolled" (that advice would
  // be to enroll again); it is permission denied, said as such.
  return entryKind(join(home, KEY_FILE)) !== 'missing' && entryKind(join(home, CERT_FILE)) !== 'missing';
}

/**
 * Write the three files. The key is written first, so a crash never leaves a certificate without its
 * key; each file is replaced atomically (temp file, fsync, rename).
 */
export function writeClientHome(home: string, files: ClientFiles, passphrase = clientPassphrase()): void {
  ensurePrivateDir(home);
  // A new identity: a renewal staged for the previous one must never be completed over it.
  rmSync(join(home, RENEWAL_DIR), { recursive: true, force: true });
  const keyPem =
    passphrase === undefined
      ? files.privateKey.export({ type: 'pkcs8', format: 'pem' })
      : files.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase });
  writeFileAtomic(join(home, KEY_FILE), String(keyPem), 0o600);
  writeFileAtomic(join(home, CERT_FILE), files.certPem, 0o600);
  writeFileAtomic(join(home, CA_FILE), files.caPem, 0o600);
}

/** Only the public parts (certificate and pinned CA): no passphrase needed. */
export function readClientCertificates(home: string): { certPem: string; caPem: string } {
  recoverRenewal(home);
  return { certPem: readHomeFile(home, CERT_FILE), caPem: readHomeFile(home, CA_FILE) };
}

/** The private key PEM as stored (encrypted when KDS_CLIENT_PASSPHRASE is set). */
function exportKeyPem(privateKey: KeyObject, passphrase: string | undefined): string {
  return String(
    passphrase === undefined
      ? privateKey.export({ type: 'pkcs8', format: 'pem' })
      : privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }),
  );
}

/** Renewal step 1: the new key (and the key store's key wrapped for it), staged. */
export function stageRenewalKey(
  home: string,
  privateKey: KeyObject,
  wrappedStoreKey: Buffer,
  passphrase = clientPassphrase(),
): void {
  const dir = join(home, RENEWAL_DIR);
  // A leftover of an earlier renewal that never committed is discarded first.
  rmSync(dir, { recursive: true, force: true });
  ensurePrivateDir(dir);
  writeFileAtomic(join(dir, 'store-key'), wrappedStoreKey, 0o600);
  writeFileAtomic(join(dir, KEY_FILE), exportKeyPem(privateKey, passphrase), 0o600);
}

/** Renewal step 2, the commit point: the new certificate, staged. */
export function stageRenewalCertificate(home: string, certPem: string): void {
  writeFileAtomic(join(home, RENEWAL_DIR, CERT_FILE), certPem, 0o600);
}

/**
 * Finish or discard a renewal a crash interrupted (see the header); also renewal step 3. Returns what
 * it did. Cheap when there is nothing to do (one failed stat).
 */
export function recoverRenewal(home: string): 'none' | 'installed' | 'discarded' {
  const dir = join(home, RENEWAL_DIR);
  if (entryKind(dir) === 'missing') return 'none';
  try {
    if (entryKind(join(dir, CERT_FILE)) === 'missing') {
      // Not committed. Discarded only when no live renewal holds the lock (it may be waiting for the
      // KDC's reply right now).
      if (renewalLockHolder(home) !== undefined) return 'none';
      rmSync(dir, { recursive: true, force: true });
      fsyncDir(home);
      return 'discarded';
    }
    moveIfPresent(join(dir, KEY_FILE), join(home, KEY_FILE));
    crashPoint('renew-key-installed');
    ensurePrivateDir(join(home, 'keys'));
    moveIfPresent(join(dir, 'store-key'), join(home, STORE_KEY_PATH));
    moveIfPresent(join(dir, CERT_FILE), join(home, CERT_FILE));
    rmSync(dir, { recursive: true, force: true });
    fsyncDir(home);
    return 'installed';
  } catch (err) {
    throw explainFsError(err, 'finish the renewal in', home);
  }
}

function moveIfPresent(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    // Already moved (by an earlier, interrupted recovery or another process of this client).
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  fsyncDir(dirname(to));
}

const RENEWAL_LOCK = 'renewal.lock';

/** The live process renewing this home, if any (io/lock-holder.ts says how a lock is judged). */
function renewalLockHolder(home: string): LockHolder | undefined {
  let text: string;
  try {
    text = readFileSync(join(home, RENEWAL_LOCK), 'latin1');
  } catch {
    return undefined;
  }
  const holder = parseHolder(text);
  return holder !== undefined && !holderGone(holder, systemProbe()) ? holder : undefined;
}

/**
 * Take the renewal lock of a home (one renewal at a time per client): `<home>/renewal.lock` created
 * with O_EXCL, naming this process (pid, start time, host); a lock whose process is gone, or whose pid
 * now names another process, is broken. Returns the release function; `rate_limited` when another live
 * process holds it. Unlike the counters' lock there is no age limit: a renewal waits on the network and
 * on RSA key generation, so a long-held renewal lock may well be a live one.
 */
export function lockRenewal(home: string): () => void {
  const path = join(home, RENEWAL_LOCK);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, holderLine(systemProbe()), { flag: 'wx', mode: 0o600 });
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw explainFsError(err, 'create', path);
      const holder = renewalLockHolder(home);
      if (holder !== undefined) {
        throw new PolicyError(
          'rate_limited',
          `another process (${describeHolder(holder, systemProbe())}) is renewing this client: ${path} names it; ` +
            `try again when it is done (if you are sure no kds process is running for this client, delete ${path})`,
          { path, pid: holder.pid },
        );
      }
      rmSync(path, { force: true }); // a crashed renewal's lock
    }
  }
  throw new PolicyError('rate_limited', `cannot take the renewal lock ${path}`, { path });
}

/** An enrollment in progress, as staged in the home (see the header). */
export interface StagedEnrollment {
  name: string;
  /** SHA-256 (hex) of the token it was made for. */
  tokenHash: string;
  csr: string;
  privateKey: KeyObject;
}

/** Stage an enrollment's key and CSR before its request is sent (replacing any earlier one). */
export function stageEnrollment(
  home: string,
  staged: StagedEnrollment,
  passphrase = clientPassphrase(),
): void {
  const dir = join(home, ENROLLMENT_DIR);
  rmSync(dir, { recursive: true, force: true });
  ensurePrivateDir(dir);
  writeFileAtomic(join(dir, KEY_FILE), exportKeyPem(staged.privateKey, passphrase), 0o600);
  const request = { name: staged.name, tokenHash: staged.tokenHash, csr: staged.csr };
  writeFileAtomic(join(dir, ENROLLMENT_REQUEST), JSON.stringify(request), 0o600);
}

/**
 * The enrollment staged in `home`, if there is a complete one; undefined otherwise (nothing staged, or
 * a crash between the two files: nothing was sent then, the request is written second).
 */
export function readStagedEnrollment(
  home: string,
  passphrase = clientPassphrase(),
): StagedEnrollment | undefined {
  const dir = join(home, ENROLLMENT_DIR);
  if (entryKind(join(dir, ENROLLMENT_REQUEST)) === 'missing') return undefined;
  let request: { name?: unknown; tokenHash?: unknown; csr?: unknown };
  let keyPem: string;
  try {
    request = JSON.parse(readFileSync(join(dir, ENROLLMENT_REQUEST), 'utf8')) as typeof request;
    keyPem = readFileSync(join(dir, KEY_FILE), 'utf8');
  } catch {
    return undefined; // unreadable or torn: start over (a new key, a new CSR)
  }
  const { name, tokenHash, csr } = request;
  if (typeof name !== 'string' || typeof tokenHash !== 'string' || typeof csr !== 'string') return undefined;
  return { name, tokenHash, csr, privateKey: loadPrivateKey(keyPem, passphrase) };
}

/** Drop a staged enrollment (its certificate is saved, or the KDC refused it for good). */
export function discardStagedEnrollment(home: string): void {
  rmSync(join(home, ENROLLMENT_DIR), { recursive: true, force: true });
}

export function readClientHome(home: string, passphrase = clientPassphrase()): ClientFiles {
  recoverRenewal(home);
  const keyPem = readHomeFile(home, KEY_FILE);
  const { certPem, caPem } = readClientCertificates(home);
  return { privateKey: loadPrivateKey(keyPem, passphrase), certPem, caPem };
}

function readHomeFile(home: string, file: string): string {
  const path = join(home, file);
  if (entryKind(path) === 'missing') {
    throw new StateError(
      'not_found',
      `no client credentials at ${home} (missing ${file}); run kds client enroll`,
    );
  }
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw explainFsError(err, 'read', path);
  }
}

function loadPrivateKey(pem: string, passphrase: string | undefined): KeyObject {
  const encrypted = pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----');
  if (encrypted && passphrase === undefined) {
    throw new AuthError('bad_passphrase', `the client key is encrypted: set ${CLIENT_PASSPHRASE_ENV}`);
  }
  try {
    return encrypted ? createPrivateKey({ key: pem, format: 'pem', passphrase }) : createPrivateKey(pem);
  } catch (err) {
    // A fixed message: whether the passphrase or the file is wrong is not the reader's business.
    if (encrypted)
      throw new AuthError('bad_passphrase', 'cannot decrypt the client key', undefined, {
        cause: err,
      });
    throw new InputError('malformed_pem', 'the client key file is not a PKCS#8 private key', undefined, {
      cause: err,
    });
  }
}
