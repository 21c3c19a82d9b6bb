// Real-process helpers for end-to-end tests: run `node bin/kds.js ...`, initialise a data directory
// quickly (one RSA-2048 init per tap run, copied for each test that needs a fresh one), start a
// KDC on 127.0.0.1 port 0 and parse the URL it prints, enroll a client. Every spawned process is
// killed in t.teardown, and every directory comes from tempDir(t).
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './tmp.js';

/** dist/test/helpers/kds-process.js -> the checkout root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const KDS_BIN = join(REPO_ROOT, 'bin', 'kds.js');
/** A fixed, obviously-test passphrase for the CA of test data directories. */
export const TEST_CA_PASSPHRASE = 'kds-test-ca-passphrase';

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment for child processes: no stray KDS_* from the developer's shell, plus `extra`. */
export function kdsEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KDS_')) env[k] = v;
  env.KDS_CA_PASSPHRASE = TEST_CA_PASSPHRASE;
  env.NO_COLOR = '1';
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

const live = new Set<ChildProcess>();
const killLive = (): void => {
  for (const child of live) child.kill('SIGKILL');
};
process.on('exit', killLive);
// tap ends a test file that runs past its timeout with SIGTERM, which skips both the teardowns and
// 'exit': without this its KDC (a child with its own data directory) kept running after the run. The
// signal is raised again once the children are gone, so the process still ends as signalled.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killLive();
    process.kill(process.pid, signal);
  });
}

/** Kills `child` when this test process ends, however it ends (for children spawned elsewhere). */
export function trackChild(child: ChildProcess): void {
  live.add(child);
  child.once('close', () => live.delete(child));
}

