// An exclusive lock file around a read-modify-write of one small client file that two processes of the
// same client may update at once: the sender's message counter (`kds client send` twice in a row from
// two shells) and the receiver's replay window (`listen` while a second `listen` runs). Without it, two
// senders could both read N and send N + 1 (the second message is then refused as `replayed`: lost),
// and two listeners could each write back a window missing the other's acceptance (a later replay of
// that message would then be accepted: docs/keys.md "Messages").
//
// The lock is `<file>.lock`, created with O_CREAT|O_EXCL ('wx'), which open(2) makes atomic: exactly one
// process creates it; it names its holder (pid, start time and host: io/lock-holder.ts). It is held for
// one read and one atomic write (a few milliseconds: the write is fsynced with its directory), so
// waiters poll with a short sleep (1-20 ms; the event loop waits too, which only `listen` has to care
// about, for as long as that). A lock whose holder died (SIGKILL inside the critical section) is broken
// when the process it names is gone or is another process under a reused pid; when it names no holder
// (the holder died between creating and writing it), once it is older than STALE_EMPTY_MS; and
// whatever it names, once it is older than STALE_MS, because nobody can still be inside a critical
// section of a few milliseconds after that long (this also frees a lock whose holder cannot be judged:
// one written on another host sharing the home, or an old pid-only lock naming a live process). A lock
// that names this very process is stale too (the critical section is synchronous, so this process
// cannot be inside it while it waits: that pid was an earlier process's). Breaking re-reads the lock
// just before the unlink, so only a lock that still says the same is removed; the window left between
// those two syscalls could at worst let two processes in at once, i.e. the behaviour without a lock.
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { EnvironmentError } from '../../shared/errors.js';
import {
  describeHolder,
  holderGone,
  holderLine,
  parseHolder,
  systemProbe,
  type HolderProbe,
  type LockHolder,
} from '../../io/lock-holder.js';

/** How long a waiter tries before failing with `timeout`. */
const LOCK_TIMEOUT_MS = 5_000;
/** A lock file without a readable pid older than this is a crashed holder's. */
export const STALE_EMPTY_MS = 10_000;
/**
 * A lock older than this is stale whoever it names: the critical section takes milliseconds (an fsync
 * on a very slow disk, seconds), so sixty seconds leaves a wide margin before a live holder's lock could
 * be taken from it, and a lock nobody can judge does not wedge the client for longer than that.
 */
export const STALE_MS = 60_000;

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

export interface LockOptions {
  timeoutMs?: number;
  /** How the holder is looked at (tests replace parts of it; io/lock-holder.ts systemProbe). */
  isAlive?: HolderProbe['isAlive'];
  startTime?: HolderProbe['startTime'];
  host?: string;
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

function acquire(lockPath: string, opts: LockOptions): void {
  const system = systemProbe();
  const probe: HolderProbe = {
    isAlive: opts.isAlive ?? system.isAlive,
    startTime: opts.startTime ?? system.startTime,
    host: opts.host ?? system.host,
  };
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
      const text = readLock(lockPath);
      if (text === undefined) continue; // released meanwhile
      const holder = parseHolder(text);
      if (isStale(lockPath, holder, probe)) {
        if (readLock(lockPath) === text) unlinkQuiet(lockPath);
        continue;
      }
      if (Date.now() >= deadline) {
        throw new EnvironmentError(
          'timeout',
          `${lockPath} is held${holder === undefined ? '' : ` by ${describeHolder(holder, probe)}`}; ` +
            `try again (if you are sure no kds process is using this client, delete ${lockPath})`,
          { path: lockPath, ...(holder === undefined ? {} : { pid: holder.pid }) },
        );
      }
      sleepMs(wait);
      wait = Math.min(wait * 2, 20);
      continue;
    }
    try {
      writeSync(fd, holderLine(probe));
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

/** The lock file's text, undefined when there is no file (released). */
function readLock(lockPath: string): string | undefined {
  try {
    return readFileSync(lockPath, 'latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new EnvironmentError('io_error', `cannot read ${lockPath}`, { path: lockPath }, { cause: err });
  }
}

function isStale(lockPath: string, holder: LockHolder | undefined, probe: HolderProbe): boolean {
  if (holder !== undefined && holderGone(holder, probe)) return true;
  let age: number;
  try {
    age = Date.now() - statSync(lockPath).mtimeMs;
  } catch {
    return false; // gone: the next attempt creates it
  }
  return age > (holder === undefined ? STALE_EMPTY_MS : STALE_MS);
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
