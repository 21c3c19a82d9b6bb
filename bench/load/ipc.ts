// A tiny request/response protocol over Node's IPC channel (child_process.fork), so a benchmark can
// drive load generators and servers that run as SEPARATE processes: their CPU time and memory are then
// their own (process.cpuUsage / memoryUsage measured inside them), not mixed with the orchestrator's.
//
//   parent: const w = await Worker.start('load/kdc-server.js'); await w.call('cpu'); await w.stop();
//   child:  serve({ cpu: async () => process.cpuUsage() });
//
// Messages use the 'advanced' serialization (structured clone), so Buffers and bigints pass as they are.
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Call {
  id: number;
  cmd: string;
  arg: unknown;
}

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

/** A handler for one command; its result is sent back to the parent. */
export type Handler = (arg: never) => unknown;

/** dist/bench/load/ipc.js -> dist/bench */
const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class Worker {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #exited: Promise<number | null>;
  #nextId = 1;
  #stderr = '';

  private constructor(child: ChildProcess) {
    this.#child = child;
    live.add(child);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      // Keep the tail only: enough to explain a crash.
      this.#stderr = (this.#stderr + d).slice(-4000);
    });
    child.on('message', (m: Reply) => {
      const waiter = this.#pending.get(m.id);
      if (waiter === undefined) return;
      this.#pending.delete(m.id);
      if (m.ok) waiter.resolve(m.value);
      else waiter.reject(new Error(`worker: ${m.error ?? 'failed'}`));
    });
    this.#exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        live.delete(child);
        for (const [, w] of this.#pending) w.reject(new Error(`worker exited (${code}): ${this.#stderr}`));
        this.#pending.clear();
        resolve(code);
      }),
    );
  }

  /** Fork `script` (a path under dist/bench, e.g. 'load/kdc-server.js'). */
  static start(
    script: string,
    opts: { execArgv?: string[]; env?: NodeJS.ProcessEnv; execPath?: string } = {},
  ): Worker {
    const child = fork(join(BENCH_DIR, script), [], {
      // execPath: another launcher (bench/events.ts runs the KDC under valgrind: execArgv then holds
      // valgrind's options and node's path).
      ...(opts.execPath === undefined ? {} : { execPath: opts.execPath }),
      execArgv: opts.execArgv ?? [],
      env: opts.env ?? process.env,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    return new Worker(child);
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  call<T = unknown>(cmd: string, arg?: unknown): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#child.send({ id, cmd, arg } satisfies Call, (err) => {
        if (err) {
          this.#pending.delete(id);
          reject(err);
        }
      });
    });
  }

  /** SIGKILL the child (a crash: nothing of its own runs) and wait until it is gone. */
  async kill(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill('SIGKILL');
    await this.#exited;
  }

  /** Ask the child to exit; SIGKILL it if it has not within `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.send({ id: 0, cmd: '__exit', arg: undefined } satisfies Call, () => {});
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** Child side: answer the parent's calls with `handlers`; '__exit' runs `onExit` and exits. */
export function serve(handlers: Record<string, Handler>, onExit?: () => Promise<void> | void): void {
  if (process.send === undefined) throw new Error('not started by Worker.start (no IPC channel)');
  const send = (reply: Reply): void => {
    process.send!(reply);
  };
  process.on('message', (m: Call) => {
    if (m.cmd === '__exit') {
      void Promise.resolve(onExit?.())
        .catch(() => {})
        .finally(() => process.exit(0));
      return;
    }
    const handler = handlers[m.cmd];
    if (handler === undefined) {
      send({ id: m.id, ok: false, error: `unknown command ${m.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => (handler as (arg: unknown) => unknown)(m.arg))
      .then(
        (value) => send({ id: m.id, ok: true, value }),
        (err: unknown) => send({ id: m.id, ok: false, error: (err as Error)?.stack ?? String(err) }),
      );
  });
  // The parent died: do not linger.
  process.on('disconnect', () => process.exit(0));
}
