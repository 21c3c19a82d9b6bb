// The suite's own set-up (test/helpers/preload.ts, test/helpers/tap-build.ts): test processes run
// without the module loaders of the tap plugins .taprc leaves out, and the processes a test starts run
// without tap's process-info loader unless coverage is collected (then they keep it, to be covered).
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { withoutProcessInfo } from '../helpers/node-options.js';

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
