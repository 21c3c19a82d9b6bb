// Drives `kds client menu` like a person at a terminal (not a test file): spawn it with a piped stdin,
// type one answer at a time, and wait for what the menu prints next. The process is killed at teardown.
import { spawn } from 'node:child_process';
import { KDS_BIN, REPO_ROOT, kdsEnv, trackChild } from '../helpers/kds-process.js';

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

export interface MenuProcess {
  /** Everything printed on stdout so far. */
  output(): string;
  stderr(): string;
  /** Type a line (the answer and Enter). */
  type(line: string): void;
  /** Close stdin: what Ctrl-D does on a terminal. */
  endInput(): void;
  /** Wait until the output printed after the last `type` (or the start) matches `re`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Wait for the exit code. */
  exited(): Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

export function startMenu(
  t: TestLike,
  args: string[],
  env: Record<string, string | undefined> = {},
): MenuProcess {
  const child = spawn(process.execPath, [KDS_BIN, 'client', 'menu', ...args], {
    cwd: REPO_ROOT,
    env: kdsEnv(env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  trackChild(child);
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exit;
    }
  });
  let out = '';
  let err = '';
  let mark = 0;
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (const w of [...waiters]) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdin!.on('error', () => {});
  return {
    output: () => out,
    stderr: () => err,
    type(line) {
      mark = out.length;
      child.stdin!.write(`${line}\n`);
    },
    endInput() {
      mark = out.length;
      child.stdin!.end();
    },
    waitFor(re, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(out.slice(mark));
          if (m === null) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(m[0]);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `menu: no ${String(re)} within ${timeoutMs} ms; since the last answer:\n${out.slice(mark)}\nstderr: ${err}`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    exited: () => exit,
    kill: (signal) => child.kill(signal),
  };
}
