// The console page's files: the HTML and CSS from web/console, the scripts tsc compiled from
// web/console/*.ts into dist/web/console. Read once when the console starts (a few tens of kB), served
// from memory; the set is fixed, so a request can never name a file outside it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EnvironmentError } from '../../shared/errors.js';

export interface Asset {
  type: string;
  body: Buffer;
}

/** dist/io/console/assets.js -> the checkout. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function loadConsoleAssets(root = ROOT): Map<string, Asset> {
  const source = join(root, 'web', 'console');
  const compiled = join(root, 'dist', 'web', 'console');
  if (!existsSync(join(compiled, 'app.js'))) {
    throw new EnvironmentError(
      'config',
      `the console's scripts are not built (${compiled}/app.js is missing): run npm run build`,
    );
  }
  const assets = new Map<string, Asset>([
    ['/console', { type: 'text/html; charset=utf-8', body: readFileSync(join(source, 'index.html')) }],
    [
      '/console/console.css',
      { type: 'text/css; charset=utf-8', body: readFileSync(join(source, 'console.css')) },
    ],
  ]);
  for (const file of readdirSync(compiled)) {
    if (!/^[a-z-]+\.js$/.test(file)) continue;
    assets.set(`/console/${file}`, {
      type: 'text/javascript; charset=utf-8',
      body: readFileSync(join(compiled, file)),
    });
  }
  return assets;
}
