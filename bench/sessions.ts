// sessions (issue 7 item 4): resident memory per idle authenticated session on the KDC at 1,000 and
// 5,000 concurrent sessions (target < 20 KiB each), and the time for a revocation push to reach all of
// them. The KDC runs in its own process with --expose-gc (memory read after full collections); the
// sessions are held by one client process. All sessions of a step belong to ONE client certificate, so
// revoking it must push `cert.revoked` to every one of them and close them all: the time to notify all
// is from just before CertificateAuthority.revoke in the KDC to the last push received by the client
// (process.hrtime is CLOCK_MONOTONIC, comparable across processes), and `revoke_ack` is when revoke()
// returned (every session closed: revocation is acknowledged only after that).
import { BENCH_PASSPHRASE, createBenchCa, issueBenchClients } from './fixture.js';
import { machine, ratio, summarize, type BenchResult, type Figure } from './harness.js';
import { Worker } from './load/ipc.js';

const STEPS = [1_000, 5_000] as const;
const CONCURRENCY = 64;
const WARM = 100;
const KIB = 1024;

interface Mem {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** V8 heap space sizes by name (bench/load/kdc-server.ts). */
  spaces: Record<string, number>;
}

function label(n: number): string {
  return `${n / 1000}k`;
}

export async function run(): Promise<BenchResult> {
  const bench = await createBenchCa({ prefix: 'kds-bench-sessions-' });
  const workers: Worker[] = [];
  const figures: Record<string, Figure> = {};
  const ratios: Record<string, number> = {};
  try {
    // Certificates: one for the warm-up, one per step (revoking it ends that step's sessions).
    const clients = await issueBenchClients(bench.dataDir, 'sess', 3);
    const spec = (i: number) => ({ certPem: clients[i]!.certPem, keyPem: clients[i]!.keyPem });
    const load = Worker.start('load/session-client.js');
    const kdc = Worker.start('load/kdc-server.js', { execArgv: ['--expose-gc'] });
    workers.push(load, kdc);
    const { url } = await kdc.call<{ url: string }>('start', {
      dataDir: bench.dataDir,
      passphrase: BENCH_PASSPHRASE,
    });
    const hold = async (client: number, count: number) => {
      const r = await load.call<{ ms: number; errors: number; firstError?: string; held: number }>('hold', {
        url,
        caCertPem: bench.caCertPem,
        client: spec(client),
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
    /** Revoke the step's certificate: every held session must get the push. */
    const revokeAll = async (client: number, n: number) => {
      await load.call('armPush');
      const rev = await kdc.call<{ before: bigint; after: bigint }>('revoke', {
        serialHex: clients[client]!.serialHex,
      });
      const push = await load.call<{ received: number; first?: bigint; last?: bigint }>('waitPush', {
        timeoutMs: 120_000,
      });
      if (push.received !== n || push.last === undefined || push.first === undefined) {
        throw new Error(`revocation push reached ${push.received} of ${n} sessions`);
      }
      figures[`notify_all_${label(n)}`] = summarize([Number(push.last - rev.before) / 1e6], 'ms');
      figures[`notify_first_${label(n)}`] = summarize([Number(push.first - rev.before) / 1e6], 'ms');
      figures[`revoke_ack_${label(n)}`] = summarize([Number(rev.after - rev.before) / 1e6], 'ms');
      await load.call('closeAll');
      await waitSessions(0);
    };
    const perSession = (name: string, bytes: number, n: number): number => {
      const kib = bytes / n / KIB;
      figures[name] = summarize([kib], 'KiB');
      return kib;
    };

    // Warm the code paths with a few sessions (closed again) before the baseline.
    await hold(0, WARM);
    await load.call('closeAll');
    await waitSessions(0);
    const base = await mem();

    // Step 1: 1,000 sessions from the baseline.
    const [n1, n5] = STEPS;
    const opened = await hold(1, n1);
    await waitSessions(n1);
    const m1 = await mem();
    figures.open_rate_1k = summarize([(n1 / opened.ms) * 1000], 'sessions/s');
    const rss1 = perSession('rss_per_session_1k', m1.rss - base.rss, n1);
    // The young generation is V8's allocation nursery: after the full GCs it holds no session (survivors
    // are promoted), but it grows with the handshake RATE and stays grown, all of it counted in RSS.
    const young1 = (m1.spaces.new_space ?? 0) - (base.spaces.new_space ?? 0);
    const rss1Net = perSession('rss_per_session_1k_without_young_gen', m1.rss - base.rss - young1, n1);
    perSession('heap_per_session_1k', m1.heapUsed - base.heapUsed, n1);
    perSession('external_per_session_1k', m1.external - base.external, n1);
    await revokeAll(1, n1);

    // Step 2: 5,000 sessions (in the same process, after step 1's were closed), read at 1,000 and 5,000
    // so the slope (the cost of one more session) is free of one-time growth.
    await hold(2, n1);
    await waitSessions(n1);
    const m5a = await mem();
    const more = await hold(2, n5 - n1);
    await waitSessions(n5);
    const m5 = await mem();
    figures.open_rate_5k = summarize([((n5 - n1) / more.ms) * 1000], 'sessions/s');
    const rss5 = perSession('rss_per_session_5k', m5.rss - base.rss, n5);
    const young5 = (m5.spaces.new_space ?? 0) - (base.spaces.new_space ?? 0);
    const rss5Net = perSession('rss_per_session_5k_without_young_gen', m5.rss - base.rss - young5, n5);
    perSession('heap_per_session_5k', m5.heapUsed - base.heapUsed, n5);
    perSession('external_per_session_5k', m5.external - base.external, n5);
    const marginal = perSession('rss_marginal_per_session', m5.rss - m5a.rss, n5 - n1);
    perSession('heap_marginal_per_session', m5.heapUsed - m5a.heapUsed, n5 - n1);
    await revokeAll(2, n5);

    ratios.rss_per_session_1k_vs_20KiB = ratio(rss1, 20);
    ratios.rss_per_session_5k_vs_20KiB = ratio(rss5, 20);
    ratios.rss_per_session_1k_without_young_gen_vs_20KiB = ratio(rss1Net, 20);
    ratios.rss_per_session_5k_without_young_gen_vs_20KiB = ratio(rss5Net, 20);
    ratios.rss_marginal_vs_20KiB = ratio(marginal, 20);
    return {
      machine: machine(),
      figures,
      ratios,
      notes: [
        `one KDC process (--expose-gc, memory read after full GCs), warmed with ${WARM} sessions; ${CONCURRENCY} handshakes in flight while opening; all sessions of a step share one certificate`,
        `per-session figures = (RSS with N sessions - RSS at the baseline) / N; they include one-time growth, above all V8's young generation, which grew by ${(young5 / 2 ** 20).toFixed(0)} MiB (driven by the handshake rate, not by the sessions held); the *_without_young_gen figures subtract that growth`,
        `rss_marginal_per_session = (RSS at ${n5} - RSS at ${n1}) / ${n5 - n1}: what one more idle session costs`,
        'notify_all: revoke() called in the KDC -> the last session received cert.revoked; revoke_ack: revoke() returned (all closed)',
        'target: rss per session < 20 KiB',
      ],
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    bench.remove();
  }
}
