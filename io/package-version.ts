// The version of kds, from its package.json, found from this file's own location: the installed
// package's, wherever the command runs (yargs' lookup starts at the working directory, so
// `kds --version` outside the repository printed "unknown").
import { readFileSync } from 'node:fs';

export function kdsVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
