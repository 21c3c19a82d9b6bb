// Why a file or directory cannot be used, said plainly. `existsSync` answers false for a path that is
// there but out of reach (EACCES: a directory on the way is not searchable by this user; ENOTDIR: a
// file stands where a directory should be), which turned "permission denied" into "no CA here: run kds
// server init" -- advice that would replace a working CA. kds therefore asks `entryKind`, which says
// `missing` only for ENOENT and throws a clear `io_error` for everything else, naming the path that is
// in the way, its owner and mode, and the user kds runs as.
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { EnvironmentError } from '../shared/errors.js';

export type FsProblem = 'missing' | 'denied' | 'not_a_directory' | 'is_a_directory' | 'exists' | 'other';

/** The kind of failure an errno code stands for. */
export function classifyErrno(code: string | undefined): FsProblem {
  switch (code) {
    case 'ENOENT':
      return 'missing';
    case 'EACCES':
    case 'EPERM':
      return 'denied';
    case 'ENOTDIR':
      return 'not_a_directory';
    case 'EISDIR':
      return 'is_a_directory';
    case 'EEXIST':
      return 'exists';
    default:
      return 'other';
  }
}

/** What stands in the way: the path to name, and (for `denied`) its owner and mode. */
export interface Obstacle {
  path: string;
  uid?: number;
  mode?: number;
}

/** The sentence for one failure (pure: the facts are gathered by explainFsError). */
export function describeFsProblem(
  problem: FsProblem,
  action: string,
  path: string,
  facts: { code?: string; obstacle?: Obstacle; uid?: number } = {},
): string {
  const o = facts.obstacle;
  switch (problem) {
    case 'denied': {
      const where = o === undefined ? path : o.path;
      const owner =
        o?.uid === undefined
          ? ''
          : ` (owned by uid ${o.uid}, mode ${(o.mode ?? 0).toString(8).padStart(4, '0')})`;
      const who = facts.uid === undefined ? '' : `; kds runs as uid ${facts.uid}`;
      return `permission denied: cannot ${action} ${path}: no access to ${where}${owner}${who}`;
    }
    case 'not_a_directory':
      return `cannot ${action} ${path}: ${o?.path ?? 'a part of that path'} is a file, not a directory`;
    case 'is_a_directory':
      return `cannot ${action} ${path}: it is a directory, not a file`;
    case 'exists':
      return `cannot ${action} ${path}: a file is in the way (it is not a directory)`;
    case 'missing':
      return `cannot ${action} ${path}: it does not exist`;
    default:
      return `cannot ${action} ${path}: ${facts.code ?? 'unknown error'}`;
  }
}

/** The nearest ancestor of `path` (or `path` itself) that exists but is not a directory. */
function fileInTheWay(path: string): string | undefined {
  for (let p = resolve(path); ; p = dirname(p)) {
    try {
      if (!statSync(p).isDirectory()) return p;
    } catch {
      // not there or not reachable: look further up
    }
    if (dirname(p) === p) return undefined;
  }
}

/** The outermost directory on the way to `path` that this user cannot enter (or read, for the path). */
function deniedAt(path: string): Obstacle | undefined {
  const chain: string[] = [];
  for (let p = resolve(path); ; p = dirname(p)) {
    chain.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of chain) {
    let st;
    try {
      st = statSync(p);
    } catch {
      return undefined;
    }
    const need = p === chain[chain.length - 1] && !st.isDirectory() ? constants.R_OK : constants.X_OK;
    try {
      accessSync(p, need);
    } catch {
      return { path: p, uid: st.uid, mode: st.mode & 0o7777 };
    }
  }
  return undefined;
}

/** An `io_error` for a failed file-system call on `path`, saying why in words. */
export function explainFsError(err: unknown, action: string, path: string): EnvironmentError {
  const code = (err as NodeJS.ErrnoException)?.code;
  const problem = classifyErrno(code);
  const obstacle =
    problem === 'denied'
      ? deniedAt(path)
      : problem === 'not_a_directory' || problem === 'exists'
        ? (() => {
            const at = fileInTheWay(path);
            return at === undefined ? undefined : { path: at };
          })()
        : undefined;
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  return new EnvironmentError(
    'io_error',
    describeFsProblem(problem, action, path, {
      ...(code === undefined ? {} : { code }),
      ...(obstacle === undefined ? {} : { obstacle }),
      ...(uid === undefined ? {} : { uid }),
    }),
    { path, errno: code ?? null },
    { cause: err },
  );
}

/**
 * What is at `path`: `missing` (nothing: ENOENT), a `file`, a `directory` or `other`. Anything that
 * keeps kds from knowing (permission denied, a file where a directory should be) is thrown as the
 * `io_error` of explainFsError, never answered as `missing`.
 */
export function entryKind(path: string, action = 'read'): 'missing' | 'file' | 'directory' | 'other' {
  try {
    const st = statSync(path);
    return st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw explainFsError(err, action, path);
  }
}
