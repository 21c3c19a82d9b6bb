// sessions (docs/performance.md): resident memory per idle authenticated session on the KDC at 1,000 and
// 5,000 concurrent sessions (target < 20 KiB each), and the time for a revocation push to reach all of
// them. The KDC runs in its own process with --expose-gc (memory read after full collections); the
// sessions are held by one client process. All sessions of a step belong to ONE client certificate, so
// revoking it must push `cert.revoked` to every one of them and close them all: the time to notify all
// is from just before CertificateAuthority.revoke in the KDC to the last push received by the client
// (process.hrtime is CLOCK_MONOTONIC, comparable across processes), and `revoke_ack` is when revoke()
// returned (every session closed: revocation is acknowledged only after that).
//
// RSS is the process's, so it also moves with things that are not sessions: V8's young generation
// (sized by the allocation RATE of the handshakes, not by the sessions held) and the native allocator's
// arenas (the thread-pool threads that sign keep theirs). Each repetition therefore starts a fresh
// KDC, warms it with as many handshakes as the 1k step at the same concurrency while never holding
// more than WARM sessions, takes the baseline there, and the figures are the median, min and max over
// REPS such processes.
//
// Idle. Right after a step the KDC has just run 1,000 (or 4,000) handshakes, and the young
// generation they grew (16-24 MiB) is resident: 13-15 KiB of a 1k "per session" figure, the same for
// any number of sessions. V8 gives it back at the first full GC that finds the allocation rate low
// (Heap::ReduceNewSpaceSize: under ~1 MB/s over its 5 s window), which its memory reducer runs in an
// idle process; measured: 97.6 MiB with 1k sessions just opened, 82.5 MiB 10 s later with the same
// sessions held. So the baseline and every step are read twice: right after the step (the `*_1k`,
// `*_5k` figures: a KDC just after a burst of handshakes) and IDLE_MS later with nothing happening
// (`*_idle`: an idle KDC holding N idle sessions). The target is read on the idle figures.
import { BENCH_PASSPHRASE, createBenchCa, issueBenchClients } from './fixture.js';
import { machine, ratio, summarize, type BenchResult, type Figure } from './harness.js';
import { Worker } from './load/ipc.js';

const STEPS = [1_000, 5_000] as const;
const CONCURRENCY = 64;
const WARM = 100;
const WARM_ROUNDS = 10;
const REPS = 3;
/** Certificates per repetition: the warm-up's, the 1k step's and the 5k step's. */
const CERTS_PER_REP = 3;
/** Quiet time before an `*_idle` reading: longer than V8's 5 s allocation-throughput window. */
const IDLE_MS = 7_000;
const KIB = 1024;
const MIB = 2 ** 20;

interface Mem {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** V8 heap space sizes by name (bench/load/kdc-server.ts). */
  spaces: Record<string, number>;
  /** Their resident parts. */
  physical: Record<string, number>;
}

/**
 * Growth of the resident part of V8's young generation (its allocation nursery) from `a` to `b`. After
 * the full GCs it holds no session (survivors are promoted), but its pages become resident as the
 * handshakes' allocations first flow through them, so RSS grows with the handshake RATE, once.
 */
function youngGrowth(a: Mem, b: Mem): number {
  return (b.physical.new_space ?? 0) - (a.physical.new_space ?? 0);
}

function label(n: number): string {
  return `${n / 1000}k`;
}

