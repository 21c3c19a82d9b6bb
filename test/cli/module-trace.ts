// A preload for test/cli/lazy-load.test.ts (`node --import <this> bin/kds.js ...`): records the URL of
// every module the process loads into the file named by MODULE_TRACE_OUT, one per line. ES modules are
// seen by a loader hook (module.register; the hooks run on their own thread on Node 20 and append as
// each module loads); CommonJS modules (yargs, and node-forge, better-sqlite3, ws, msgpackr however
// they were reached) are read from the CommonJS cache when the process exits.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const out = process.env.MODULE_TRACE_OUT;
if (out !== undefined && out !== '') {
  register('./module-trace-hooks.js', import.meta.url, { data: { out } });
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () => {
    const urls = Object.keys(cache).map((path) => pathToFileURL(path).href);
    appendFileSync(out, urls.map((u) => `${u}\n`).join(''));
  });
}
