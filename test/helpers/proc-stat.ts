// A process's start time as the kernel reports it, read here independently of io/lock-holder.ts so the
// lock tests compare the code under test against proc(5) itself.
import { readFileSync } from 'node:fs';

/** Field 22 (starttime) of /proc/<pid>/stat; undefined where there is no such file. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
