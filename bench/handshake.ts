// handshake (issue 3 "Speed", issue 7): new authenticated kds sessions per second on loopback with 32 in
// flight, the client load in a separate process and the KDC in another; in the same run, Node's own `tls`
// doing TLS 1.3 mutual authentication with the same keys (KDC RSA-2048, clients RSA-2048, root RSA-3072,
// X25519), and the crypto-bound limit: the node:crypto operations one server-side handshake performs,
// timed alone in this process.
//
// The headline is SERVER CPU per handshake (process.cpuUsage inside each server process, so the pool
// threads that sign count too), because throughput on loopback also pays for the client's half of the
// crypto on the same two cores. Ratios:
//   server_cost_vs_crypto_bound = kds server CPU per handshake / crypto-bound cost   (target <= 1.3)
//   kds_vs_tls_per_server_cpu   = TLS server CPU per handshake / kds server CPU per handshake (> 1: kds cheaper)
//   kds_vs_tls_rate             = kds handshakes/s / TLS handshakes/s (same client concurrency)
import {
  X509Certificate,
  constants,
  createCipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { loadCredential } from '../server/ca/credentials.js';
import { BENCH_PASSPHRASE, createBenchCa, issueBenchClients, type BenchClient } from './fixture.js';
import { cpuTime, machine, percentile, ratio, summarize, type BenchResult } from './harness.js';
import { Worker } from './load/ipc.js';

const CONCURRENCY = 32;
const CLIENTS = 32;
const RUNS = 5;
const PER_RUN = 320;

export interface CryptoBound {
  /** Microseconds of CPU per server-side handshake, and its parts. */
  totalUs: number;
  parts: Record<string, number>;
}

/**
 * CPU microseconds of each node:crypto operation a kds server performs per authenticated handshake,
 * measured by process.cpuUsage over `iterations` (synchronous forms: the CPU cost is the same on the pool).
 */
export function measureCryptoBound(opts: {
  serverKey: KeyObject;
  clientKey: KeyObject;
  clientCert: X509Certificate;
  caPublicKey: KeyObject;
  iterations: number;
}): CryptoBound {
  const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
  const th = randomBytes(32);
  const transcript = randomBytes(1600); // client_hello + server_hello (certificate) + client_finish
  const peerRaw = (generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }) as Buffer).subarray(-32);
  const clientSig = sign('sha256', th, { key: opts.clientKey, ...pss });
  const clientPublic = createPublicKey(opts.clientKey);
  const z = randomBytes(32);
  const n = opts.iterations;
  const parts: Record<string, number> = {};
  const time = (name: string, fn: () => void, count = n): void => {
    fn(); // warm
    const us = cpuTime(() => {
      for (let i = 0; i < count; i++) fn();
    });
    parts[name] = us / count;
  };
  time('x25519_keygen', () => generateKeyPairSync('x25519'));
  time('x25519_import_derive', () => {
    const peer = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: peerRaw.toString('base64url') }, format: 'jwk' });
    diffieHellman({ privateKey: generateKeyPairSync('x25519').privateKey, publicKey: peer });
  });
  parts.x25519_import_derive! -= parts.x25519_keygen!;
  time('rsa_pss_sign_2048', () => sign('sha256', th, { key: opts.serverKey, ...pss }), Math.max(50, n / 4));
  time('rsa_pss_verify_2048', () => verify('sha256', th, { key: clientPublic, ...pss }, clientSig));
  time('cert_signature_verify', () => opts.clientCert.verify(opts.caPublicKey));
  time('hkdf_x8_sha256_x5_hmac_x2_gcm', () => {
    for (let i = 0; i < 8; i++) hkdfSync('sha256', z, th, 'kds v1 label', 32);
    for (let i = 0; i < 5; i++) createHash('sha256').update(transcript).digest();
    for (let i = 0; i < 2; i++) createHmac('sha256', z).update(th).digest();
    const c = createCipheriv('aes-256-gcm', z, th.subarray(0, 12), { authTagLength: 16 });
    c.update(transcript.subarray(0, 100));
    c.final();
    c.getAuthTag();
  });
  const totalUs = Object.values(parts).reduce((a, b) => a + b, 0);
  return { totalUs, parts };
}

interface RoundResult {
  ms: number;
  errors: number;
  firstError?: string;
  latencies?: number[];
}