/** Run `kds <args>` to completion (killed after timeoutMs, which then shows as signal SIGKILL). */
export function runKds(
  args: string[],
  opts: { env?: Record<string, string | undefined>; timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [KDS_BIN, ...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: kdsEnv(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      live.delete(child);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/**
 * fn over every item, at most `limit` at once; the results in the order of `items`. For tests that
 * run dozens of independent `kds` processes: each costs ~0.3-0.5 s of start-up, mostly waiting, so
 * one after the other they added up to most of the file's time. The assertions then read each
 * result on its own, in order, as before.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i]!, i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Parse the JSON a `--json` command printed on stdout (the whole output is one JSON document). */
export function parseJson<T = Record<string, unknown>>(r: RunResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`expected JSON on stdout, got: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

let template: Promise<string> | undefined;

/**
 * A freshly initialised data directory (RSA-2048 CA so it is quick, CA passphrase TEST_CA_PASSPHRASE).
 * The CA is created once per tap run (test/helpers/template.ts), or once per test process when it runs
 * outside tap (in-process initCa); every caller gets its own copy, so tests never share state.
 *
 * The directory holds a key-encryption key already (kek/kek-v1.bin at scrypt cost 2^14, the lowest a
 * KDC opens), as after a KDC's first start: a KDC that has to make its KEK pays two scrypts at the
 * default 2^15 (~0.3 s of CPU), one that opens this one a single scrypt at 2^14 (~0.06 s), and the
 * suite starts a few hundred KDCs. `{ kek: false }` leaves it out, for the tests of what a first start
 * does (server/keys/kek.ts's own test makes its files at every cost).
 */
export async function initDataDir(t: TestLike, opts: { kek?: boolean } = {}): Promise<string> {
  template ??= (async () => {
    const shared = await (await import('./template.js')).runTemplate();
    if (shared !== undefined) return join(shared, 'data');
    const dir = mkdtempSync(join(tmpdir(), 'kds-template-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    const { initCa } = await import('../../server/ca/init.js');
    await initCa({
      dataDir: join(dir, 'data'),
      caKeyBits: 2048,
      passphrase: TEST_CA_PASSPHRASE,
      actor: 'test',
    });
    await makeTestKek(join(dir, 'data'));
    return join(dir, 'data');
  })();
  const source = await template;
  const dir = join(tempDir(t), 'data');
  const kekDir = join(source, 'kek');
  cpSync(source, dir, {
    recursive: true,
    preserveTimestamps: true,
    filter: (from) => opts.kek !== false || (from !== kekDir && !from.startsWith(`${kekDir}/`)),
  });
  return dir;
}

/** The KEK initDataDir's copies hold: what a KDC's first start writes, at the lowest cost a KDC opens. */
export async function makeTestKek(dataDir: string): Promise<void> {
  const { KeyEncryptionKeys } = await import('../../server/keys/kek.js');
  await KeyEncryptionKeys.open(dataDir, TEST_CA_PASSPHRASE, { cost: { log2N: 14, r: 8, p: 1 } });
}

export interface ServerProcess {
  url: string;
  httpUrl: string;
  fingerprint: string;
  dataDir: string;
  child: ChildProcess;
  /** Everything the server wrote to stderr so far (diagnostics for failing tests). */
  stderr(): string;
  /** Send a signal and wait for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `kds server start --port 0 --json --data-dir D [...args]`: resolves once it printed where it listens.
 * `opts.port`: a port found free by binding port 0 (a restarted server keeping its URL); `opts.env`:
 * extra environment (kdsEnv), e.g. KDS_ALLOW_INSECURE for the insecure lab.
 */
export function startServer(
  t: TestLike,
  dataDir: string,
  args: string[] = [],
  opts: { port?: number; env?: Record<string, string | undefined> } = {},
): Promise<ServerProcess> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [
        KDS_BIN,
        'server',
        'start',
        '--host',
        '127.0.0.1',
        '--port',
        String(opts.port ?? 0),
        '--data-dir',
        dataDir,
        '--json',
        ...args,
      ],
      { cwd: REPO_ROOT, env: kdsEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    live.add(child);
    let stdout = '';
    let stderr = '';
    let started = false;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
      child.on('close', (code, signal) => {
        live.delete(child);
        res({ code, signal });
      }),
    );
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in time; stderr: ${stderr}`));
    }, 30_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (started) return;
      const nl = stdout.indexOf('\n');
      if (nl < 0) return;
      started = true;
      clearTimeout(timer);
      let info: { url: string; httpUrl: string; fingerprint: string };
      try {
        info = JSON.parse(stdout.slice(0, nl)) as typeof info;
      } catch {
        reject(new Error(`unexpected server output: ${stdout}`));
        return;
      }
      resolvePromise({
        ...info,
        dataDir,
        child,
        stderr: () => stderr,
        stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      if (!started) reject(new Error(`server exited (${code}) before listening; stderr: ${stderr}`));
    });
  });
}

/** Issue a token with the admin CLI, then `kds client enroll` (2048-bit key). Returns the client's home. */
export async function enrollClient(
  server: ServerProcess,
  name: string,
  opts: { home?: string; env?: Record<string, string | undefined> } = {},
): Promise<{ home: string; serialHex: string }> {
  const token = await adminToken(server, name);
  const home = opts.home ?? join(server.dataDir, 'clients', name);
  const r = await runKds(
    [
      'client',
      'enroll',
      '--name',
      name,
      '--token',
      token,
      '--server',
      server.url,
      '--ca-fingerprint',
      server.fingerprint,
      '--home',
      home,
      '--json',
    ],
    opts.env === undefined ? {} : { env: opts.env },
  );
  if (r.code !== 0) throw new Error(`enroll ${name} failed (${r.code}): ${r.stdout}${r.stderr}`);
  const out = parseJson<{ serialHex: string }>(r);
  return { home, serialHex: out.serialHex };
}

export async function adminToken(server: ServerProcess, name: string, ttl?: string): Promise<string> {
  const args = [
    'admin',
    'token',
    '--name',
    name,
    '--data-dir',
    server.dataDir,
    '--server',
    server.url,
    '--json',
  ];
  if (ttl !== undefined) args.push('--ttl', ttl);
  const r = await runKds(args);
  if (r.code !== 0) throw new Error(`admin token failed (${r.code}): ${r.stdout}${r.stderr}`);
  return parseJson<{ token: string }>(r).token;
}
