// Instructions per full kds handshake on the KDC, counted by callgrind (docs/performance.md "handshake"):
// a figure the machine's load does not move, for comparing two builds of the server-side path when the
// CPU-time ratio of bench/handshake.ts cannot resolve a change (+-15% run to run on a shared machine).
//
//   node dist/bench/handshake-instructions.js [outDir]
//
// The KDC (bench/load/kdc-server.ts) runs under `valgrind --tool=callgrind --instr-atstart=no`; the real
// client library drives full handshakes from another process (bench/load/session-client.ts, each session
// asking for its resumption ticket as a client does). WARM handshakes run uninstrumented first (V8 tiers
// the handshake path up), then ROUNDS rounds of PER_ROUND, each zeroed before and dumped after
// (callgrind_control), so every dump is one round. Per round it prints the instructions per handshake of
// the whole process and of the main thread alone (`--separate-threads`: the other threads are V8's
// background compiler and GC helpers, and the libuv pool that signs); the dumps stay in outDir for
// `callgrind_annotate --inclusive=yes`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_PASSPHRASE, createBenchCa, issueBenchClients } from './fixture.js';
import { Worker } from './load/ipc.js';

const WARM = Number(process.env.KDS_BENCH_WARM ?? 2_000);
const ROUNDS = Number(process.env.KDS_BENCH_ROUNDS ?? 3);
const PER_ROUND = Number(process.env.KDS_BENCH_PER_ROUND ?? 150);
const CONCURRENCY = 8;
const CLIENTS = 16;

/** Instructions (callgrind's Ir) of the dump files of `label` (one per thread), summed and main alone. */
function dumpInstructions(dir: string, label: string): { total: number; main: number } {
  let total = 0;
  let main = 0;
  for (const f of readdirSync(dir).filter((n) => n.includes(`.${label}-`))) {
    const text = readFileSync(join(dir, f), 'utf8');
    const m = /^(?:totals|summary): (\d+)/m.exec(text);
    if (m === null) continue;
    total += Number(m[1]);
    if (f.endsWith('-01')) main += Number(m[1]);
  }
  return { total, main };
}

const outDir = process.argv[2] ?? join(tmpdir(), `kds-callgrind-${process.pid}`);
mkdirSync(outDir, { recursive: true });
const bench = await createBenchCa({ prefix: 'kds-bench-hs-instr-' });
const kdc = Worker.start('load/kdc-server.js', {
  execPath: 'valgrind',
  execArgv: [
    '--tool=callgrind',
    '--instr-atstart=no',
    '--separate-threads=yes',
    `--callgrind-out-file=${join(outDir, 'kdc.%p')}`,
    process.execPath,
  ],
});
const load = Worker.start('load/session-client.js');
try {
  const clients = (await issueBenchClients(bench.dataDir, 'hs', CLIENTS)).map((c) => ({
    certPem: c.certPem,
    keyPem: c.keyPem,
  }));
  const { url } = await kdc.call<{ url: string }>('start', {
    dataDir: bench.dataDir,
    passphrase: BENCH_PASSPHRASE,
    slow: true,
  });
  const round = async (count: number): Promise<void> => {
    const r = await load.call<{ errors: number; firstError?: string }>('handshakes', {
      url,
      caCertPem: bench.caCertPem,
      clients,
      count,
      concurrency: CONCURRENCY,
    });
    if (r.errors > 0) throw new Error(`${r.errors} handshakes failed: ${r.firstError}`);
  };
  for (let done = 0; done < WARM; done += 250) await round(Math.min(250, WARM - done));
  execFileSync('callgrind_control', ['-i', 'on', String(kdc.pid)], { stdio: 'ignore' });
  for (let r = 1; r <= ROUNDS; r++) {
    execFileSync('callgrind_control', ['-z', String(kdc.pid)], { stdio: 'ignore' });
    await round(PER_ROUND);
    execFileSync('callgrind_control', [`--dump=round${r}`, String(kdc.pid)], { stdio: 'ignore' });
    const { total, main } = dumpInstructions(outDir, `${kdc.pid}.${r}`);
    process.stdout.write(
      `round ${r}: ${(total / PER_ROUND / 1e6).toFixed(3)} M instructions per handshake (main thread ${(main / PER_ROUND / 1e6).toFixed(3)} M)\n`,
    );
  }
  process.stdout.write(`dumps: ${outDir}\n`);
} finally {
  await load.stop();
  await kdc.stop(60_000);
  bench.remove();
}
