// What the KDC's event readers cost (docs/performance.md "Event log and metrics"): two KDC processes on
// one data directory, one with no reader at all (no metrics, no log), one as `kds server start` runs by
// default (metrics, plus the text log at info written to /dev/null), measured in the same run with
// alternating rounds so that drifting machine load hits both alike. Figures: the KDC's CPU per
// handshake and per KDC-generated key (create + delivery + verify + ack), and the throughput the
// client load reached against each.
import { BENCH_PASSPHRASE, createBenchCa, issueBenchClients } from './fixture.js';
import { machine, perSecond, ratio, summarize, warmUntilStable, type BenchResult } from './harness.js';
import { Worker } from './load/ipc.js';

const CLIENTS = 16;
const PAIRS = 40;
const CONCURRENCY = 16;
const HANDSHAKES_PER_ROUND = 300;
/** Keys per pair per round (key-pairs.ts counts per pair); the per-pair quota (128 active) bounds the rounds. */
const KEYS_PER_PAIR = 3;
const ROUNDS = 4;

interface RoundResult {
  ms: number;
  keys?: number;
  errors: number;
  firstError?: string;
}

function onReaders(): 'default' | 'metrics' | 'log' | 'off' {
  const v = process.env.KDS_BENCH_EVENTS_ON ?? 'default';
  if (v === 'default' || v === 'metrics' || v === 'log' || v === 'off') return v;
  throw new Error(`KDS_BENCH_EVENTS_ON: default, metrics, log or off, got ${v}`);
}

export async function run(): Promise<BenchResult> {
  const bench = await createBenchCa({ prefix: 'kds-bench-events-' });
  const workers: Worker[] = [];
  try {
    const clients = await issueBenchClients(bench.dataDir, 'hs', CLIENTS);
    const specs = clients.map((c) => ({ certPem: c.certPem, keyPem: c.keyPem }));
    const sides = [] as { label: 'off' | 'on'; kdc: Worker; hs: Worker; keys: Worker; url: string }[];
    for (const label of ['off', 'on'] as const) {
      const kdc = Worker.start('load/kdc-server.js');
      const hs = Worker.start('load/session-client.js');
      const keys = Worker.start('load/key-pairs.js');
      workers.push(kdc, hs, keys);
      const { url } = await kdc.call<{ url: string }>('start', {
        dataDir: bench.dataDir,
        passphrase: BENCH_PASSPHRASE,
        // KDS_BENCH_EVENTS_ON: what the "on" side runs: default (metrics + log), metrics, log, or off
        // (an A/A run: the noise floor of the comparison).
        events: label === 'off' ? 'off' : onReaders(),
      });
      // Disjoint pairs per KDC: a key's live delivery comes from the KDC that created it.
      const alices = await issueBenchClients(bench.dataDir, `alice-${label}`, PAIRS);
      const bobs = await issueBenchClients(bench.dataDir, `bob-${label}`, PAIRS);
      await keys.call('setup', {
        url,
        caCertPem: bench.caCertPem,
        pairs: alices.map((a, i) => ({ alice: a, bob: bobs[i]! })),
      });
      sides.push({ label, kdc, hs, keys, url });
    }
    const measure = async (
      side: (typeof sides)[number],
      what: 'handshakes' | 'keys',
    ): Promise<{ rate: number; cpu: number }> => {
      const c0 = await side.kdc.call<number>('cpu');
      const r =
        what === 'handshakes'
          ? await side.hs.call<RoundResult>('handshakes', {
              url: side.url,
              caCertPem: bench.caCertPem,
              clients: specs,
              count: HANDSHAKES_PER_ROUND,
              concurrency: CONCURRENCY,
            })
          : await side.keys.call<RoundResult>('run', { mode: 'kdc', count: KEYS_PER_PAIR });
      const count = what === 'handshakes' ? HANDSHAKES_PER_ROUND : (r.keys ?? 0);
      const c1 = await side.kdc.call<number>('cpu');
      if (r.errors > 0)
        throw new Error(`${r.errors} ${what} failed on the ${side.label} KDC: ${r.firstError}`);
      return { rate: perSecond(count, r.ms), cpu: (c1 - c0) / count };
    };
    for (const side of sides) {
      await warmUntilStable(async () => (await measure(side, 'handshakes')).cpu, {
        minRounds: 2,
        maxRounds: 6,
        tolerance: 0.1,
      });
      await warmUntilStable(async () => (await measure(side, 'keys')).cpu, {
        minRounds: 2,
        maxRounds: 6,
        tolerance: 0.1,
      });
    }
    // KDS_BENCH_PROFILE=<file.cpuprofile>: a V8 CPU profile of the KDC with its readers on, over the
    // measured rounds (where its event readers spend their time).
    const profile = process.env.KDS_BENCH_PROFILE;
    const onKdc = sides.find((s) => s.label === 'on')!.kdc;
    if (profile) await onKdc.call('profileStart');
    const samples: Record<string, number[]> = {};
    const add = (k: string, v: number): void => void (samples[k] ??= []).push(v);
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate which side goes first, so neither always runs on a warmer (or busier) machine.
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const what of ['handshakes', 'keys'] as const) {
        for (const side of order) {
          const m = await measure(side, what);
          add(`${what}_cpu_${side.label}`, m.cpu);
          add(`${what}_rate_${side.label}`, m.rate);
        }
      }
    }
    if (profile) await onKdc.call('profileStop', { path: profile });
    const fig = (k: string, unit: string) => summarize(samples[k]!, unit);
    const figures = {
      handshake_kdc_cpu_events_off: fig('handshakes_cpu_off', 'us/handshake'),
      handshake_kdc_cpu_events_on: fig('handshakes_cpu_on', 'us/handshake'),
      handshakes_per_s_events_off: fig('handshakes_rate_off', 'handshakes/s'),
      handshakes_per_s_events_on: fig('handshakes_rate_on', 'handshakes/s'),
      key_kdc_cpu_events_off: fig('keys_cpu_off', 'us/key'),
      key_kdc_cpu_events_on: fig('keys_cpu_on', 'us/key'),
      keys_per_s_events_off: fig('keys_rate_off', 'keys/s'),
      keys_per_s_events_on: fig('keys_rate_on', 'keys/s'),
    };
    return {
      machine: machine(),
      figures,
      ratios: {
        // > 1: the readers cost that fraction more KDC CPU per operation (1.05 = 5 %).
        handshake_cpu_on_vs_off: ratio(
          figures.handshake_kdc_cpu_events_on.median,
          figures.handshake_kdc_cpu_events_off.median,
        ),
        key_cpu_on_vs_off: ratio(figures.key_kdc_cpu_events_on.median, figures.key_kdc_cpu_events_off.median),
        // < 1: throughput lost with the readers on.
        handshake_rate_on_vs_off: ratio(
          figures.handshakes_per_s_events_on.median,
          figures.handshakes_per_s_events_off.median,
        ),
        key_rate_on_vs_off: ratio(figures.keys_per_s_events_on.median, figures.keys_per_s_events_off.median),
      },
      notes: [
        'off: no event reader (metrics off, no log); on: metrics + text log at info to /dev/null (the kds server start default)',
        `${ROUNDS} alternating rounds of ${HANDSHAKES_PER_ROUND} handshakes (concurrency ${CONCURRENCY}) and ${KEYS_PER_PAIR * PAIRS} KDC-generated keys over ${PAIRS} pairs per side`,
      ],
    };
  } finally {
    for (const w of workers) await w.stop().catch(() => undefined);
    bench.remove();
  }
}
