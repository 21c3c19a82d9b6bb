// issue (issue 7 item 2): certificates issued per second from CSRs over the network, through the
// enrollment path (token check and consumption, CSR proof of possession and policy, store writes,
// signing with the root key), versus the raw node:crypto signing rate of the same CA key measured in the
// same run (callback form, the same concurrency). Target: >= 0.6x of raw signing.
//
// The KDC runs in its own process, the enrolling clients in another; tokens and CSRs are prepared
// before the clock starts (a client's key generation and CSR signing are the client's business). Two
// shapes:
//   established: 32 enroll sessions opened first, the requests spread over them (the issuance path
//                alone: the headline figure and the ratio). Since session 3 the sessions are opened
//                before the KDC's CPU window and closed after it: their 32 handshakes (~0.4 ms of KDC
//                CPU per certificate of a 160-certificate run) are not issuance; "full" counts them;
//   full:        one new enroll session per certificate, as `kds client enroll` does (adds a handshake,
//                i.e. one more RSA-2048 signature for the KDC, per certificate).
import { sign, constants, randomBytes, type KeyObject } from 'node:crypto';
import { createCsr } from '../shared/pki/csr.js';
import { decryptPrivateKey, readText } from '../server/ca/credentials.js';
import { caPaths } from '../server/ca/files.js';
import { BENCH_PASSPHRASE, benchKeyPair, createBenchCa } from './fixture.js';
import {
  machine,
  perSecond,
  percentile,
  ratio,
  summarize,
  wallTime,
  warmUntilStable,
  type BenchResult,
} from './harness.js';
import { Worker } from './load/ipc.js';

const CONCURRENCY = 32;
const RUNS = 5;
const PER_RUN = 192;
const FULL = 96;
const WARM_ROUND = 96;

/**
 * Signatures per second with the callback form, `concurrency` in flight, over TBS-sized data, and the
 * CPU time (this process, every thread) per signature.
 */
export async function rawSignRate(
  key: KeyObject,
  count: number,
  concurrency: number,
): Promise<{ rate: number; cpuUs: number }> {
  const data = randomBytes(900); // about the size of a kds client TBSCertificate
  let next = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) =>
      sign('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  const before = process.cpuUsage();
  const ms = await wallTime(() =>
    Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) {
          next += 1;
          await one();
        }
      }),
    ),
  );
  const used = process.cpuUsage(before);
  return { rate: perSecond(count, ms), cpuUs: (used.user + used.system) / count };
}

interface EnrollResult {
  ms: number;
  issued: number;
  errors: number;
  firstError?: string;
  latencies: number[];
}

