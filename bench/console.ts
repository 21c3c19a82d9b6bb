// What the live console costs a KDC under handshake load (docs/performance.md "console"): three KDC
// processes on copies of one data directory, two without the console ("off", and "aa", the A/A control
// whose ratio to "off" is this run's noise floor: two identical processes differ by several percent on
// this machine), one started with it and one page reading its feed (Server-Sent Events, read and thrown away, as a browser tab would), loaded in
// alternating rounds by one load generator so that drifting machine load hits both alike. The headline
// is the ratio of their server CPU per handshake: the median of the per-round pairs (each "on" round
// over the "off" round just before it), which cancels the load drifting between rounds better than a
// ratio of the two medians. The handshake benchmark reports the same comparison with fewer rounds.
//
//   KDS_BENCH_CONSOLE_ON=off       the "on" side runs without the console too: an A/A run, the noise floor
//   KDS_BENCH_CONSOLE_PAGE=0       the console on but no page reading it
//   KDS_BENCH_PROFILE=<file>       a V8 CPU profile of the "on" KDC over the measured rounds
import { cpSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { BENCH_PASSPHRASE, createBenchCa, issueBenchClients } from './fixture.js';
import { readFeed } from './console-page.js';
import { machine, perSecond, ratio, summarize, warmUntilStable, type BenchResult } from './harness.js';
import { Worker } from './load/ipc.js';

const CLIENTS = 32;
const CONCURRENCY = 32;
const PER_ROUND = 400;
const ROUNDS = 10;
const WARM_ROUND = 250;

interface RoundResult {
  ms: number;
  errors: number;
  firstError?: string;
}

export async function run(): Promise<BenchResult> {
  const loadBefore = loadavg();
  const bench = await createBenchCa({ prefix: 'kds-bench-console-' });
  const workers: Worker[] = [];
  const cleanups: (() => void)[] = [];
  try {
    const clients = await issueBenchClients(bench.dataDir, 'hs', CLIENTS);
    const specs = clients.map((c) => ({ certPem: c.certPem, keyPem: c.keyPem }));
    const consoleOn = process.env.KDS_BENCH_CONSOLE_ON !== 'off';
    const pageOn = process.env.KDS_BENCH_CONSOLE_PAGE !== '0';
    const load = Worker.start('load/session-client.js');
    workers.push(load);
    const sides: { label: 'off' | 'on' | 'aa'; kdc: Worker; url: string }[] = [];
    for (const label of ['off', 'on', 'aa'] as const) {
      const kdc = Worker.start('load/kdc-server.js');
      workers.push(kdc);
      const dataDir = `${bench.dataDir}-${label}`;
      cpSync(bench.dataDir, dataDir, { recursive: true });
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
      const withConsole = label === 'on' && consoleOn;
      const started = await kdc.call<{ url: string; consoleUrl?: string }>('start', {
        dataDir,
        passphrase: BENCH_PASSPHRASE,
        ...(withConsole ? { console: true } : {}),
      });
      if (withConsole && pageOn) {
        const page = await readFeed(`${started.consoleUrl!}/events`);
        cleanups.push(() => page.destroy());
      }
      sides.push({ label, kdc, url: started.url });
    }
    const measure = async (side: (typeof sides)[number], count: number) => {
      const c0 = await side.kdc.call<number>('cpu');
      const r = await load.call<RoundResult>('handshakes', {
        url: side.url,
        caCertPem: bench.caCertPem,
        clients: specs,
        count,
        concurrency: CONCURRENCY,
      });
      const c1 = await side.kdc.call<number>('cpu');
      if (r.errors > 0)
        throw new Error(`${r.errors} handshakes failed on the ${side.label} KDC: ${r.firstError}`);
      return { rate: perSecond(count, r.ms), cpu: (c1 - c0) / count };
    };
    type Side = (typeof sides)[number];
    const [off, on, aa] = sides as [Side, Side, Side];
    const warm: Record<string, number[]> = {};
    for (const side of sides)
      warm[side.label] = await warmUntilStable(async () => (await measure(side, WARM_ROUND)).cpu, {
        minRounds: 6,
        maxRounds: 12,
        tolerance: 0.08,
      });
    const offCpu: number[] = [];
    const onCpu: number[] = [];
    const offRate: number[] = [];
    const onRate: number[] = [];
    const pairs: number[] = [];
    const aaPairs: number[] = [];
    const profile = process.env.KDS_BENCH_PROFILE;
    if (profile) await on.kdc.call('profileStart');
    for (let r = 0; r < ROUNDS; r++) {
      // Which side goes first rotates too: a round right after another side's may inherit its
      // leftovers (a collection, a compile) on a 2-CPU machine.
      const order = [off, on, aa].map((_, i, all) => all[(i + r) % all.length]!);
      const got = new Map<Side, { rate: number; cpu: number }>();
      for (const side of order) got.set(side, await measure(side, PER_ROUND));
      const o = got.get(off)!;
      const c = got.get(on)!;
      aaPairs.push(got.get(aa)!.cpu / o.cpu);
      offCpu.push(o.cpu);
      onCpu.push(c.cpu);
      offRate.push(o.rate);
      onRate.push(c.rate);
      pairs.push(c.cpu / o.cpu);
    }
    if (profile) await on.kdc.call('profileStop', { path: profile });
    const fOff = summarize(offCpu, 'us CPU/handshake');
    const fOn = summarize(onCpu, 'us CPU/handshake');
    const fPairs = summarize(pairs, 'on/off');
    const fAaPairs = summarize(aaPairs, 'aa/off');
    const fOffRate = summarize(offRate, 'handshakes/s');
    const fOnRate = summarize(onRate, 'handshakes/s');
    const loadAfter = loadavg();
    return {
      machine: machine(),
      figures: {
        kds_server_cpu_per_handshake: fOff,
        kds_with_console_server_cpu_per_handshake: fOn,
        console_on_vs_off_per_round: fPairs,
        console_aa_vs_off_per_round: fAaPairs,
        kds_handshakes_per_s: fOffRate,
        kds_with_console_handshakes_per_s: fOnRate,
      },
      ratios: {
        console_on_vs_off_server_cpu: fPairs.median,
        console_aa_vs_off_server_cpu: fAaPairs.median,
        console_on_vs_off_server_cpu_medians: ratio(fOn.median, fOff.median),
        console_on_vs_off_rate: ratio(fOnRate.median, fOffRate.median),
      },
      notes: [
        `${ROUNDS} rounds x ${PER_ROUND} handshakes per side, rotating, ${CONCURRENCY} in flight; the "on" KDC ${consoleOn ? `runs the console${pageOn ? ' with one page reading' : ' with no page reading'}` : 'runs WITHOUT the console (A/A run)'}`,
        `warm-up (us CPU/handshake): off ${warm.off!.map((c) => c.toFixed(0)).join(' -> ')}; on ${warm.on!.map((c) => c.toFixed(0)).join(' -> ')}; aa ${warm.aa!.map((c) => c.toFixed(0)).join(' -> ')}`,
        'aa: a second KDC without the console, measured like the others: console_aa_vs_off_server_cpu is the noise floor of console_on_vs_off_server_cpu',
        `load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`,
        'target: console_on_vs_off_server_cpu < 1.05 (the console moves the handshake cost by less than 5%)',
      ],
    };
  } finally {
    for (const cleanup of cleanups) cleanup();
    await Promise.all(workers.map((w) => w.stop()));
    bench.remove();
  }
}
