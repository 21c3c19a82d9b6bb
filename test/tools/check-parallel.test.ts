// tools/check-parallel.js, which runs `npm run check`'s linters side by side: each command's output is
// printed whole, and the run fails when any command fails, with that command's exit status.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/kds-process.js';

const TOOL = join(REPO_ROOT, 'tools/check-parallel.js');

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [TOOL, ...args], { encoding: 'utf8', cwd: REPO_ROOT });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('every command runs; all succeed: exit 0 and each output printed', async (t) => {
  const r = run(['prettier --version', 'tsc --version']);
  t.equal(r.status, 0, r.stdout + r.stderr);
  t.match(r.stdout, /^\d+\.\d+\.\d+$/m, "prettier's version");
  t.match(r.stdout, /^Version \d+\.\d+/m, "tsc's version");
});

t.test('one command fails: the run fails with its status and names it, the other still ran', async (t) => {
  const r = run(['prettier --version', 'tsc --no-such-option']);
  t.equal(r.status, 1, 'tsc exits 1 on an unknown option');
  t.match(r.stdout, /tsc failed \(exit 1\)/);
  t.match(r.stdout, /no-such-option/, "tsc's own message is printed");
  t.match(r.stdout, /^\d+\.\d+\.\d+$/m, 'prettier ran too');
});

t.test('no command, or an empty one, is a usage error', async (t) => {
  t.equal(run([]).status, 2);
  t.equal(run(['']).status, 2);
  t.match(run([' ']).stderr, /usage:/);
});

t.test('a binary that is not installed fails the run', async (t) => {
  const r = run(['no-such-binary-kds']);
  t.equal(r.status, 1);
  t.match(r.stdout, /no-such-binary-kds/);
});
