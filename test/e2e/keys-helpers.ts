// Helpers for the key-distribution end-to-end tests (not a test file): run `kds client ...` commands
// for a home, a long-running `kds client listen --json` whose events can be awaited, and a server on
// a fixed port (so a listener can reconnect to it after a restart).
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import {
  KDS_BIN,
  REPO_ROOT,
  TEST_CA_PASSPHRASE,
  kdsEnv,
  runKds,
  startServer,
  type RunResult,
  type ServerProcess,
  trackChild,
} from '../helpers/kds-process.js';
import { createHash, createPrivateKey } from 'node:crypto';
import { openAdminSession } from '../../client/admin.js';
import { enroll } from '../../client/enroll.js';
import { stageEnrollment } from '../../client/home.js';
import { createCsr } from '../../shared/pki/csr.js';
import { pooledKeyPair } from '../helpers/template.js';
import { openKeyClient, type OpenedKeyClient } from '../../client/keys/open.js';
import type { KeyEvent } from '../../client/keys/key-client.js';

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

export interface Clients {
  server: ServerProcess;
  homes: Record<string, string>;
}

/**
 * Enroll clients from the test process (an admin session for the tokens, then client/enroll.ts): the
 * same protocol as `kds admin token` + `kds client enroll` without two process start-ups per client.
 * The key comes from the run's pool (pooledKeyPair) rather than a fresh RSA keygen per client (~0.13 s
 * of CPU each): it is staged in the home as an earlier run with that token would have left it, so
 * enroll() sends it as it would its own. Key generation at enrollment has its own tests.
 */
export async function enrollAll(
  server: ServerProcess,
  names: readonly string[],
): Promise<Record<string, string>> {
  const session = await openAdminSession({
    dataDir: server.dataDir,
    server: server.url,
    passphrase: TEST_CA_PASSPHRASE,
  });
  const homes: Record<string, string> = {};
  try {
    for (const name of names) {
      const { token } = (await session.request('admin.token', { name })) as { token: string };
      const home = join(server.dataDir, 'clients', name);
      await stagePooledKey(home, name, token);
      await enroll({ server: server.url, name, token, home, caFingerprint: server.fingerprint });
      homes[name] = home;
    }
  } finally {
    await session.close();
  }
  return homes;
}

/**
 * An enrollment token for `name` from the test process (an admin session, as enrollAll uses): for tests
 * about what is done with the token, without the start-up of a `kds admin token` process for it.
 */
export async function issueToken(server: ServerProcess, name: string): Promise<string> {
  const session = await openAdminSession({
    dataDir: server.dataDir,
    server: server.url,
    passphrase: TEST_CA_PASSPHRASE,
  });
  try {
    return ((await session.request('admin.token', { name })) as { token: string }).token;
  } finally {
    await session.close();
  }
}

/**
 * Pool slots for enrolled names, one per name in this process, from the named clients' slots (1-5,
 * test/helpers/template.ts): distinct names get distinct keys, as clients that generated their own would
 * have. Once those are used up, enroll() generates the key as usual.
 */
const slots = new Map<string, number>();
const FIRST_SLOT = 1;
const LAST_SLOT = 5;

async function stagePooledKey(home: string, name: string, token: string): Promise<void> {
  let slot = slots.get(name);
  if (slot === undefined) {
    if (FIRST_SLOT + slots.size > LAST_SLOT) return;
    slots.set(name, (slot = FIRST_SLOT + slots.size));
  }
  const pair = await pooledKeyPair(slot);
  stageEnrollment(home, {
    name,
    tokenHash: createHash('sha256').update(token, 'utf8').digest('hex'),
    csr: await createCsr(name, pair.privateKeyPem, pair.publicKeyPem),
    privateKey: createPrivateKey(pair.privateKeyPem),
  });
}

/** A key client in the test process, connected to the server process (closed at teardown). */
export async function keyClient(
  t: TestLike,
  c: Clients,
  name: string,
): Promise<OpenedKeyClient & { events: KeyEvent[] }> {
  const events: KeyEvent[] = [];
  const opened = await openKeyClient({
    name,
    home: c.homes[name]!,
    server: c.server.url,
    onEvent: (e) => events.push(e),
  });
  t.teardown(() => opened.close().catch(() => undefined));
  return Object.assign(opened, { events });
}

/** `kds client <command> --name N --home H --server U [args]`. */
export function client(c: Clients, name: string, command: string, args: string[] = []): Promise<RunResult> {
  return runKds([
    'client',
    command,
    '--name',
    name,
    '--home',
    c.homes[name]!,
    '--server',
    c.server.url,
    ...args,
  ]);
}

export function admin(c: Clients, command: string, args: string[] = []): Promise<RunResult> {
  return runKds(['admin', command, '--data-dir', c.server.dataDir, '--server', c.server.url, ...args]);
}

export interface Listener {
  events: Record<string, unknown>[];
  /** Resolves with the first event (seen so far or later) matching `pred`. */
  waitFor(
    pred: (e: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  stderr(): string;
  /** What stdout held that is not one JSON object per line (nothing, since the error is one line too). */
  rest(): string;
  /** Resolves with the exit code once the process has ended by itself (or been stopped). */
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

/**
 * `kds client listen --json` as a background process, killed at teardown. `server` overrides the
 * `--server` value (several nodes, comma-separated).
 */
export function listen(t: TestLike, c: Clients, name: string, server = c.server.url): Listener {
  const child = spawn(
    process.execPath,
    [KDS_BIN, 'client', 'listen', '--name', name, '--home', c.homes[name]!, '--server', server, '--json'],
    { cwd: REPO_ROOT, env: kdsEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  trackChild(child);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const events: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let buffer = '';
  let stderr = '';
  let rest = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buffer += d;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.trim() === '') continue;
      // One event per line, the error a listen that stops ends with included (cli/output.ts).
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(line) as Record<string, unknown>;
      } catch {
        rest += `${line}\n`;
        continue;
      }
      events.push(event);
      for (const w of [...waiters]) w();
    }
  });
  return {
    events,
    stderr: () => stderr,
    rest: () => rest,
    exited,
    waitFor(pred, what, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const hit = events.find(pred);
          if (hit === undefined) return false;
          waiters.delete(check as () => void);
          clearTimeout(timer);
          resolve(hit);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check as () => void);
          reject(
            new Error(
              `listen ${name}: no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(events)}; stderr: ${stderr}`,
            ),
          );
        }, timeoutMs);
        if (!check()) waiters.add(check as () => void);
      });
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** `kds server start` on a fixed port (retrying while the previous server's port is released). */
export async function startServerOnPort(t: TestLike, dataDir: string, port: number): Promise<ServerProcess> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await startServer(t, dataDir, [], { port });
    } catch (err) {
      if (attempt >= 20 || !String((err as Error).message).includes('EADDRINUSE')) throw err;
      await new Promise((r) => setTimeout(r, 150));
    }
  }
}

export function json<T = Record<string, unknown>>(r: RunResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`expected JSON (exit ${String(r.code)}): ${r.stdout}\n${r.stderr}`);
  }
}
