// Files a person names on the command line: the CSR, certificate, CRL and passphrase files kds reads,
// and the files it is told to write (--out, --report). A name is only a name: it may point at
// /dev/zero (readFileSync grows without bound), a FIFO (reading waits for a writer forever) or a
// directory. So a named file is opened without blocking, must be a regular file, and is read only up
// to a cap that fits what it should hold; anything else is the person's mistake (a usage error,
// exit 2) said in one line, before anything is sent, issued or written. An output path is checked the
// same way up front, so that work which cannot be undone (issuing a certificate, a long run) never
// ends in a write that was bound to fail.
import { accessSync, closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InputError } from '../shared/errors.js';
import { explainFsError } from './fs-errors.js';

/** A certificate or CSR (PEM or DER): a few KiB; 1 MiB leaves room for any chain a person pastes. */
export const MAX_PEM_FILE_BYTES = 1024 * 1024;
/** A CRL: 100,000 revoked certificates are about 6.6 MB of PEM; 64 MiB is ten times that. */
export const MAX_CRL_FILE_BYTES = 64 * 1024 * 1024;
/** A passphrase file: the passphrase is at most 1024 characters (io/ca-passphrase.ts). */
export const MAX_PASSPHRASE_FILE_BYTES = 64 * 1024;

/** "a directory", "a FIFO", ... for the message. */
function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function sizeText(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`;
}

/**
 * The bytes of the regular file at `path`, at most `maxBytes` of them. `what` names it in messages
 * ("the CSR file"). A directory, device, FIFO or socket, or a file over the cap: InputError
 * `bad_request`. A file that cannot be opened or read: the `io_error` of explainFsError.
 */
export function readUserFile(path: string, what: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw explainFsError(err, `read ${what}`, path);
  }
  try {
    let st: Stats;
    try {
      st = fstatSync(fd);
    } catch (err) {
      throw explainFsError(err, `read ${what}`, path);
    }
    if (!st.isFile())
      throw new InputError('bad_request', `${what} ${path} is ${kindOf(st)}, not a regular file`);
    const tooLarge = (): InputError =>
      new InputError(
        'bad_request',
        `${what} ${path} is larger than ${sizeText(maxBytes)}: is it the right file?`,
      );
    if (st.size > maxBytes) throw tooLarge();
    // One byte more than the cap: a file that grows while it is read is still caught.
    const buffer = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (length > maxBytes) throw tooLarge();
        break;
      }
      let n: number;
      try {
        n = readSync(fd, buffer, length, buffer.length - length, null);
      } catch (err) {
        throw explainFsError(err, `read ${what}`, path);
      }
      if (n === 0) break;
      length += n;
    }
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuse, as a usage error, an output path that a later write could not replace: its directory is
 * missing, is not a directory or is not writable, or the path itself is a directory or not a regular
 * file. `what` names the option ("--out"). Checking first does not make the write certain (the
 * directory can still go away or fill up), so callers keep handling a failed write.
 */
export function checkOutputPath(path: string, what: string): void {
  const refuse = (why: string): InputError => new InputError('bad_request', `${what} ${path}: ${why}`);
  let target: Stats | undefined;
  try {
    target = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw explainFsError(err, 'write', path);
  }
  if (target !== undefined && !target.isFile()) throw refuse(`it is ${kindOf(target)}; name a file to write`);
  const dir = dirname(resolve(path));
  let parent: Stats;
  try {
    parent = statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw refuse(`the directory ${dir} does not exist`);
    if (code === 'ENOTDIR') throw refuse(`${dir} is not a directory (a file is on the way)`);
    throw explainFsError(err, 'write', path);
  }
  if (!parent.isDirectory()) throw refuse(`${dir} is not a directory`);
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw refuse(`no permission to write in ${dir}`);
  }
}
