// One KDC per data directory (docs/deployment.md: "One data directory is one node"). A second
// `kds server start` on the same directory would share the store and the CA files with the first, and
// what it stores as its own (the URL of its delta CRL, derived from the port it bound) would replace the
// first one's, so the running KDC would publish a URL nobody answers. So the start takes a lock: a file
// holding its pid, created exclusively. A lock whose process is gone (a KDC killed outright) is stale
// and taken over. `kds server init --force` takes it too, while it replaces the CA. Other commands
// (kds cert revoke, kds admin audit) share the directory on purpose and take no lock.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError } from '../shared/errors.js';
import { explainFsError } from './fs-errors.js';
import { PRIVATE_FILE_MODE } from './fs-atomic.js';
import { processAlive } from './lock-holder.js';

const LOCK_FILE = 'kds.pid';

function holder(path: string): number | undefined {
  try {
    const text = readFileSync(path, 'utf8').trim();
    return /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Take the data directory's lock for this process; returns its release. Throws `config` when a live
 * process holds it. The directory must exist. `action`: what the caller is about to do, named in the
 * refusal (default: start a KDC).
 */
export function lockDataDir(dataDir: string, action?: string): () => void {
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', PRIVATE_FILE_MODE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw explainFsError(err, 'lock', path);
      const pid = holder(path);
      if (pid !== undefined && pid !== process.pid && processAlive(pid)) {
        throw new EnvironmentError(
          'config',
          action === undefined
            ? `another kds server (pid ${pid}) is running on ${dataDir}: one data directory is one node; stop it first (or delete ${path} if pid ${pid} is no KDC)`
            : `a kds server (pid ${pid}) is running on ${dataDir}: stop it before ${action} (or delete ${path} if pid ${pid} is no KDC)`,
          { pid, path },
        );
      }
      // Stale (its process is gone), or unreadable: take it over, once; a second EEXIST means another
      // start took it in between.
      if (attempt > 0) {
        throw new EnvironmentError('config', `another kds server is starting on ${dataDir}`, { path });
      }
      try {
        unlinkSync(path);
      } catch {
        // Gone already: the next attempt creates it.
      }
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    return () => {
      try {
        if (holder(path) === process.pid) unlinkSync(path);
      } catch {
        // Best effort: a lock left behind is stale once this process is gone.
      }
    };
  }
}
