// `npm run bench` runs every benchmark; `npm run bench -- <name> [<name>...]` runs the named ones.
import { report, type BenchResult } from './harness.js';

const BENCHMARKS = [
  'startup',
  'handshake',
  'keys',
  'issue',
  'revocation',
  'sessions',
  'store',
  'events',
  'reconnect',
  'cluster',
  'console',
] as const;

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(BENCHMARKS as readonly string[]).includes(w));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; choose from ${BENCHMARKS.join(', ')}\n`);
  process.exit(2);
}
let failed = false;
for (const name of wanted.length > 0 ? wanted : BENCHMARKS) {
  const mod = (await import(`./${name}.js`)) as { run: () => Promise<BenchResult> };
  try {
    report(name, await mod.run());
  } catch (err) {
    failed = true;
    process.stderr.write(`benchmark ${name} failed: ${(err as Error).stack ?? String(err)}\n`);
  }
}
process.exit(failed ? 1 : 0);
