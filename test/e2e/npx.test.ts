// `npx kds ...` (what the README has a user type) runs this checkout's bin/kds.js directly: npm finds
// node_modules/.bin/kds, which `npm install` links (bin/link-local-bin.js, the `prepare` script), and
// never copies the checkout into its npx cache to install and rebuild it (which took 31 s on a first
// call). npm takes that slow path whenever the project's own package.json declares a `kds` bin, so it
// declares none. Checked in a scratch project made of this checkout's package.json and launcher, with
// an empty npm cache and npm offline: after the link script, `npx --no-install kds --help` works twice
// and leaves nothing in the npx cache.
import t from 'tap';
import { execFile } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, kdsEnv } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(120_000);
const run = promisify(execFile);

t.test('package.json declares no `kds` bin (npx would install the checkout into its cache)', async (t) => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    bin?: Record<string, string>;
    scripts: Record<string, string>;
  };
  t.equal(pkg.bin?.kds, undefined);
  t.match(pkg.scripts.prepare, /node bin\/link-local-bin\.js/, 'npm install links node_modules/.bin/kds');
  // Without the link (before npm install), npx must not fetch and run a registry package named kds.
  t.match(readFileSync(join(REPO_ROOT, '.npmrc'), 'utf8'), /^yes=false$/m, '.npmrc: npx installs nothing');
});

t.test('a fresh install: the link, then npx runs it, offline, without its cache', async (t) => {
  const scratch = tempDir(t);
  copyFileSync(join(REPO_ROOT, 'package.json'), join(scratch, 'package.json'));
  mkdirSync(join(scratch, 'bin'));
  for (const f of ['kds.js', 'link-local-bin.js'])
    copyFileSync(join(REPO_ROOT, 'bin', f), join(scratch, 'bin', f));
  // The launcher imports ../dist/cli/kds.js: this checkout's build (its imports resolve from there).
  symlinkSync(join(REPO_ROOT, 'dist'), join(scratch, 'dist'));
  mkdirSync(join(scratch, 'node_modules'));
  const env: NodeJS.ProcessEnv = {
    ...kdsEnv(),
    npm_config_cache: join(scratch, 'npm-cache'),
    npm_config_offline: 'true',
  };
  delete env.NODE_OPTIONS;
  await run(process.execPath, [join(scratch, 'bin', 'link-local-bin.js')], { cwd: scratch, env });
  const link = join(scratch, 'node_modules', '.bin', 'kds');
  t.ok(lstatSync(link).isSymbolicLink(), 'node_modules/.bin/kds is a link');
  t.equal(readlinkSync(link), join('..', '..', 'bin', 'kds.js'), 'relative: it survives moving the checkout');
  t.equal(realpathSync(link), realpathSync(join(scratch, 'bin', 'kds.js')));
  // Twice: the script is idempotent (npm install after npm install).
  await run(process.execPath, [join(scratch, 'bin', 'link-local-bin.js')], { cwd: scratch, env });
  t.equal(realpathSync(link), realpathSync(join(scratch, 'bin', 'kds.js')));
  for (const call of ['first', 'second']) {
    const r = await run('npx', ['--no-install', 'kds', '--help'], { cwd: scratch, env });
    t.match(r.stdout, /kds <command> \[options\]/, `${call} call: kds --help`);
  }
  t.notOk(existsSync(join(scratch, 'npm-cache', '_npx')), 'npx installed nothing into its cache');
});

t.test("this checkout's own install has the link", async (t) => {
  const nm = join(REPO_ROOT, 'node_modules');
  if (lstatSync(nm).isSymbolicLink()) {
    // A git worktree sharing another checkout's node_modules: the link there belongs to that checkout.
    t.comment(`node_modules is shared from ${realpathSync(nm)}: checked the owner's link instead`);
    const owner = join(realpathSync(nm), '..');
    t.ok(existsSync(join(owner, 'bin', 'kds.js')), 'the owner is a kds checkout');
    return;
  }
  t.equal(realpathSync(join(nm, '.bin', 'kds')), realpathSync(join(REPO_ROOT, 'bin', 'kds.js')));
});
