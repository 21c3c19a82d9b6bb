// The suite's own set-up (test/helpers/preload.ts, no-loader-thread.cts, tap-build.ts, template.ts):
// test processes run without the module loaders of the tap plugins .taprc leaves out, and without tap's
// process-info loader thread unless coverage is collected; the processes a test starts run without
// tap's process-info loader unless coverage is collected (then they keep it, to be covered), and the
// run builds the initialised data directory and key pairs that test processes copy once.
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { initDataDir, REPO_ROOT, TEST_CA_PASSPHRASE } from '../helpers/kds-process.js';
import { KeyEncryptionKeys } from '../../server/keys/kek.js';
import { ownAndChildrenCpu } from '../helpers/cpu-log.js';
import { withoutProcessInfo } from '../helpers/node-options.js';
import { pooledKeyPair, runTemplate, templateDir } from '../helpers/template.js';
import { tempDir } from '../helpers/tmp.js';
import { MIN_FREE_BYTES, testTmpdir } from '../helpers/test-tmpdir.js';

const run = promisify(execFile);
const coverage = process.env._TAPJS_PROCESSINFO_COVERAGE_ === '1';
const PI = '--import=file:///x/node_modules/@tapjs/processinfo/dist/esm/import.mjs';

t.test('withoutProcessInfo takes out the process-info loader and nothing else', async (t) => {
  t.equal(withoutProcessInfo(undefined), undefined);
  t.equal(withoutProcessInfo(PI), undefined, 'nothing left: no NODE_OPTIONS at all');
  t.equal(withoutProcessInfo(`--max-old-space-size=512 ${PI}`), '--max-old-space-size=512');
  t.equal(withoutProcessInfo(`"${PI.replace('/x/', '/a b/')}" --trace-warnings`), '--trace-warnings');
  t.equal(withoutProcessInfo('--import=./other.js'), '--import=./other.js', 'another loader stays');
});

t.test('this test process runs without the loaders of the plugins .taprc leaves out', async (t) => {
  const loaders = process.execArgv.filter((a) => /@tapjs[\\/](typescript|mock)[\\/]/.test(a));
  t.same(
    loaders,
    [],
    'no TypeScript or mock loader (npm test rebuilds tap first: test/helpers/tap-build.ts)',
  );
});

t.test(`this test process ${coverage ? 'records' : 'does not record'} the modules it loads`, async (t) => {
  // The process-info loader reports each module it loads to the main thread; kds-process.js was
  // imported above, so with the loader its report arrives within a few event-loop turns.
  const helper = join(REPO_ROOT, 'dist', 'test', 'helpers', 'kds-process.js');
  const recorded = (): boolean => {
    const info = (globalThis as Record<symbol, { files?: string[] } | undefined>)[
      Symbol.for('@tapjs/processinfo.ProcessInfoNodeData')
    ];
    return info?.files?.includes(helper) === true;
  };
  for (let waited = 0; !recorded() && waited < 1_000; waited += 20) await sleep(20);
  if (coverage) t.ok(recorded(), 'coverage on: the process-info loader records the imported modules');
  else t.notOk(recorded(), 'coverage off: no process-info loader thread (test/helpers/no-loader-thread.cts)');
});

t.test(`a child process ${coverage ? 'keeps' : 'starts without'} the process-info loader`, async (t) => {
  const { stdout } = await run(process.execPath, [
    '-e',
    'process.stdout.write(JSON.stringify({ o: process.env.NODE_OPTIONS ?? "", e: Object.keys(process.env).filter((k) => k.startsWith("_TAPJS_PROCESSINFO_")) }))',
  ]);
  const seen = JSON.parse(stdout) as { o: string; e: string[] };
  if (coverage) {
    t.match(seen.o, /@tapjs[\\/]processinfo/, 'coverage on: the child is covered too');
  } else {
    t.notMatch(seen.o, /@tapjs[\\/]processinfo/, 'coverage off: no process-info loader in NODE_OPTIONS');
    t.same(seen.e, [], 'coverage off: none of its variables either');
  }
});

t.test('temporary directories go to /dev/shm when it is a tmpfs with room', async (t) => {
  const TMPFS = 0x01021994;
  const EXT4 = 0xef53;
  const fs = (type: number, bytes: number) => () => ({ type, bsize: 4096, bavail: Math.floor(bytes / 4096) });
  t.equal(testTmpdir({}, fs(TMPFS, 24 * 1024 ** 3)), '/dev/shm', 'a large tmpfs');
  t.equal(testTmpdir({}, fs(TMPFS, MIN_FREE_BYTES + 4096)), '/dev/shm', 'just enough room');
  t.equal(testTmpdir({}, fs(TMPFS, 64 * 1024 ** 2)), undefined, "a container's 64 MiB /dev/shm: left alone");
  t.equal(testTmpdir({}, fs(EXT4, 24 * 1024 ** 3)), undefined, 'not a tmpfs: left alone');
  const missing = (): never => {
    throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  };
  t.equal(testTmpdir({}, missing), undefined, 'no /dev/shm: left alone');
  t.equal(testTmpdir({ KDS_TEST_TMPDIR: '/srv/t' }, fs(EXT4, 0)), '/srv/t', 'KDS_TEST_TMPDIR chooses');
  t.equal(
    testTmpdir({ KDS_TEST_TMPDIR: 'default' }, fs(TMPFS, 24 * 1024 ** 3)),
    undefined,
    'or keeps TMPDIR',
  );

  const chosen = testTmpdir(process.env);
  if (chosen === undefined) return;
  t.equal(tmpdir(), chosen, 'this test process uses it (test/helpers/preload.ts)');
  const { stdout } = await run(process.execPath, ['-e', 'process.stdout.write(require("node:os").tmpdir())']);
  t.equal(stdout, chosen, 'and so do the processes it starts');
});

