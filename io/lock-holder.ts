// Who holds a lock file (client/keys/file-lock.ts, the renewal lock of client/home.ts), recorded
// precisely enough that a lock left behind by a dead process is recognised as such even when its pid
// now names another process. A pid alone is not enough: after a crash and a reboot, in a restored
// backup, or in a home shared by containers (each with its own pid namespace, where pid 1 always
// exists), the pid in a lock is often alive and someone else's, and such a lock was never broken.
//
// The holder line is `<pid> <start> <host>\n`: <start> is the process's start time in clock ticks
// since boot (field 22 of /proc/<pid>/stat, proc(5)), or `-` where there is no /proc (pid only then);
// <host> is os.hostname(), URI-encoded so that it is one word. A lock written on this host is stale
// when its pid is gone, or alive but started at another time than the holder did (the pid was reused);
// a lock that names this very process is stale too (callers never wait for themselves). A lock from
// another host cannot be judged here (its pid means nothing in our process table), so it stands.
// Locks written by earlier versions hold the pid alone; they are still read, judged by the pid alone.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export interface LockHolder {
  pid: number;
  /** Start time in clock ticks since boot; undefined when the lock did not record one. */
  start?: string;
  /** URI-encoded hostname; undefined in a lock written by an earlier version. */
  host?: string;
}

/** How a lock's holder is looked at; tests replace parts of it. */
export interface HolderProbe {
  /** Whether a process with this pid exists (on this host). */
  isAlive: (pid: number) => boolean;
  /** Its start time (clock ticks since boot), undefined when unknown (no /proc, or gone). */
  startTime: (pid: number) => string | undefined;
  /** This host's name, URI-encoded as in the holder line. */
  host: string;
}

/** Whether a process with this pid exists on this host (under any user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Field 22 (starttime) of /proc/<pid>/stat; undefined where there is no such file. */
function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // Field 2 (comm) is in parentheses and may itself hold spaces and ')': the fields after it start
  // after the LAST ')'. What follows is field 3 (state) onwards, so field 22 is index 19.
  const fields = stat
    .slice(stat.lastIndexOf(')') + 1)
    .trim()
    .split(' ');
  const start = fields[19];
  return start !== undefined && /^[0-9]{1,20}$/.test(start) ? start : undefined;
}

export function systemProbe(): HolderProbe {
  return { isAlive: processAlive, startTime: processStartTime, host: encodeURIComponent(hostname()) };
}

/** The holder line for this process. */
export function holderLine(probe: HolderProbe): string {
  return `${process.pid} ${probe.startTime(process.pid) ?? '-'} ${probe.host}\n`;
}

/** The holder a lock file's text names; undefined when it names none (empty, torn or foreign). */
export function parseHolder(text: string): LockHolder | undefined {
  const m = /^([1-9][0-9]{0,9})(?: ([0-9]{1,20}|-) ([^\s]{1,1024}))?$/.exec(text.trim());
  if (!m) return undefined;
  const holder: LockHolder = { pid: Number(m[1]) };
  if (m[2] !== undefined && m[2] !== '-') holder.start = m[2];
  if (m[3] !== undefined) holder.host = m[3];
  return holder;
}

/** Whether the process a lock names is certainly not holding it any more (see the header). */
export function holderGone(holder: LockHolder, probe: HolderProbe): boolean {
  if (holder.host !== undefined && holder.host !== probe.host) return false;
  if (holder.pid === process.pid) return true;
  if (!probe.isAlive(holder.pid)) return true;
  if (holder.start === undefined) return false;
  const now = probe.startTime(holder.pid);
  // Unknown now (it exited between the two looks, or /proc went away): the next look decides.
  return now !== undefined && now !== holder.start;
}

/** `process 123`, with the host when it is another one. */
export function describeHolder(holder: LockHolder, probe: HolderProbe): string {
  return holder.host === undefined || holder.host === probe.host
    ? `process ${holder.pid}`
    : `process ${holder.pid} on host ${hostText(holder.host)}`;
}

function hostText(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded; // not written by kds: shown as it is
  }
}