export async function run(): Promise<BenchResult> {
  const bench = await createBenchCa({ prefix: 'kds-bench-handshake-' });
  const workers: Worker[] = [];
  try {
    const clients: BenchClient[] = await issueBenchClients(bench.dataDir, 'hs', CLIENTS);
    const kdcCred = loadCredential(bench.dataDir, 'server', BENCH_PASSPHRASE);
    const kdcKeyPem = kdcCred.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

    // 1. The crypto-bound limit, measured before the servers start (nothing else of ours running).
    const clientCert = new X509Certificate(clients[0]!.certPem);
    const caCert = new X509Certificate(bench.caCertPem);
    const crypto = measureCryptoBound({
      serverKey: kdcCred.privateKey,
      clientKey: createPrivateKey(clients[0]!.keyPem),
      clientCert,
      caPublicKey: caCert.publicKey,
      iterations: 400,
    });

    // 2. Servers and load generators, each in its own process.
    const kdc = Worker.start('load/kdc-server.js');
    const tls = Worker.start('load/tls-server.js');
    const kdsLoad = Worker.start('load/session-client.js');
    const tlsLoad = Worker.start('load/tls-client.js');
    workers.push(kdc, tls, kdsLoad, tlsLoad);
    const { url } = await kdc.call<{ url: string }>('start', { dataDir: bench.dataDir, passphrase: BENCH_PASSPHRASE });
    const { port } = await tls.call<{ port: number }>('start', {
      keyPem: kdcKeyPem,
      certPem: kdcCred.certPem,
      caPem: bench.caCertPem,
    });
    const clientSpecs = clients.map((c) => ({ certPem: c.certPem, keyPem: c.keyPem }));
    const kdsRound = (count: number): Promise<RoundResult> =>
      kdsLoad.call('handshakes', { url, caCertPem: bench.caCertPem, clients: clientSpecs, count, concurrency: CONCURRENCY });
    const tlsRound = (count: number): Promise<RoundResult> =>
      tlsLoad.call('handshakes', {
        port,
        keyPem: clients[0]!.keyPem,
        certPem: clients[0]!.certPem,
        caPem: bench.caCertPem,
        count,
        concurrency: CONCURRENCY,
      });

    // Warm both (JIT, caches), then alternate the two so drifting machine load hits both alike.
    await kdsRound(64);
    await tlsRound(64);
    const kdsRate: number[] = [];
    const tlsRate: number[] = [];
    const kdsCpu: number[] = [];
    const tlsCpu: number[] = [];
    const latencies: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      for (const [server, round, rates, cpus] of [
        [kdc, kdsRound, kdsRate, kdsCpu],
        [tls, tlsRound, tlsRate, tlsCpu],
      ] as const) {
        const c0 = await server.call<number>('cpu');
        const res = await round(PER_RUN);
        const c1 = await server.call<number>('cpu');
        if (res.errors > 0) throw new Error(`${res.errors} handshakes failed: ${res.firstError}`);
        rates.push((PER_RUN / res.ms) * 1000);
        cpus.push((c1 - c0) / PER_RUN);
        if (res.latencies !== undefined) latencies.push(...res.latencies);
      }
    }

    const fKdsCpu = summarize(kdsCpu, 'us CPU/handshake');
    const fTlsCpu = summarize(tlsCpu, 'us CPU/handshake');
    const fKdsRate = summarize(kdsRate, 'handshakes/s');
    const fTlsRate = summarize(tlsRate, 'handshakes/s');
    const perCpuSecond = (f: { median: number; min: number; max: number }) => ({
      median: 1e6 / f.median,
      min: 1e6 / f.max,
      max: 1e6 / f.min,
      unit: 'handshakes/server-CPU-s',
    });
    const figures = {
      kds_handshakes_per_s: fKdsRate,
      tls13_mtls_handshakes_per_s: fTlsRate,
      kds_server_cpu_per_handshake: fKdsCpu,
      tls13_server_cpu_per_handshake: fTlsCpu,
      crypto_bound_cpu_per_handshake: summarize([crypto.totalUs], 'us CPU/handshake'),
      kds_per_server_cpu_s: perCpuSecond(fKdsCpu),
      tls13_per_server_cpu_s: perCpuSecond(fTlsCpu),
      crypto_bound_per_cpu_s: { ...summarize([1e6 / crypto.totalUs], 'handshakes/CPU-s') },
      kds_latency_p50: summarize([percentile(latencies, 50)], 'ms'),
      kds_latency_p99: summarize([percentile(latencies, 99)], 'ms'),
    };
    return {
      machine: machine(),
      figures,
      ratios: {
        server_cost_vs_crypto_bound: ratio(fKdsCpu.median, crypto.totalUs),
        kds_vs_tls_per_server_cpu: ratio(fTlsCpu.median, fKdsCpu.median),
        kds_vs_tls_rate: ratio(fKdsRate.median, fTlsRate.median),
      },
      notes: [
        `${RUNS} runs x ${PER_RUN} handshakes each for kds and TLS, alternating; ${CONCURRENCY} in flight; ${CLIENTS} client certificates`,
        `crypto-bound parts (us CPU): ${Object.entries(crypto.parts)
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', ')}`,
        'target: server_cost_vs_crypto_bound <= 1.3',
      ],
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    bench.remove();
  }
}
