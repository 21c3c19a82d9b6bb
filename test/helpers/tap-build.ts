// Part of `npm install` and `npm test` (prepare, pretest): rebuild tap's Test class when .taprc's plugin
// list is not the one it was built with. tap checks this itself, but only after its runner has loaded the
// old class, whose module loaders (TypeScript, mock) it then passes to every test process of that run:
// ~0.6 s of CPU per test file, on every CI run, since `npm ci` installs the default build. Rebuilding
// first makes the first run as lean as the next. Costs ~0.4 s when nothing is to be done.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { TapConfig } from '@tapjs/config';
import { signature } from '@tapjs/test';
import { REPO_ROOT } from './kds-process.js';

const config = await TapConfig.load();
if (config.pluginSignature !== signature) {
  const r = spawnSync(join(REPO_ROOT, 'node_modules', '.bin', 'tap'), ['build'], {
    cwd: REPO_ROOT,
    stdio: 'inherit',
  });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
