// A long-running `kds ...` process with its own environment (e.g. KDS_DEBUG=1), whose stdout lines
// (JSON events with --json) can be awaited and whose whole output is kept for inspection. Killed in
// t.teardown. test/helpers/kds-process.ts startServer has no environment parameter; this does.
import { spawn } from 'node:child_process';
import { KDS_BIN, REPO_ROOT, kdsEnv, trackChild } from './kds-process.js';

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

export interface Background {
  pid: number;
  stdout(): string;
  stderr(): string;
  /** JSON objects printed on stdout so far (non-JSON lines are skipped). */
  events(): Record<string, unknown>[];
  waitFor(
    pred: (e: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function spawnKds(
  t: TestLike,
  args: string[],
  env: Record<string, string | undefined> = {},
): Background {
  const child = spawn(process.execPath, [KDS_BIN, ...args], {
    cwd: REPO_ROOT,
    env: kdsEnv(env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  trackChild(child);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let stdout = '';
  let stderr = '';
  const events: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let pending = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    pending += d;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      try {
        events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        continue;
      }
      for (const w of [...waiters]) w();
    }
  });
  return {
    pid: child.pid!,
    stdout: () => stdout,
    stderr: () => stderr,
    events: () => events,
    waitFor(pred, what, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const hit = events.find(pred);
          if (hit === undefined) return false;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `${args.slice(0, 2).join(' ')}: no ${what} within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`,
            ),
          );
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
