// Where test processes (and the kds processes they start) make their temporary directories. Every data
// directory, client home and lab of the suite lives there, and the code under test makes each write
// durable: fsync of the file and of its directory (io/fs-atomic.ts), SQLite commits, the CA's serial and
// audit files. On the disk behind /tmp each durable write costs milliseconds (5 ms measured for a
// write, fsync and directory fsync on this machine's ext4, and worse while three test files write at
// once), and the processes wait for it: a test of the client key store spent a third of its wall time
// in fsync. On a tmpfs, fsync returns at once. Nothing the suite asserts depends on the data reaching a
// disk: a killed process loses nothing either way (the crash tests SIGKILL processes, they do not cut
// the power), and the calls themselves are still made.
//
// So when /dev/shm is a tmpfs with room to spare, TMPDIR points there (test/helpers/preload.ts sets it
// before the test file runs; child processes inherit it). KDS_TEST_TMPDIR overrides the choice (a
// directory, or `default` to keep the platform's TMPDIR); a small tmpfs (a container's 64 MiB
// /dev/shm) is left alone.
import { statfsSync } from 'node:fs';

/** statfs f_type of a tmpfs (linux/magic.h TMPFS_MAGIC). */
const TMPFS_MAGIC = 0x01021994;
/** Free space a tmpfs needs before the suite's temporary files go there (three test files at once). */
export const MIN_FREE_BYTES = 2 * 1024 ** 3;
const SHM = '/dev/shm';

interface FsStats {
  type: number;
  bsize: number;
  bavail: number;
}

/**
 * The TMPDIR test processes should use, or undefined to keep the current one. `statfs` is injectable so
 * the choice can be checked without a tmpfs.
 */
export function testTmpdir(
  env: NodeJS.ProcessEnv,
  statfs: (path: string) => FsStats = (path) => statfsSync(path),
): string | undefined {
  const wanted = env.KDS_TEST_TMPDIR;
  if (wanted === 'default') return undefined;
  if (wanted !== undefined && wanted !== '') return wanted;
  let stats: FsStats;
  try {
    stats = statfs(SHM);
  } catch {
    return undefined;
  }
  if (stats.type !== TMPFS_MAGIC || stats.bavail * stats.bsize < MIN_FREE_BYTES) return undefined;
  return SHM;
}