export async function run(): Promise<BenchResult> {
  const bench = await createBenchCa({ prefix: 'kds-bench-sessions-' });
  const workers: Worker[] = [];
  const samples: Record<string, { values: number[]; unit: string }> = {};
  const add = (name: string, value: number, unit: string) => {
    (samples[name] ??= { values: [], unit }).values.push(value);
  };
  try {
    const clients = await issueBenchClients(bench.dataDir, 'sess', REPS * CERTS_PER_REP);
    const load = Worker.start('load/session-client.js');
    workers.push(load);
    for (let rep = 0; rep < REPS; rep++) {
      const kdc = Worker.start('load/kdc-server.js', { execArgv: ['--expose-gc'] });
      try {
        await oneProcess(
          bench,
          kdc,
          load,
          clients.slice(rep * CERTS_PER_REP, (rep + 1) * CERTS_PER_REP),
          add,
        );
      } finally {
        await kdc.stop();
      }
    }
    const figures: Record<string, Figure> = {};
    for (const [name, s] of Object.entries(samples)) figures[name] = summarize(s.values, s.unit);
    const kib = (name: string) => figures[name]!.median;
    const ratios: Record<string, number> = {
      rss_per_session_1k_idle_vs_20KiB: ratio(kib('rss_per_session_1k_idle'), 20),
      rss_per_session_5k_idle_vs_20KiB: ratio(kib('rss_per_session_5k_idle'), 20),
      rss_per_session_1k_vs_20KiB: ratio(kib('rss_per_session_1k'), 20),
      rss_per_session_5k_vs_20KiB: ratio(kib('rss_per_session_5k'), 20),
      rss_per_session_1k_without_young_gen_vs_20KiB: ratio(kib('rss_per_session_1k_without_young_gen'), 20),
      rss_per_session_5k_without_young_gen_vs_20KiB: ratio(kib('rss_per_session_5k_without_young_gen'), 20),
      rss_marginal_vs_20KiB: ratio(kib('rss_marginal_per_session'), 20),
    };
    return {
      machine: machine(),
      figures,
      ratios,
      notes: [
        `${REPS} KDC processes (--expose-gc, memory read after full GCs), one after the other; each warmed with ${WARM_ROUNDS} rounds of ${WARM} sessions opened and closed (as many handshakes as the 1k step, ${CONCURRENCY} in flight, never more than ${WARM} held), then the baseline (idle, see *_idle); all sessions of a step share one certificate`,
        'per-session figures = (RSS right after the N sessions opened - RSS at the baseline) / N, including any growth of the heap, the young generation and the native allocator during the step; warmup_* = what the warm-up itself left behind with no session held (not counted per session); *_without_young_gen subtract the growth of the resident part of V8 young generation (physical_space_size of new_space), which holds no session after the full GCs',
        `rss_marginal_per_session = (RSS at ${STEPS[1]} - RSS at ${STEPS[0]}, both idle) / ${STEPS[1] - STEPS[0]}: what one more idle session costs`,
        'notify_all: revoke() called in the KDC -> the last session received cert.revoked; revoke_ack: revoke() returned (all closed)',
        `*_idle: (RSS with N sessions, read after ${IDLE_MS / 1000} s without load - the baseline read the same way) / N; idle_young_gen = V8's resident young generation at those readings (it is given back at the first full GC with a low allocation rate)`,
        'target: rss per session < 20 KiB at 1k and 5k (read on the idle figures)',
      ],
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    bench.remove();
  }
}

async function oneProcess(
  bench: { dataDir: string; caCertPem: string },
  kdc: Worker,
  load: Worker,
  certs: { certPem: string; keyPem: string; serialHex: string }[],
  add: (name: string, value: number, unit: string) => void,
): Promise<void> {
  const { url } = await kdc.call<{ url: string }>('start', {
    dataDir: bench.dataDir,
    passphrase: BENCH_PASSPHRASE,
  });
  const hold = async (cert: number, count: number) => {
    const r = await load.call<{ ms: number; errors: number; firstError?: string; held: number }>('hold', {
      url,
      caCertPem: bench.caCertPem,
      client: { certPem: certs[cert]!.certPem, keyPem: certs[cert]!.keyPem },
      count,
      concurrency: CONCURRENCY,
    });
    if (r.errors > 0) throw new Error(`${r.errors} sessions failed to open: ${r.firstError}`);
    return r;
  };
  const waitSessions = async (count: number) => {
    for (let k = 0; k < 3000 && (await kdc.call<number>('sessions')) !== count; k++) {
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const mem = () => kdc.call<Mem>('mem');
  /** mem() after IDLE_MS with no load (its full GCs then find the allocation rate low). */
  const idleMem = async () => {
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const m = await mem();
    add('idle_young_gen', (m.physical.new_space ?? 0) / MIB, 'MiB');
    return m;
  };
  /** Revoke the step's certificate: every held session must get the push. */
  const revokeAll = async (cert: number, n: number) => {
    await load.call('armPush');
    const rev = await kdc.call<{ before: bigint; after: bigint }>('revoke', {
      serialHex: certs[cert]!.serialHex,
    });
    const push = await load.call<{ received: number; first?: bigint; last?: bigint }>('waitPush', {
      timeoutMs: 120_000,
    });
    if (push.received !== n || push.last === undefined || push.first === undefined) {
      throw new Error(`revocation push reached ${push.received} of ${n} sessions`);
    }
    add(`notify_all_${label(n)}`, Number(push.last - rev.before) / 1e6, 'ms');
    add(`notify_first_${label(n)}`, Number(push.first - rev.before) / 1e6, 'ms');
    add(`revoke_ack_${label(n)}`, Number(rev.after - rev.before) / 1e6, 'ms');
    await load.call('closeAll');
    await waitSessions(0);
  };
  const perSession = (name: string, bytes: number, n: number) => add(name, bytes / n / KIB, 'KiB');

  const cold = await mem();
  for (let r = 0; r < WARM_ROUNDS; r++) {
    await hold(0, WARM);
    await load.call('closeAll');
    await waitSessions(0);
  }
  const warm = await mem();
  add('warmup_rss_growth', (warm.rss - cold.rss) / MIB, 'MiB');
  add('warmup_young_gen_growth', ((warm.spaces.new_space ?? 0) - (cold.spaces.new_space ?? 0)) / MIB, 'MiB');
  // The baseline of every figure: the warmed KDC, idle, no session held.
  const base = await idleMem();

  // Step 1: 1,000 sessions from the baseline.
  const [n1, n5] = STEPS;
  const opened = await hold(1, n1);
  await waitSessions(n1);
  const m1 = await mem();
  add('open_rate_1k', (n1 / opened.ms) * 1000, 'sessions/s');
  perSession('rss_per_session_1k', m1.rss - base.rss, n1);
  perSession('rss_per_session_1k_without_young_gen', m1.rss - base.rss - youngGrowth(base, m1), n1);
  perSession('heap_per_session_1k', m1.heapUsed - base.heapUsed, n1);
  perSession('external_per_session_1k', m1.external - base.external, n1);
  const m1Idle = await idleMem();
  perSession('rss_per_session_1k_idle', m1Idle.rss - base.rss, n1);
  await revokeAll(1, n1);

  // Step 2: 5,000 sessions (in the same process, after step 1's were closed), read at 1,000 and 5,000
  // so the slope (the cost of one more session) is free of one-time growth.
  await hold(2, n1);
  await waitSessions(n1);
  const m5a = await idleMem();
  const more = await hold(2, n5 - n1);
  await waitSessions(n5);
  const m5 = await mem();
  add('open_rate_5k', ((n5 - n1) / more.ms) * 1000, 'sessions/s');
  perSession('rss_per_session_5k', m5.rss - base.rss, n5);
  perSession('rss_per_session_5k_without_young_gen', m5.rss - base.rss - youngGrowth(base, m5), n5);
  perSession('heap_per_session_5k', m5.heapUsed - base.heapUsed, n5);
  perSession('external_per_session_5k', m5.external - base.external, n5);
  perSession('heap_marginal_per_session', m5.heapUsed - m5a.heapUsed, n5 - n1);
  const m5Idle = await idleMem();
  perSession('rss_per_session_5k_idle', m5Idle.rss - base.rss, n5);
  // Both ends idle: what one more idle session costs, free of one-time growth.
  perSession('rss_marginal_per_session', m5Idle.rss - m5a.rss, n5 - n1);
  await revokeAll(2, n5);
}
