// `npm run check`'s linters side by side: eslint (type-aware, ~45 s) and prettier (~20 s) each leave a
// core idle most of the time, so running them one after the other cost CI ~20 s for nothing. Each tool's
// output is printed whole once it ends (never interleaved), and the exit status is the first failure's.
// Usage: node tools/check-parallel.js '<command> <args...>' ... (each command is a binary of
// node_modules/.bin, split on spaces: no shell).
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const commands = process.argv.slice(2).map((c) => c.split(' ').filter((w) => w !== ''));
if (commands.length === 0 || commands.some((c) => c.length === 0)) {
  process.stderr.write("usage: node tools/check-parallel.js '<command> <args...>' ...\n");
  process.exit(2);
}

function run([bin, ...args]) {
  return new Promise((resolve) => {
    const out = [];
    const child = spawn(join(root, 'node_modules', '.bin', bin), args, {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => out.push(d));
    child.on('error', (err) => resolve({ bin, code: 1, out: [Buffer.from(`${bin}: ${err.message}\n`)] }));
    child.on('close', (code, signal) => resolve({ bin, code: code ?? (signal ? 1 : 0), out }));
  });
}

let status = 0;
await Promise.all(
  commands.map(async (c) => {
    const r = await run(c);
    process.stdout.write(Buffer.concat(r.out));
    if (r.code !== 0) {
      process.stdout.write(`${r.bin} failed (exit ${r.code})\n`);
      if (status === 0) status = r.code;
    }
  }),
);
process.exit(status);
