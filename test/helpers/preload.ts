// Loaded into every test process before the test file (.taprc `node-arg: --import`). tap's process-info
// loader (@tapjs/processinfo) hooks child_process and puts itself into NODE_OPTIONS of every child, so
// each `node bin/kds.js ...` a test starts (and each child of that) runs its module hooks on a thread of
// their own: measured 0.55 s CPU instead of 0.22 s for `kds client status --help`, and the suite starts
// hundreds of them. Those hooks only record which files a process loaded, for coverage and for
// `tap --changed`; with coverage off (.taprc: disable-coverage) nothing reads the record, so children
// start without them. When coverage is collected (`npm run coverage`), children keep them: their code is
// covered too.
//
// The hook is process-on-spawn's, which keeps its listeners in a process-wide singleton and calls them in
// order: this listener runs after tap's and takes out what tap's added. Without that singleton (another
// tap), nothing changes and children merely start slower.

import { logCpuOnExit } from './cpu-log.js';
import { withoutProcessInfo } from './node-options.js';
import { testTmpdir } from './test-tmpdir.js';

// Temporary directories on a tmpfs when there is one with room (test/helpers/test-tmpdir.ts says why).
const tmp = testTmpdir(process.env);
if (tmp !== undefined) process.env.TMPDIR = tmp;

interface SpawnOptions {
  env: Record<string, string | undefined>;
}

const spawnHooks = (globalThis as Record<symbol, unknown>)[Symbol.for('process-on-spawn@*:singletonId')] as
  | { listeners: ((opts: SpawnOptions) => void)[] }
  | undefined;

if (process.env._TAPJS_PROCESSINFO_COVERAGE_ !== '1' && spawnHooks !== undefined) {
  spawnHooks.listeners.push((opts) => {
    const env: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(opts.env)) if (!k.startsWith('_TAPJS_PROCESSINFO_')) env[k] = v;
    const nodeOptions = withoutProcessInfo(env.NODE_OPTIONS);
    if (nodeOptions === undefined) delete env.NODE_OPTIONS;
    else env.NODE_OPTIONS = nodeOptions;
    opts.env = env;
  });
}

logCpuOnExit(process.env, process.argv[1]);
