// What the KDC's event readers cost (docs/performance.md "events"): three KDC processes on one data
// directory, two with no reader at all (no metrics, no log: "off", and "aa", the A/A control whose
// ratio to "off" is this run's noise floor), one as `kds server start` runs by default (metrics, plus
// the text log at info through its real writer to /dev/null), measured in the same run with
// alternating rounds so that drifting machine load hits all alike. Figures: the KDC's CPU per
// handshake and per KDC-generated key (create + delivery + verify + ack), the throughput the client
// load reached against each, and the readers' own work per handshake and per key measured in this
// process (bench/events-work.ts) over the "off" KDC's CPU per operation.
//
// KDS_BENCH_CALLGRIND=DIR: the KDCs run under `valgrind --tool=callgrind` and the figures are the
// instructions each executed per handshake and per key over fixed measured rounds (zeroed before each
// round and dumped after it with callgrind_control, into DIR): counts that the machine's load does not
// move. Slow (about 50 times): fewer operations per round, so V8 is still optimizing and sweeping during
// them, a share that differs from one KDC to another by up to 10% (docs/performance.md "events"); the
// readers' exact count per operation is bench/events-work.ts's under callgrind.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { measureEventsWork } from './events-work.js';
import { BENCH_PASSPHRASE, createBenchCa, issueBenchClients } from './fixture.js';
import { machine, perSecond, ratio, summarize, warmUntilStable, type BenchResult } from './harness.js';
import { Worker } from './load/ipc.js';

const CALLGRIND = process.env.KDS_BENCH_CALLGRIND;
const CLIENTS = 16;
const PAIRS = CALLGRIND === undefined ? 40 : 16;
const CONCURRENCY = CALLGRIND === undefined ? 16 : 4;
const HANDSHAKES_PER_ROUND = CALLGRIND === undefined ? 300 : 96;
/**
 * Keys per pair per round (key-pairs.ts counts per pair); the per-pair quota (128 active) bounds the
 * rounds: at most 6 warm-up rounds and 8 measured ones, 42 keys per pair.
 */
const KEYS_PER_PAIR = 3;
const ROUNDS = CALLGRIND === undefined ? 8 : 2;
const LABELS = ['off', 'aa', 'on'] as const;
type Label = (typeof LABELS)[number];

/** Instructions (callgrind's Ir) in the newest dump of `pid` in `dir`. */
function lastDumpInstructions(dir: string, label: Label, pid: number): number {
  const prefix = `kdc-${label}.${pid}.`;
  const dumps = readdirSync(dir)
    .filter((f) => f.startsWith(prefix))
    .sort((a, b) => Number(a.slice(prefix.length)) - Number(b.slice(prefix.length)));
  const text = readFileSync(join(dir, dumps[dumps.length - 1]!), 'utf8');
  const totals = /^(?:totals|summary): (\d+)/m.exec(text);
  if (totals === null) throw new Error(`no totals in ${dumps[dumps.length - 1]}`);
  return Number(totals[1]);
}

