// A data directory or client home that is there but cannot be used is not "missing": permission
// denied (EACCES) and a file where a directory should be (ENOTDIR, EEXIST) are said as such, with the
// path in the way, an io_error code, and never the advice to run `kds server init` or `kds client
// enroll` (which would replace a working CA or identity). Real processes; EACCES for real too: as
// root (CI) the command runs as the unprivileged uid 65534 against a root-only directory, otherwise the
// directory is made unreadable with chmod.
import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, cpSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KDS_BIN, REPO_ROOT, initDataDir, kdsEnv, runKds, type RunResult } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(120_000);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const NOBODY = 65534;

/** `kds ARGS` as an unprivileged user when we are root (so that permissions apply), else as ourselves. */
function runUnprivileged(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // Through `env -u NODE_OPTIONS`: the test runner adds its hooks to the environment of every child
    // it sees spawned, and they would try to write the runner's own files as that user.
    const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, KDS_BIN, ...args], {
      cwd: '/',
      env: { ...kdsEnv(), HOME: '/' },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(isRoot ? { uid: NOBODY, gid: NOBODY } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

t.test('a file where the data directory should be', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'not-a-dir');
  writeFileSync(file, 'x');
  for (const args of [
    ['crl', 'show', '--data-dir', join(file, 'data')],
    ['server', 'start', '--port', '0', '--data-dir', join(file, 'data')],
    ['admin', 'keys', '--data-dir', join(file, 'data')],
    ['client', 'status', '--name', 'alice', '--home', join(file, 'alice')],
  ]) {
    const r = await runKds(args, { timeoutMs: 20_000 });
    const what = `kds ${args.join(' ')}`;
    t.equal(r.code, 1, `${what}: exit 1 (${r.stderr.trim()})`);
    t.match(r.stderr, /^error \[io_error\]: /, what);
    t.match(r.stderr, `${file} is a file, not a directory`, `${what}: names the file in the way`);
    t.notMatch(r.stderr, /kds server init|kds client enroll|\n\s+at /, `${what}: no wrong advice, no stack`);
  }
  const init = await runKds(['server', 'init', '--data-dir', file, '--ca-key-bits', '2048']);
  t.equal(init.code, 1, init.stderr);
  t.match(init.stderr, /^error \[io_error\]: /);
  t.match(init.stderr, `${file} is a file, not a directory`, 'init: no raw EEXIST');
  t.notMatch(init.stderr, /: EEXIST$/m);
});

t.test('a data directory and a home this user may not enter: permission denied, and where', async (t) => {
  const outer = tempDir(t); // 0700, owned by the test's user
  const dataDir = join(outer, 'data');
  cpSync(await initDataDir(t), dataDir, { recursive: true });
  const home = join(outer, 'home');
  mkdirSync(home, { mode: 0o700 });
  writeFileSync(join(home, 'key.pem'), 'x', { mode: 0o600 });
  writeFileSync(join(home, 'cert.pem'), 'x', { mode: 0o600 });
  if (!isRoot) {
    chmodSync(outer, 0o000);
    t.teardown(() => chmodSync(outer, 0o700));
  }
  // Without root, chmod 000 on `outer`; as root, `outer` is 0700 root's and the command runs as 65534.
  for (const args of [
    ['crl', 'show', '--data-dir', dataDir],
    ['cert', 'list', '--data-dir', dataDir],
    ['admin', 'audit', 'verify', '--data-dir', dataDir],
    ['admin', 'audit', '--data-dir', dataDir],
    ['server', 'start', '--port', '0', '--data-dir', dataDir],
    ['admin', 'keys', '--data-dir', dataDir, '--server', 'ws://127.0.0.1:1/kds'],
    ['client', 'status', '--name', 'alice', '--home', home, '--server', 'ws://127.0.0.1:1/kds'],
  ]) {
    const r = await runUnprivileged(args);
    const what = `kds ${args.join(' ')}`;
    t.equal(r.code, 1, `${what}: exit 1 (${r.stderr.trim()})`);
    t.match(r.stderr, /^error \[io_error\]: permission denied: /, `${what}: says permission denied`);
    t.match(r.stderr, `no access to ${outer}`, `${what}: names the directory in the way`);
    t.match(r.stderr, /owned by uid \d+, mode 0[0-7]{3}\); kds runs as uid \d+/, `${what}: whose`);
    t.notMatch(r.stderr, /kds server init|kds client enroll|\n\s+at /, `${what}: no wrong advice, no stack`);
  }
  t.comment(isRoot ? 'EACCES made real by running as uid 65534' : 'EACCES made real by chmod 000');
});

/** Every entry under `dir` (itself included), deepest first. */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  out.push(dir);
  return out;
}

t.test('a read-only copy of the data directory: the commands that only read work on it', async (t) => {
  const outer = tempDir(t);
  const copy = join(outer, 'copy');
  cpSync(await initDataDir(t), copy, { recursive: true });
  // As root the copy is the unprivileged user's (permissions apply to it); either way nobody may write
  // in it, which a store opened for writing needs (its -wal and -shm files, the 0600 chmod).
  if (isRoot) {
    chmodSync(outer, 0o755);
    for (const p of walk(copy)) chownSync(p, NOBODY, NOBODY);
  }
  for (const p of walk(copy)) chmodSync(p, statSync(p).isDirectory() ? 0o500 : 0o400);
  t.teardown(() => {
    for (const p of walk(copy)) chmodSync(p, 0o700);
  });
  for (const [args, out] of [
    [['admin', 'audit', 'verify', '--data-dir', copy], /^audit trail intact: /],
    [['cert', 'list', '--data-dir', copy], /^SERIAL +NAME/],
    [['admin', 'audit', '--data-dir', copy], /ca\.init/],
  ] as const) {
    const r = await runUnprivileged([...args]);
    const what = `kds ${args.join(' ')}`;
    t.equal(r.code, 0, `${what}: exit 0 (${r.stderr.trim()})`);
    t.match(r.stdout, out, what);
  }
  t.same(
    readdirSync(copy).filter((f) => f.startsWith('kds.sqlite')),
    ['kds.sqlite'],
    'nothing written beside it',
  );
});

t.test('run from a directory the unprivileged user can read (the check above is meaningful)', async (t) => {
  const r = await runUnprivileged(['--version']);
  t.equal(r.code, 0, `kds runs as ${isRoot ? 'uid 65534' : 'this user'}: ${r.stderr}`);
  t.ok(REPO_ROOT.length > 0);
});
