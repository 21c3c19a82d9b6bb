// The real processes of the demo: `kds server init` and `kds server start` run as child processes of
// the demo, exactly as a user would run them, with a data directory and a CA passphrase of the demo's
// own. Every child is tracked so that the demo can end them all, on success, on failure and on Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from '../../shared/crypto/random.js';
import { EnvironmentError } from '../../shared/errors.js';

/** dist/client/demo/processes.js -> <checkout>/bin/kds.js */
const KDS_BIN = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'bin', 'kds.js');

export interface KdcInfo {
  url: string;
  httpUrl: string;
  fingerprint: string;
  /** With --console: the live console's URL. */
  consoleUrl?: string;
}

export interface KdcProcess extends KdcInfo {
  readonly pid: number;
  /** SIGTERM (graceful: sessions get "going away", the store is closed), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /**
   * SIGKILL at once: for a KDC whose data directory is deleted next, where a graceful close (the
   * sessions told, a final CRL issued, the store closed) would be work nobody sees.
   */
  kill(): Promise<void>;
}

/** Children of this demo, so a Ctrl-C (or a crash) can end every one of them. */
export class ProcessGroup {
  readonly #children = new Set<ChildProcess>();
  readonly #env: NodeJS.ProcessEnv;
  #closed = false;

  /** `env` is added to a copy of process.env without any KDS_* (the user's settings must not leak in). */
  constructor(env: Record<string, string>) {
    const clean: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KDS_')) clean[k] = v;
    this.#env = { ...clean, NO_COLOR: '1', ...env };
  }

  spawnKds(args: string[], extraEnv: Record<string, string> = {}): ChildProcess {
    if (this.#closed) throw new EnvironmentError('unavailable', 'the demo is stopping: no new processes');
    const child = spawn(process.execPath, [KDS_BIN, ...args], {
      env: { ...this.#env, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#children.add(child);
    child.on('exit', () => this.#children.delete(child));
    child.on('error', () => this.#children.delete(child));
    return child;
  }

  /** Run `kds <args>` to completion; resolves with stdout, rejects with its stderr on a non-zero exit. */
  runKds(args: string[], timeoutMs = 60_000): Promise<string> {
    const child = this.spawnKds(args);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new EnvironmentError('io_error', `cannot run kds ${args[0] ?? ''}: ${err.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolvePromise(stdout);
        else
          reject(
            new EnvironmentError(
              'io_error',
              `kds ${args.slice(0, 2).join(' ')} failed (${signal ?? code}): ${lastLine(stderr)}`,
            ),
          );
      });
    });
  }

  /**
   * `kds server start --port <port> --json ...` (port 0: a free one): resolves once the KDC printed
   * where it listens. `onStderr` reads the KDC's log (its stderr: one line per decision) as it comes.
   */
  startKdc(
    args: string[],
    extraEnv: Record<string, string> = {},
    timeoutMs = 30_000,
    port = 0,
    onStderr?: (chunk: string) => void,
  ): Promise<KdcProcess> {
    const child = this.spawnKds(
      ['server', 'start', '--host', '127.0.0.1', '--port', String(port), '--json', ...args],
      // Each log line when it happens (not gathered for up to 20 ms): the demo shows every KDC line
      // under the step that caused it, and a line written together with the next step's would not be.
      { KDS_LOG_FLUSH_MS: '0', ...extraEnv },
    );
    const exited = new Promise<void>((r) => child.on('close', () => r()));
    let stdout = '';
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      // The tail only: enough for the last line of an error, bounded however long the KDC logs.
      stderr = (stderr + d).slice(-8192);
      onStderr?.(d);
    });
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new EnvironmentError('unavailable', `the KDC did not start in time: ${lastLine(stderr)}`));
      }, timeoutMs);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        const nl = stdout.indexOf('\n');
        if (nl < 0) return;
        clearTimeout(timer);
        let info: KdcInfo;
        try {
          info = JSON.parse(stdout.slice(0, nl)) as KdcInfo;
        } catch {
          reject(new EnvironmentError('unavailable', `unexpected KDC output: ${stdout.slice(0, 200)}`));
          return;
        }
        resolvePromise({
          ...info,
          pid: child.pid ?? 0,
          stop: async (graceMs = 5_000) => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill('SIGTERM');
            const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
            await exited;
            clearTimeout(t);
          },
          kill: async () => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill('SIGKILL');
            await exited;
          },
        });
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new EnvironmentError('unavailable', `the KDC exited before listening: ${lastLine(stderr)}`));
      });
    });
  }

  /** End every child: SIGTERM, then SIGKILL after `graceMs`; resolves when all have exited. */
  async stopAll(graceMs = 3_000): Promise<void> {
    this.#closed = true;
    const live = [...this.#children].filter((c) => c.exitCode === null && c.signalCode === null);
    await Promise.all(
      live.map(
        (c) =>
          new Promise<void>((r) => {
            c.once('close', () => r());
            c.kill('SIGTERM');
            setTimeout(() => c.kill('SIGKILL'), graceMs).unref();
          }),
      ),
    );
  }

  /** Synchronous last resort (process 'exit' handler). */
  killAll(): void {
    for (const c of this.#children) c.kill('SIGKILL');
  }
}

function lastLine(text: string): string {
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '');
  return lines[lines.length - 1] ?? 'no output';
}

/**
 * A throwaway KDC's scene (the demo's, the ablation table's): a fresh 0700 directory, the group of its
 * child processes, and the CA passphrase of its throwaway CA (random, handed to the children in their
 * environment only). `lastResort` ends the children and removes the directory; it is registered on
 * process exit until the caller removes it.
 */
export function throwawayScene(prefix: string): {
  tmp: string;
  passphrase: string;
  procs: ProcessGroup;
  lastResort: () => void;
} {
  const tmp = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(tmp, 0o700);
  const passphrase = randomBytes(24).toString('base64url');
  const procs = new ProcessGroup({ KDS_CA_PASSPHRASE: passphrase });
  const lastResort = (): void => {
    procs.killAll();
    rmSync(tmp, { recursive: true, force: true });
  };
  process.on('exit', lastResort);
  return { tmp, passphrase, procs, lastResort };
}
