// Crash-safe file writes and private directories for everything kds keeps on disk (CA files, CRLs,
// client homes). A reader sees either the old file or the new one, never a torn mix: write a temporary
// file in the same directory, fsync it, rename(2) it over the target (atomic within one file system),
// then fsync the directory so the rename itself survives a power cut.
import { explainFsError } from './fs-errors.js';
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { EnvironmentError } from '../shared/errors.js';

/** Files that hold secrets (keys, passphrases, the store). */
export const PRIVATE_FILE_MODE = 0o600;
/** Files that are public by design (the root certificate, the CRL). */
export const PUBLIC_FILE_MODE = 0o644;
/** Every directory kds creates. */
const PRIVATE_DIR_MODE = 0o700;

/**
 * Replace `path` with `data` atomically and durably, with exactly `mode` (the umask is not applied:
 * the mode is set with fchmod before any byte is written, so a secret is never readable by others
 * even for an instant).
 */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode: number = PRIVATE_FILE_MODE,
): void {
  const dir = dirname(path);
  // Same directory as the target: rename(2) is only atomic within one file system.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let fd: number | undefined;
  try {
    // 'wx': never follow or reuse an existing file at the temporary name.
    fd = openSync(tmp, 'wx', mode);
    fchmodSync(fd, mode);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
    fsyncDir(dir);
  } catch (err) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // the temporary file may not exist (open failed) or was already renamed
    }
    throw new EnvironmentError('io_error', `cannot write ${path}: ${errnoOf(err)}`, { path }, { cause: err });
  }
}

/** mkdir -p with 0700, and tighten an existing directory to 0700. */
export function ensurePrivateDir(path: string): void {
  try {
    mkdirSync(path, { recursive: true, mode: PRIVATE_DIR_MODE });
    // mkdir applies the umask and leaves existing directories alone: set the mode explicitly.
    if ((statSync(path).mode & 0o777) !== PRIVATE_DIR_MODE) chmodSync(path, PRIVATE_DIR_MODE);
  } catch (err) {
    throw explainFsError(err, 'create the directory', path);
  }
}

/** fsync a directory so that a rename or create inside it is durable. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (err) {
    // Some file systems (and platforms) refuse fsync on a directory; the rename already happened.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw err;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function errnoOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  return typeof code === 'string' ? code : 'unknown error';
}