export async function run(): Promise<BenchResult> {
  const bench = await createBenchCa({ prefix: 'kds-bench-issue-' });
  const workers: Worker[] = [];
  try {
    const caKey = decryptPrivateKey(readText(caPaths(bench.dataDir).rootKey), BENCH_PASSPHRASE);
    const kdc = Worker.start('load/kdc-server.js');
    const load = Worker.start('load/session-client.js');
    workers.push(kdc, load);
    const { url } = await kdc.call<{ url: string }>('start', {
      dataDir: bench.dataDir,
      passphrase: BENCH_PASSPHRASE,
    });

    // Tokens (created by the KDC) and CSRs (one shared client key) for every certificate of the run.
    const pair = await benchKeyPair();
    const batch = async (label: string, count: number): Promise<{ token: string; csr: string }[]> => {
      const names = Array.from({ length: count }, (_, i) => `iss-${label}-${i}`);
      const tokens = await kdc.call<string[]>('tokens', { names });
      const csrs = await Promise.all(names.map((n) => createCsr(n, pair.privateKeyPem, pair.publicKeyPem)));
      return names.map((_, i) => ({ token: tokens[i]!, csr: csrs[i]! }));
    };
    const enroll = async (requests: { token: string; csr: string }[], mode: 'established' | 'full') => {
      const r = await load.call<EnrollResult>('enroll', {
        url,
        caCertPem: bench.caCertPem,
        requests,
        concurrency: CONCURRENCY,
        mode,
      });
      if (r.errors > 0 || r.issued !== requests.length) {
        throw new Error(`${r.errors} enrollments failed (${r.issued} issued): ${r.firstError}`);
      }
      return r;
    };

    // Warm the KDC until its rate settles (V8 optimizes the issuance path over the first few hundred).
    let warmRound = 0;
    const warm = await warmUntilStable(
      async () => {
        const requests = await batch(`warm${warmRound++}`, WARM_ROUND);
        const r = await enroll(requests, 'established');
        return r.ms / requests.length;
      },
      { minRounds: 3, maxRounds: 6 },
    );
    await rawSignRate(caKey, 64, CONCURRENCY); // warm
    const issued: number[] = [];
    const raw: number[] = [];
    const issueCpu: number[] = [];
    const loadCpu: number[] = [];
    const rawCpu: number[] = [];
    const latencies: number[] = [];
    // Every run's tokens and CSRs first, so that a profile of the KDC holds the enrollments only.
    const runs: { token: string; csr: string }[][] = [];
    for (let r = 0; r < RUNS; r++) runs.push(await batch(`r${r}`, PER_RUN));
    // KDS_BENCH_PROFILE=<file.cpuprofile>: a V8 CPU profile of the KDC over the measured runs.
    const profile = process.env.KDS_BENCH_PROFILE;
    if (profile) await kdc.call('profileStart');
    for (let r = 0; r < RUNS; r++) {
      const requests = runs[r]!;
      await load.call('openEnroll', { url, caCertPem: bench.caCertPem, count: CONCURRENCY });
      const c0 = await kdc.call<number>('cpu');
      const l0 = await load.call<number>('cpu');
      const res = await enroll(requests, 'established');
      const l1 = await load.call<number>('cpu');
      const c1 = await kdc.call<number>('cpu');
      await load.call('closeEnroll');
      issued.push(perSecond(res.issued, res.ms));
      issueCpu.push((c1 - c0) / res.issued);
      loadCpu.push((l1 - l0) / res.issued);
      latencies.push(...res.latencies);
      const signs = await rawSignRate(caKey, PER_RUN, CONCURRENCY);
      raw.push(signs.rate);
      rawCpu.push(signs.cpuUs);
    }
    if (profile) await kdc.call('profileStop', { path: profile });
    const fullRequests = await batch('full', FULL);
    const f0 = await kdc.call<number>('cpu');
    const full = { ...(await enroll(fullRequests, 'full')), kdcCpuUs: 0 };
    full.kdcCpuUs = (await kdc.call<number>('cpu')) - f0;

    const fIssued = summarize(issued, 'certs/s');
    const fRaw = summarize(raw, 'signs/s');
    const fFull = summarize([perSecond(full.issued, full.ms)], 'certs/s');
    const fIssueCpu = summarize(issueCpu, 'us CPU/cert');
    const fLoadCpu = summarize(loadCpu, 'us CPU/cert');
    const fFullCpu = summarize([full.kdcCpuUs / full.issued], 'us CPU/cert');
    const fRawCpu = summarize(rawCpu, 'us CPU/sign');
    return {
      machine: machine(),
      figures: {
        issued_per_s: fIssued,
        raw_ca_sign_per_s: fRaw,
        issued_with_handshake_per_s: fFull,
        kdc_cpu_per_issued_cert: fIssueCpu,
        // The enrolling clients' process (it shares the 2 CPUs with the KDC): what the load costs.
        load_cpu_per_issued_cert: fLoadCpu,
        kdc_cpu_per_cert_with_handshake: fFullCpu,
        raw_ca_sign_cpu: fRawCpu,
        issue_latency_p50: summarize([percentile(latencies, 50)], 'ms'),
        issue_latency_p99: summarize([percentile(latencies, 99)], 'ms'),
      },
      ratios: {
        issue_vs_raw_sign: ratio(fIssued.median, fRaw.median),
        issue_with_handshake_vs_raw_sign: ratio(fFull.median, fRaw.median),
        // The same comparison in CPU time (KDC process per certificate vs one raw signature): what the
        // issuance path costs beyond its signature, whatever the machine's load and disk latency.
        issue_vs_raw_sign_cpu: ratio(fRawCpu.median, fIssueCpu.median),
        issue_with_handshake_vs_raw_sign_cpu: ratio(fRawCpu.median, fFullCpu.median),
      },
      notes: [
        `root CA RSA-${caKey.asymmetricKeyDetails?.modulusLength ?? '?'}; ${RUNS} runs x ${PER_RUN} enrollments over ${CONCURRENCY} established enroll sessions (opened before and closed after each run's CPU window), raw signing alternated with them; ${FULL} full enrollments (new session each)`,
        `warm-up rounds of ${WARM_ROUND} until the time per certificate settled: ${warm.map((ms) => ms.toFixed(1)).join(' -> ')} ms`,
        'target: issue_vs_raw_sign >= 0.6',
      ],
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    bench.remove();
  }
}