function callgrindControl(args: string[]): void {
  execFileSync('callgrind_control', args, { stdio: 'ignore' });
}

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
  if (CALLGRIND !== undefined) mkdirSync(CALLGRIND, { recursive: true });
  try {
    const clients = await issueBenchClients(bench.dataDir, 'hs', CLIENTS);
    const specs = clients.map((c) => ({ certPem: c.certPem, keyPem: c.keyPem }));
    const sides = [] as { label: Label; kdc: Worker; hs: Worker; keys: Worker; url: string }[];
    for (const label of LABELS) {
      const kdc = Worker.start(
        'load/kdc-server.js',
        CALLGRIND === undefined
          ? {}
          : {
              // Instrumented from the first measured round on (callgrind_control -i on): the start and
              // the JIT's warm-up run at valgrind's uninstrumented speed.
              execPath: 'valgrind',
              execArgv: [
                '--tool=callgrind',
                '--instr-atstart=no',
                `--callgrind-out-file=${join(CALLGRIND, `kdc-${label}.%p`)}`,
                process.execPath,
              ],
            },
      );
      const hs = Worker.start('load/session-client.js');
      const keys = Worker.start('load/key-pairs.js');
      workers.push(kdc, hs, keys);
      const { url } = await kdc.call<{ url: string }>('start', {
        dataDir: bench.dataDir,
        passphrase: BENCH_PASSPHRASE,
        // KDS_BENCH_EVENTS_ON: what the "on" side runs: default (metrics + log), metrics, log, or off
        // (then all three sides are identical).
        events: label === 'on' ? onReaders() : 'off',
        ...(CALLGRIND === undefined ? {} : { slow: true }),
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
    const load = async (side: (typeof sides)[number], what: 'handshakes' | 'keys'): Promise<RoundResult> => {
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
      if (r.errors > 0)
        throw new Error(`${r.errors} ${what} failed on the ${side.label} KDC: ${r.firstError}`);
      return r;
    };
    const count = (what: 'handshakes' | 'keys', r: RoundResult): number =>
      what === 'handshakes' ? HANDSHAKES_PER_ROUND : (r.keys ?? 0);
    // Per operation: CPU microseconds, or (callgrind) instructions.
    const measure = async (
      side: (typeof sides)[number],
      what: 'handshakes' | 'keys',
    ): Promise<{ rate: number; cost: number }> => {
      if (CALLGRIND !== undefined) {
        callgrindControl(['-z', String(side.kdc.pid)]);
        const r = await load(side, what);
        callgrindControl([`--dump=${what}`, String(side.kdc.pid)]);
        const n = count(what, r);
        return {
          rate: perSecond(n, r.ms),
          cost: lastDumpInstructions(CALLGRIND, side.label, side.kdc.pid) / n,
        };
      }
      const c0 = await side.kdc.call<number>('cpu');
      const r = await load(side, what);
      const c1 = await side.kdc.call<number>('cpu');
      const n = count(what, r);
      return { rate: perSecond(n, r.ms), cost: (c1 - c0) / n };
    };
    for (const side of sides) {
      for (const what of ['handshakes', 'keys'] as const) {
        if (CALLGRIND !== undefined) await load(side, what);
        else
          await warmUntilStable(async () => (await measure(side, what)).cost, {
            minRounds: 2,
            maxRounds: 6,
            tolerance: 0.1,
          });
      }
    }
    if (CALLGRIND !== undefined)
      for (const side of sides) callgrindControl(['-i', 'on', String(side.kdc.pid)]);
    // KDS_BENCH_PROFILE=<file.cpuprofile>: a V8 CPU profile of the KDC with its readers on, over the
    // measured rounds (where its event readers spend their time).
    const profile = process.env.KDS_BENCH_PROFILE;
    const onKdc = sides.find((s) => s.label === 'on')!.kdc;
    if (profile) await onKdc.call('profileStart');
    const samples: Record<string, number[]> = {};
    const add = (k: string, v: number): void => void (samples[k] ??= []).push(v);
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate which side goes first, so none always runs on a warmer (or busier) machine.
      const order = LABELS.map((_, i) => sides[(i + round) % sides.length]!);
      for (const what of ['handshakes', 'keys'] as const) {
        for (const side of order) {
          const m = await measure(side, what);
          add(`${what}_cost_${side.label}`, m.cost);
          add(`${what}_rate_${side.label}`, m.rate);
        }
      }
    }
    if (profile) await onKdc.call('profileStop', { path: profile });
    const unit = (what: string): string => (CALLGRIND === undefined ? `us/${what}` : `instructions/${what}`);
    const fig = (k: string, u: string) => summarize(samples[k]!, u);
    const cost = CALLGRIND === undefined ? 'cpu' : 'instructions';
    const figures: BenchResult['figures'] = {};
    for (const label of LABELS) {
      const side = label === 'aa' ? 'events_off_aa' : `events_${label}`;
      figures[`handshake_kdc_${cost}_${side}`] = fig(`handshakes_cost_${label}`, unit('handshake'));
      figures[`key_kdc_${cost}_${side}`] = fig(`keys_cost_${label}`, unit('key'));
      figures[`handshakes_per_s_${side}`] = fig(`handshakes_rate_${label}`, 'handshakes/s');
      figures[`keys_per_s_${side}`] = fig(`keys_rate_${label}`, 'keys/s');
    }
    const median = (k: string): number => figures[k]!.median;
    const ratios: BenchResult['ratios'] = {
      // > 1: the readers cost that fraction more KDC CPU (or instructions) per operation (1.05 = 5 %).
      [`handshake_${cost}_on_vs_off`]: ratio(
        median(`handshake_kdc_${cost}_events_on`),
        median(`handshake_kdc_${cost}_events_off`),
      ),
      [`key_${cost}_on_vs_off`]: ratio(
        median(`key_kdc_${cost}_events_on`),
        median(`key_kdc_${cost}_events_off`),
      ),
      // The A/A control: two identical KDCs without readers; how far from 1 this lands is the noise
      // floor the on/off ratios above are to be read against.
      [`handshake_${cost}_aa_vs_off`]: ratio(
        median(`handshake_kdc_${cost}_events_off_aa`),
        median(`handshake_kdc_${cost}_events_off`),
      ),
      [`key_${cost}_aa_vs_off`]: ratio(
        median(`key_kdc_${cost}_events_off_aa`),
        median(`key_kdc_${cost}_events_off`),
      ),
      // < 1: throughput lost with the readers on (scheduling noise on a shared machine).
      handshake_rate_on_vs_off: ratio(
        median('handshakes_per_s_events_on'),
        median('handshakes_per_s_events_off'),
      ),
      key_rate_on_vs_off: ratio(median('keys_per_s_events_on'), median('keys_per_s_events_off')),
    };
    // The same comparisons round by round (the three sides of a round run back to back, so a load
    // that drifts between rounds cancels out): the median of the per-round ratios.
    const paired = (what: 'handshakes' | 'keys', side: Label): number =>
      summarize(
        samples[`${what}_cost_${side}`]!.map((v, i) => ratio(v, samples[`${what}_cost_off`]![i]!)),
        '',
      ).median;
    ratios[`handshake_${cost}_on_vs_off_paired`] = paired('handshakes', 'on');
    ratios[`key_${cost}_on_vs_off_paired`] = paired('keys', 'on');
    ratios[`handshake_${cost}_aa_vs_off_paired`] = paired('handshakes', 'aa');
    ratios[`key_${cost}_aa_vs_off_paired`] = paired('keys', 'aa');
    if (CALLGRIND === undefined) {
      // The readers' own work, in this process (no network, no second process: steady under load), as a
      // share of the "off" KDC's CPU per operation.
      const work = {
        on: [] as { handshake: number; key: number }[],
        off: [] as { handshake: number; key: number }[],
      };
      for (let i = 0; i < 3; i++) {
        work.off.push(await measureEventsWork({ readers: 'off', operations: 20_000, inFlight: CONCURRENCY }));
        work.on.push(
          await measureEventsWork({ readers: onReaders(), operations: 20_000, inFlight: CONCURRENCY }),
        );
      }
      for (const what of ['handshake', 'key'] as const) {
        const extra = work.on.map((w, i) => w[what] - work.off[i]![what]);
        figures[`${what}_readers_work_in_process`] = summarize(extra, `us/${what}`);
        ratios[`${what}_readers_work_share`] = ratio(
          figures[`${what}_readers_work_in_process`]!.median,
          median(`${what}_kdc_cpu_events_off`),
        );
      }
    }
    return {
      machine: machine(),
      figures,
      ratios,
      notes: [
        `off, aa: no event reader (metrics off, no log); on: ${onReaders() === 'default' ? 'metrics + text log at info to /dev/null (the kds server start default)' : onReaders()}`,
        `${ROUNDS} rotating rounds of ${HANDSHAKES_PER_ROUND} handshakes (concurrency ${CONCURRENCY}) and ${KEYS_PER_PAIR * PAIRS} KDC-generated keys over ${PAIRS} pairs per side`,
        ...(CALLGRIND === undefined
          ? [
              "readers_work_share: the readers' work per operation in this process (bench/events-work.ts) over the off KDC's CPU per operation",
            ]
          : [`instructions counted by callgrind (dumps in ${CALLGRIND})`]),
      ],
    };
  } finally {
    for (const w of workers) await w.stop(CALLGRIND === undefined ? 10_000 : 120_000).catch(() => undefined);
    bench.remove();
  }
}
