#!/usr/bin/env node
// Part of `npm install` (the `prepare` script): link node_modules/.bin/kds -> ../../bin/kds.js, so that
// `npx kds ...` in the checkout runs bin/kds.js at once. npm only links the bins of dependencies, never
// the project's own; and when the project's package.json declares a `kds` bin, `npx kds` copies the
// whole checkout into npm's cache, installs and rebuilds it there (31 s on a first call, ~1 s more than
// `node bin/kds.js` on every later one). So package.json declares no bin and this link does the job.
// Idempotent; a relative link, so the checkout can be moved.
import { lstatSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binDir = join(root, 'node_modules', '.bin');
const link = join(binDir, 'kds');
const target = join('..', '..', 'bin', 'kds.js');

mkdirSync(binDir, { recursive: true });
let current;
try {
  current = lstatSync(link).isSymbolicLink() ? readlinkSync(link) : null;
} catch {
  current = undefined; // nothing there yet
}
if (current !== target) {
  if (current !== undefined) unlinkSync(link);
  symlinkSync(target, link);
}
