// `kds mitm --report`: a report path that can never be written is a usage error before Mallory
// listens (or before an ablation run); a write that fails later, while she runs, is one error line and
// she keeps relaying, and she exits 1 when she stops with the report still unwritten.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { KDS_BIN, REPO_ROOT, kdsEnv, runKds, trackChild } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(120_000);

const mitm = ['mitm', '--listen', '127.0.0.1:0', '--target', 'ws://127.0.0.1:9', '--attack', 'passthrough'];

t.test('a report path that cannot be written: exit 2 before listening', async (t) => {
  const work = tempDir(t);
  const opts = { timeoutMs: 20_000 };
  const [missing, dir, ablation] = await Promise.all([
    runKds([...mitm, '--report', join(work, 'nonexistent', 'r.json')], opts),
    runKds([...mitm, '--report', work], opts),
    runKds(['mitm', '--ablation', '--report', join(work, 'nonexistent', 'r.json')], opts),
  ]);
  for (const [what, r] of [
    ['missing directory', missing],
    ['a directory', dir],
    ['--ablation', ablation],
  ] as const) {
    t.equal(r.code, 2, `${what}: exit 2 (${r.stderr})`);
    t.match(r.stderr, /^error \[bad_request\]: --report /, what);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
    t.notMatch(r.stdout, /listening/, `${what}: never listened`);
  }
});

t.test('a report write that fails later: one line, Mallory keeps running, exit 1', async (t) => {
  const work = tempDir(t);
  const sub = join(work, 'sub');
  mkdirSync(sub);
  const child = spawn(process.execPath, [KDS_BIN, ...mitm, '--report', join(sub, 'r.json')], {
    cwd: REPO_ROOT,
    env: kdsEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const until = async (what: () => boolean): Promise<void> => {
    for (let i = 0; i < 400 && !what(); i++) await new Promise((r) => setTimeout(r, 25));
  };
  await until(() => /listening on (ws:\S+)/.test(out));
  const url = /listening on (ws:\S+)/.exec(out)?.[1];
  t.ok(url, `listening: ${out}${err}`);
  rmSync(sub, { recursive: true });

  // A victim comes and goes: the report is written as each connection ends.
  for (let n = 1; n <= 2; n++) {
    const ws = new WebSocket(url!);
    ws.on('error', () => {});
    ws.once('open', () => ws.close());
    await new Promise((resolve) => ws.once('close', resolve));
    await until(() => err.split('\n').filter((l) => l.startsWith('error [')).length >= n);
  }
  const lines = err.trim().split('\n');
  t.equal(lines.length, 2, `one line per failed write: ${err}`);
  for (const line of lines) t.match(line, /^error \[io_error\]: cannot write .*r\.json: ENOENT$/);
  t.equal(child.exitCode, null, 'still running after the failed writes');
  t.equal(child.signalCode, null);

  child.kill('SIGTERM');
  t.equal(await exited, 1, 'stopped with the report unwritten: exit 1');
  t.notMatch(err, /\n\s+at /, 'no stack trace');
});