t.test(
  'the run builds one template: data directory 0700, private files 0600, copied per caller',
  async (t) => {
    const dir = await runTemplate();
    t.equal(dir, templateDir(), 'under tap: the run has a template, named after the runner');
    if (dir === undefined) return;
    const shared = join(dir, 'data');
    t.equal(statSync(templateDir()).mode & 0o777, 0o700, 'template directory 0700');
    t.equal(statSync(join(templateDir(), 'keys.json')).mode & 0o777, 0o600, 'pooled keys 0600');
    const a = await initDataDir(t);
    const b = await initDataDir(t);
    t.not(a, b, 'each caller gets its own copy');
    t.not(a, shared, 'never the template itself');
    for (const dir of [shared, a]) {
      t.equal(statSync(dir).mode & 0o777, 0o700, `${dir} is 0700`);
      for (const f of ['root_private_key.pem', 'server/key.pem', 'admin/key.pem']) {
        t.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} is 0600`);
      }
    }
    // The KEK of a KDC's first start is there (0700 directory, 0600 file), at scrypt cost 2^14, and opens
    // with the test passphrase; `{ kek: false }` leaves it out.
    const kekFile = join(a, 'kek', 'kek-v1.bin');
    t.equal(statSync(join(a, 'kek')).mode & 0o777, 0o700, 'kek/ is 0700');
    t.equal(statSync(kekFile).mode & 0o777, 0o600, 'kek/kek-v1.bin is 0600');
    t.equal(readFileSync(kekFile).readUInt8(12), 14, 'scrypt cost 2^14 (header: magic, version, log2 N)');
    const ring = await KeyEncryptionKeys.open(a, TEST_CA_PASSPHRASE);
    t.same(ring.versions, [1], 'it opens with the test passphrase, and no other version is made');
    t.same(readdirSync(join(a, 'kek')), ['kek-v1.bin']);
    const bare = await initDataDir(t, { kek: false });
    t.notOk(existsSync(join(bare, 'kek')), '{ kek: false }: no kek/ at all');
    t.ok(existsSync(join(bare, 'root_private_key.pem')), 'and the rest of the copy');
    const [k0, k0again, k1] = await Promise.all([pooledKeyPair(0), pooledKeyPair(0), pooledKeyPair(1)]);
    t.equal(k0.publicKeyPem, k0again.publicKeyPem, 'the same index, the same pair');
    t.not(k0.publicKeyPem, k1.publicKeyPem, 'another index, another pair');
  },
);

t.test(
  'ownAndChildrenCpu reads fields 14-17 of /proc/<pid>/stat, whatever the command name holds',
  async (t) => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
    const stat = '42 (a) b (c) S 1 42 42 0 -1 4194304 10 0 0 0 150 50 1200 300 20 0 1 0';
    t.same(ownAndChildrenCpu(stat), { own: 2, children: 15 });
  },
);

t.test('KDSTEST_CPU_LOG: a test file logs its own CPU and that of the processes it waited for', async (t) => {
  const dir = tempDir(t, 'kds-cpu-log-');
  const file = join(dir, 'burn.test.js');
  const log = join(dir, 'cpu.tsv');
  // The child burns ~0.3 s or more of CPU; the test process itself only waits for it.
  writeFileSync(
    file,
    "import { spawnSync } from 'node:child_process';\n" +
      "spawnSync(process.execPath, ['-e', 'const end = process.cpuUsage().user + 300000; while (process.cpuUsage().user < end);']);\n",
  );
  const preload = join(REPO_ROOT, 'dist/test/helpers/preload.js');
  await run(process.execPath, [`--import=${preload}`, file], {
    env: { ...process.env, KDSTEST_CPU_LOG: log },
  });
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  t.equal(lines.length, 1, 'one line per test process');
  const [name, own, children, wall] = lines[0]!.split('\t');
  t.equal(name, file, 'the test file (the whole path: it is not under dist/test/)');
  t.ok(Number(children) >= 0.25, `the child's CPU is counted: ${children} s`);
  t.ok(Number(own) > 0 && Number(own) < Number(children), `the file's own CPU apart: ${own} s`);
  t.ok(Number(wall) > 0, 'and its wall time');
  // Without the variable nothing is written.
  await run(process.execPath, [`--import=${preload}`, file], {
    env: { ...process.env, KDSTEST_CPU_LOG: '' },
  });
  t.equal(readFileSync(log, 'utf8').trim().split('\n').length, 1);
});
