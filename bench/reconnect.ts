// reconnect (docs/performance.md): a reconnect storm. N clients (default 2,000; KDS_BENCH_STORM_CLIENTS
// scales it) hold live authenticated sessions, each with its resumption ticket (docs/protocol.md
// "Resumption"); the KDC process is killed (SIGKILL: a crash, nothing of its own runs) and started again
// on the same port and data directory, and every client reconnects at once (STORM_CONCURRENCY
// handshakes in flight from the one load process). Measured: the time from the restarted KDC
// listening to the last client back in session, and the KDC's CPU per reconnect, with resumption (the
// tickets survive the restart: their keys live in the store) and without (a full handshake each).
// Resumed and full storms alternate, in the same run, so a drifting machine load hits both alike.
//   storm_resumed_vs_full            = time until all are back, resumed / full (target <= 0.4)
//   storm_resumed_vs_full_server_cpu = KDC CPU per reconnect, resumed / full
// The load generator runs on the same cores as the KDC and a full handshake costs it an RSA signature
// too, which real clients spread over their own machines: the time ratio includes that client-side
// cost, and the KDC CPU ratio is the one free of it.
import { BENCH_PASSPHRASE, createBenchCa, issueBenchClients } from './fixture.js';
import { machine, ratio, summarize, type BenchResult } from './harness.js';
import { Worker } from './load/ipc.js';

const DEFAULT_CLIENTS = 2_000;
/** Client certificates the sessions share (a ticket is per session, not per certificate). */
const CERTIFICATES = 32;
/** Handshakes in flight while reconnecting (below the KDC's unauthenticated-connection limit). */
const STORM_CONCURRENCY = 128;
/** Storms of each kind, alternated. */
const PAIRS = 3;

function stormClients(): number {
  const raw = process.env.KDS_BENCH_STORM_CLIENTS;
  if (raw === undefined || raw === '') return DEFAULT_CLIENTS;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`KDS_BENCH_STORM_CLIENTS: expected a count, got ${raw}`);
  return n;
}

interface StormResult {
  ms: number;
  errors: number;
  firstError?: string;
}

export async function run(): Promise<BenchResult> {
  const n = stormClients();
  const bench = await createBenchCa({ prefix: 'kds-bench-reconnect-' });
  const workers: Worker[] = [];
  try {
    const clients = (await issueBenchClients(bench.dataDir, 'storm', CERTIFICATES)).map((c) => ({
      certPem: c.certPem,
      keyPem: c.keyPem,
    }));
    const startKdc = async (port?: number): Promise<{ kdc: Worker; url: string; ms: number }> => {
      const t0 = process.hrtime.bigint();
      const kdc = Worker.start('load/kdc-server.js');
      workers.push(kdc);
      const { url } = await kdc.call<{ url: string }>('start', {
        dataDir: bench.dataDir,
        passphrase: BENCH_PASSPHRASE,
        maxUnauthenticated: 4 * STORM_CONCURRENCY,
        ...(port === undefined ? {} : { port }),
      });
      return { kdc, url, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
    };
    const first = await startKdc();
    let kdc = first.kdc;
    const url = first.url;
    const port = Number(new URL(url).port);
    const load = Worker.start('load/session-client.js');
    workers.push(load);
    const hold = await load.call<StormResult & { held: number }>('holdResumable', {
      url,
      caCertPem: bench.caCertPem,
      clients,
      count: n,
      concurrency: STORM_CONCURRENCY,
    });
    if (hold.errors > 0) throw new Error(`${hold.errors} sessions failed to open: ${hold.firstError}`);

    const times = { resumed: [] as number[], full: [] as number[] };
    const cpu = { resumed: [] as number[], full: [] as number[] };
    // The load process's CPU too: on a loaded machine the clients' half may set the pace.
    const clientCpu = { resumed: [] as number[], full: [] as number[] };
    const restarts: number[] = [];
    for (let pair = 0; pair < PAIRS; pair++) {
      const order = pair % 2 === 0 ? (['resumed', 'full'] as const) : (['full', 'resumed'] as const);
      for (const kind of order) {
        await kdc.kill();
        const restarted = await startKdc(port);
        kdc = restarted.kdc;
        restarts.push(restarted.ms);
        const c0 = await kdc.call<number>('cpu');
        const l0 = await load.call<number>('cpu');
        const storm = await load.call<StormResult>('reconnect', {
          url,
          caCertPem: bench.caCertPem,
          resume: kind === 'resumed',
          concurrency: STORM_CONCURRENCY,
        });
        const c1 = await kdc.call<number>('cpu');
        const l1 = await load.call<number>('cpu');
        if (storm.errors > 0) throw new Error(`${kind} storm: ${storm.errors} failed: ${storm.firstError}`);
        times[kind].push(storm.ms);
        cpu[kind].push((c1 - c0) / n);
        clientCpu[kind].push((l1 - l0) / n);
      }
    }
    const fResumed = summarize(times.resumed, 'ms until all back in session');
    const fFull = summarize(times.full, 'ms until all back in session');
    const fResumedCpu = summarize(cpu.resumed, 'us KDC CPU/reconnect');
    const fFullCpu = summarize(cpu.full, 'us KDC CPU/reconnect');
    return {
      machine: machine(),
      figures: {
        storm_resumed_ms: fResumed,
        storm_full_ms: fFull,
        storm_resumed_server_cpu_per_client: fResumedCpu,
        storm_full_server_cpu_per_client: fFullCpu,
        storm_resumed_client_cpu_per_client: summarize(clientCpu.resumed, 'us load-process CPU/reconnect'),
        storm_full_client_cpu_per_client: summarize(clientCpu.full, 'us load-process CPU/reconnect'),
        kdc_restart_ms: summarize(restarts, 'ms from kill to listening'),
      },
      ratios: {
        storm_resumed_vs_full: ratio(fResumed.median, fFull.median),
        storm_resumed_vs_full_server_cpu: ratio(fResumedCpu.median, fFullCpu.median),
      },
      notes: [
        `${n} clients (KDS_BENCH_STORM_CLIENTS) on ${CERTIFICATES} certificates, ${STORM_CONCURRENCY} handshakes in flight from one load process; ${PAIRS} resumed and ${PAIRS} full storms, alternated`,
        'each storm: SIGKILL the KDC, start it again on the same port and data directory, then every client reconnects; the time runs from the KDC listening to the last client in session (a next ticket asked for is awaited afterwards, untimed; a resumed client keeps its ticket until it is due)',
        'the load generator shares the cores and pays an RSA signature per full handshake: the time ratio includes that, the KDC CPU ratio does not',
        'target: storm_resumed_vs_full <= 0.4',
      ],
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    bench.remove();
  }
}
