// An exclusive lock file around a read-modify-write of one small client file that two processes of the
// same client may update at once: the sender's message counter (`kds client send` twice in a row from
// two shells) and the receiver's replay window (`listen` while a second `listen` runs). Without it, two
// senders could both read N and send N + 1 (the second message is then refused as `replayed`: lost),
// and two listeners could each write back a window missing the other's acceptance (a later replay of
// that message would then be accepted: docs/keys.md "Messages").
//
// The lock is `<file>.lock`, created with O_CREAT|O_EXCL ('wx'), which open(2) makes atomic: exactly one
// process creates it; it holds the holder's pid. It is held for one read and one atomic write (a few
// milliseconds: the write is fsynced with its directory), so waiters poll with a short sleep (1-20 ms;
// the event loop waits too, which only `listen` has to care about, for as long as that). A lock whose holder died (SIGKILL inside
// the critical section) is broken when its pid no longer exists, or, when it holds no readable pid
// (the holder died between creating and writing it), once it is older than STALE_EMPTY_MS; a lock that
// names this very process is stale too (the critical section is synchronous, so this process cannot be
// inside it while it waits: that pid was an earlier process's). Breaking re-reads the pid just before
// the unlink, so only a lock that still names the dead process is removed; the window left between
// those two syscalls could at worst let two processes in at once, i.e. the behaviour without a lock.
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { EnvironmentError } from '../../shared/errors.js';

/** How long a waiter tries before failing with `timeout`. */
const LOCK_TIMEOUT_MS = 5_000;
/** A lock file without a readable pid older than this is a crashed holder's. */
export const STALE_EMPTY_MS = 10_000;

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

export interface LockOptions {
  timeoutMs?: number;
  /** Whether a process exists (tests replace it). */
  isAlive?: (pid: number) => boolean;
}

/** Run `fn` (synchronous) holding `lockPath`; EnvironmentError `timeout` when it stays held. */
export function withFileLock<T>(lockPath: string, fn: () => T, opts: LockOptions = {}): T {
  acquire(lockPath, opts);
  try {
    return fn();
  } finally {
    unlinkQuiet(lockPath);
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function acquire(lockPath: string, opts: LockOptions): void {
  const isAlive = opts.isAlive ?? processAlive;
  const deadline = Date.now() + (opts.timeoutMs ?? LOCK_TIMEOUT_MS);
  let wait = 1;
  for (;;) {
    let fd: number;
    try {
      fd = openSync(lockPath, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new EnvironmentError(
          'io_error',
          `cannot create ${lockPath}`,
          { path: lockPath },
          { cause: err },
        );
      }
      const holder = readHolder(lockPath);
      if (holder === 'gone') continue; // released meanwhile
      if (isStale(lockPath, holder, isAlive)) {
        if (readHolder(lockPath) === holder) unlinkQuiet(lockPath);
        continue;
      }
      if (Date.now() >= deadline) {
        throw new EnvironmentError(
          'timeout',
          `${lockPath} is held${holder === undefined ? '' : ` by process ${holder}`}; try again`,
          { path: lockPath, ...(holder === undefined ? {} : { pid: holder }) },
        );
      }
      sleepMs(wait);
      wait = Math.min(wait * 2, 20);
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } catch (err) {
      // Not ours after all (a full disk, say): leave no empty lock behind for others to wait out.
      closeSync(fd);
      unlinkQuiet(lockPath);
      throw new EnvironmentError('io_error', `cannot write ${lockPath}`, { path: lockPath }, { cause: err });
    }
    closeSync(fd);
    return;
  }
}

/** The holder's pid, undefined when the file holds none (yet), 'gone' when there is no file. */
function readHolder(lockPath: string): number | undefined | 'gone' {
  let text: string;
  try {
    text = readFileSync(lockPath, 'latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw new EnvironmentError('io_error', `cannot read ${lockPath}`, { path: lockPath }, { cause: err });
  }
  const m = /^([1-9][0-9]{0,9})\n$/.exec(text);
  return m ? Number(m[1]) : undefined;
}

function isStale(lockPath: string, holder: number | undefined, isAlive: (pid: number) => boolean): boolean {
  if (holder !== undefined) return holder === process.pid || !isAlive(holder);
  try {
    return Date.now() - statSync(lockPath).mtimeMs > STALE_EMPTY_MS;
  } catch {
    return false; // gone: the next attempt creates it
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
