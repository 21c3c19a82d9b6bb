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
}

function label(n: number): string {
  return `${n / 1000}k`;
}

export async function run(): Promise<BenchResult> {
  const bench = await createBenchCa({ prefix: 'kds-bench-sessions-' });
  const workers: Worker[] = [];
  const figures: Record<string, Figure> = {};
  const ratios: Record<string, number> = {};
  const notes: string[] = [];
  try {
    const clients = await issueBenchClients(bench.dataDir, 'sess', STEPS.length + 1);
    const load = Worker.start('load/session-client.js');
    workers.push(load);
    const spec = (i: number) => ({ certPem: clients[i]!.certPem, keyPem: clients[i]!.keyPem });

    // One fresh KDC process per step: RSS never shrinks back, so a step measured after another would
    // start from the previous step's high-water mark.
    for (const [i, n] of STEPS.entries()) {
      const kdc = Worker.start('load/kdc-server.js', { execArgv: ['--expose-gc'] });
      workers.push(kdc);
      const { url } = await kdc.call<{ url: string }>('start', { dataDir: bench.dataDir, passphrase: BENCH_PASSPHRASE });
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
      // Warm the code paths with a few sessions (closed again) before the baseline.
      await hold(STEPS.length, WARM);
      await load.call('closeAll');
      await waitSessions(0);

      const before = await kdc.call<Mem>('mem');
      const opened = await hold(i, n);
      await waitSessions(n);
      const after = await kdc.call<Mem>('mem');
      const rssPer = (after.rss - before.rss) / n / KIB;
      const heapPer = (after.heapUsed - before.heapUsed) / n / KIB;
      const externalPer = (after.external - before.external) / n / KIB;
      figures[`rss_per_session_${label(n)}`] = summarize([rssPer], 'KiB');
      figures[`heap_per_session_${label(n)}`] = summarize([heapPer], 'KiB');
      figures[`external_per_session_${label(n)}`] = summarize([externalPer], 'KiB');
      figures[`open_rate_${label(n)}`] = summarize([(n / opened.ms) * 1000], 'sessions/s');
      ratios[`rss_per_session_${label(n)}_vs_20KiB`] = ratio(rssPer, 20);

      await load.call('armPush');
      const rev = await kdc.call<{ before: bigint; after: bigint }>('revoke', { serialHex: clients[i]!.serialHex });
      const push = await load.call<{ received: number; held: number; first?: bigint; last?: bigint }>('waitPush', {
        timeoutMs: 120_000,
      });
      if (push.received !== n || push.last === undefined || push.first === undefined) {
        throw new Error(`revocation push reached ${push.received} of ${n} sessions`);
      }
      figures[`notify_all_${label(n)}`] = summarize([Number(push.last - rev.before) / 1e6], 'ms');
      figures[`notify_first_${label(n)}`] = summarize([Number(push.first - rev.before) / 1e6], 'ms');
      figures[`revoke_ack_${label(n)}`] = summarize([Number(rev.after - rev.before) / 1e6], 'ms');
      await load.call('closeAll');
      await kdc.stop();
    }
    notes.push(
      `memory: a fresh KDC process per step, warmed with ${WARM} sessions, read after full GCs before and after opening the sessions (${CONCURRENCY} handshakes in flight); all sessions of a step share one certificate`,
      'notify_all: revoke() called in the KDC -> the last of the sessions received cert.revoked; revoke_ack: revoke() returned (all closed)',
      'target: rss per session < 20 KiB',
    );
    return { machine: machine(), figures, ratios, notes };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    bench.remove();
  }
}
