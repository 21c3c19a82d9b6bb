// handshake (docs/performance.md): new authenticated kds sessions per second on loopback with 32 in
// flight, the client load in a separate process and the KDC in another; in the same run, Node's own `tls`
// doing TLS 1.3 mutual authentication with the same keys (KDC RSA-2048, clients RSA-2048, root RSA-3072,
// X25519), the crypto-bound limit: the node:crypto operations one server-side handshake performs,
// timed alone in this process, and the transport floor: a bare ws server with the KDC's settings
// exchanging frames of the same sizes over a new connection each time (bench/load/ws-floor-*.ts).
//
// The headline is SERVER CPU per handshake (process.cpuUsage inside each server process, so the pool
// threads that sign count too), because throughput on loopback also pays for the client's half of the
// crypto on the same two cores. Ratios:
//   server_cost_vs_crypto_bound = kds server CPU per handshake / crypto-bound cost   (target <= 1.3)
//   kds_vs_tls_per_server_cpu   = TLS server CPU per handshake / kds server CPU per handshake (> 1: kds cheaper)
//   kds_vs_tls_rate             = kds handshakes/s / TLS handshakes/s (same client concurrency)
//   server_cost_vs_crypto_plus_transport = kds server CPU / (crypto-bound + transport floor)
//   resumed_vs_full             = kds server CPU per RESUMED handshake (docs/protocol.md "Resumption":
//                                 the client keeps its ticket until it is due, as it would here) / per
//                                 full handshake (target <= 0.35)
//   resumed_vs_tls_resumption   = kds server CPU per resumed handshake / TLS 1.3 server CPU per resumed
//                                 handshake (session tickets, psk_dhe_ke; < 1: kds cheaper)
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
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { cpSync, rmSync } from 'node:fs';
import { loadCredential } from '../server/ca/credentials.js';
import { BENCH_PASSPHRASE, createBenchCa, issueBenchClients, type BenchClient } from './fixture.js';
import {
  cpuTime,
  machine,
  percentile,
  perSecond,
  ratio,
  summarize,
  warmUntilSettled,
  type BenchResult,
} from './harness.js';
import { Worker } from './load/ipc.js';
import { measureConsoleWork } from './console-work.js';
import { readFeed } from './console-page.js';

const CONCURRENCY = 32;
const CLIENTS = 32;
const RUNS = 5;
const PER_RUN = 320;
/** Handshakes per warm-up round (warmUntilSettled decides how many rounds, the same rule for every server). */
const WARM_ROUND = 250;
/** Rounds per mean compared: settled when the last WARM_WINDOW are < WARM_MAX_FALL below the ones before. */
const WARM_WINDOW = 4;
const WARM_MAX_FALL = 0.03;
/** The cap: 7,500 handshakes; a server still falling then is reported as not settled. */
const WARM_MAX_ROUNDS = 30;

interface CryptoBound {
  /** Microseconds of CPU per server-side handshake, and its parts. */
  totalUs: number;
  parts: Record<string, number>;
  /** Measured but NOT in totalUs: operations the server does once per certificate, not per handshake. */
  perCertificate: Record<string, number>;
}

/** Byte sizes of the handshake messages, for hashing the same amounts the server hashes. */
export interface HandshakeSizes {
  clientHello: number;
  serverHelloCore: number;
  serverHello: number;
  clientFinish: number;
}

/**
 * CPU microseconds of each node:crypto operation a kds server performs per authenticated handshake of a
 * RETURNING client (the benchmark's clients all are), called the way the server calls it, each warmed
 * up first (the first few hundred calls of a cheap operation run cold code: timing them made the
 * "hashes" share 3-4x too large in the first version) and measured by process.cpuUsage (every thread):
 *   x25519_keygen          generateKeyPairSync + X25519(k, 9) for the raw public key (shared/crypto/dh.ts)
 *   x25519_import_derive   the client's raw share imported (JWK) and the shared secret
 *   rsa_pss_sign_2048      the KDC's CertificateVerify-style signature, CALLBACK form on the libuv pool
 *                          (as the server signs), `concurrency` in flight: dispatch and completion included
 *   rsa_pss_verify_2048    the client's signature (salt length 32, explicit)
 *   hashes_hmac_gcm        key schedule (2 HKDF-Extract + 8 HKDF-Expand = 10 HMACs), 2 finished MACs,
 *                          5 transcript SHA-256 over the real message sizes, the certificate fingerprint,
 *                          one AES-GCM record (the `ready` push)
 *   random                 the server_hello nonce (32 bytes)
 * Not per handshake, so reported apart (perCertificate): the client certificate's RSA-3072 signature
 * under the root, verified once per certificate (shared/pki/verify.ts remembers the result on the parsed
 * certificate, which server/kdc/cert-check.ts caches by fingerprint).
 */
async function measureCryptoBound(opts: {
  serverKey: KeyObject;
  clientKey: KeyObject;
  clientCert: X509Certificate;
  caPublicKey: KeyObject;
  sizes: HandshakeSizes;
  iterations: number;
  concurrency: number;
}): Promise<CryptoBound> {
  const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
  const th = randomBytes(32);
  const { sizes } = opts;
  const ch = randomBytes(sizes.clientHello);
  const shCore = randomBytes(sizes.serverHelloCore);
  const sh = randomBytes(sizes.serverHello);
  const cf = randomBytes(sizes.clientFinish);
  const certDer = opts.clientCert.raw;
  const peerRaw = (
    generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }) as Buffer
  ).subarray(-32);
  const basePoint = createPublicKey({
    key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), Buffer.from([9]), Buffer.alloc(31)]),
    format: 'der',
    type: 'spki',
  });
  const clientSig = sign('sha256', th, { key: opts.clientKey, ...pss });
  const clientPublic = createPublicKey(opts.clientKey);
  const z = randomBytes(32);
  const labels = Array.from({ length: 8 }, (_, i) => Buffer.from(`kds v1 label ${i}`, 'latin1'));
  const n = opts.iterations;
  const time = (fn: () => void, count = n): number => {
    for (let i = 0; i < Math.max(200, count / 2); i++) fn(); // warm: JIT and OpenSSL caches
    const us = cpuTime(() => {
      for (let i = 0; i < count; i++) fn();
    });
    return us / count;
  };
  const keyPair = generateKeyPairSync('x25519');
  const parts: Record<string, number> = {};
  parts.x25519_keygen = time(() => {
    const k = generateKeyPairSync('x25519').privateKey;
    diffieHellman({ privateKey: k, publicKey: basePoint });
  });
  parts.x25519_import_derive = time(() => {
    const peer = createPublicKey({
      key: { kty: 'OKP', crv: 'X25519', x: peerRaw.toString('base64url') },
      format: 'jwk',
    });
    diffieHellman({ privateKey: keyPair.privateKey, publicKey: peer });
  });
  // The signature as the server makes it: callback form, several in flight.
  const signs = Math.max(64, n / 2);
  const signOnce = (): Promise<void> =>
    new Promise((resolve, reject) =>
      sign('sha256', th, { key: opts.serverKey, ...pss }, (err) => (err ? reject(err) : resolve())),
    );
  await Promise.all(Array.from({ length: opts.concurrency * 2 }, signOnce));
  const before = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (next < signs) {
        next += 1;
        await signOnce();
      }
    }),
  );
  const d = process.cpuUsage(before);
  parts.rsa_pss_sign_2048 = (d.user + d.system) / signs;
  parts.rsa_pss_verify_2048 = time(() => verify('sha256', th, { key: clientPublic, ...pss }, clientSig));
  parts.hashes_hmac_gcm = time(() => {
    const prk1 = createHmac('sha256', th).update(z).digest();
    const prk2 = createHmac('sha256', th).update(z).digest();
    for (let i = 0; i < 8; i++)
      createHmac('sha256', i < 2 ? prk1 : prk2)
        .update(labels[i]!)
        .update('\x01', 'latin1')
        .digest();
    for (let i = 0; i < 2; i++) createHmac('sha256', z).update(th).digest();
    createHash('sha256').update(ch).update(shCore).digest(); // TH_hello
    createHash('sha256').update(ch).update(sh).digest(); // server MAC input (sh without mac)
    createHash('sha256').update(certDer).digest(); // certificate cache key
    for (let i = 0; i < 3; i++) createHash('sha256').update(ch).update(sh).update(cf).digest(); // sig, mac, final
    const c = createCipheriv('aes-256-gcm', z, th.subarray(0, 12), { authTagLength: 16 });
    c.setAAD(th.subarray(0, 10));
    c.update(cf.subarray(0, 100));
    c.final();
    c.getAuthTag();
  }, n * 4);
  parts.random = time(() => randomBytes(32), n * 4);
  const perCertificate = {
    cert_signature_verify_3072: time(() => opts.clientCert.verify(opts.caPublicKey)),
  };
  const totalUs = Object.values(parts).reduce((a, b) => a + b, 0);
  return { totalUs, parts, perCertificate };
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
  const cleanups: (() => void)[] = [];
  try {
    const clients: BenchClient[] = await issueBenchClients(bench.dataDir, 'hs', CLIENTS);
    const kdcCred = loadCredential(bench.dataDir, 'server', BENCH_PASSPHRASE);
    const kdcKeyPem = kdcCred.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

    // 1. The crypto-bound limit, measured before the servers start (nothing else of ours running).
    const clientCert = new X509Certificate(clients[0]!.certPem);
    const caCert = new X509Certificate(bench.caCertPem);
    // Approximate wire sizes (msgpack framing within a few bytes): the hashes cover the real amounts,
    // and the transport floor sends frames of these sizes.
    const sizes: HandshakeSizes = {
      clientHello: 120,
      serverHelloCore: kdcCred.cert.der.length + 120,
      serverHello: kdcCred.cert.der.length + 120 + 256 + 40,
      clientFinish: clientCert.raw.length + 256 + 60,
    };
    const cryptoOpts = {
      serverKey: kdcCred.privateKey,
      clientKey: createPrivateKey(clients[0]!.keyPem),
      clientCert,
      caPublicKey: caCert.publicKey,
      sizes,
      iterations: 1000,
      concurrency: CONCURRENCY,
    };
    const crypto = await measureCryptoBound(cryptoOpts);
    // Measured again after every run (the servers idle meanwhile): a single measurement moved by
    // +-15% between whole benchmark runs, and every ratio divides by it.
    const cryptoUs: number[] = [crypto.totalUs];

    // 2. Servers and load generators, each in its own process.
    const kdc = Worker.start('load/kdc-server.js');
    // The same KDC with the live console on (a copy of the data directory) and a page reading its feed.
    const consoleKdc = Worker.start('load/kdc-server.js');
    const tls = Worker.start('load/tls-server.js');
    const kdsLoad = Worker.start('load/session-client.js');
    const tlsLoad = Worker.start('load/tls-client.js');
    const floor = Worker.start('load/ws-floor-server.js');
    const floorLoad = Worker.start('load/ws-floor-client.js');
    workers.push(kdc, consoleKdc, tls, kdsLoad, tlsLoad, floor, floorLoad);
    const { url } = await kdc.call<{ url: string }>('start', {
      dataDir: bench.dataDir,
      passphrase: BENCH_PASSPHRASE,
    });
    const consoleDir = `${bench.dataDir}-console`;
    cpSync(bench.dataDir, consoleDir, { recursive: true });
    cleanups.push(() => rmSync(consoleDir, { recursive: true, force: true }));
    const withConsole = await consoleKdc.call<{ url: string; consoleUrl: string }>('start', {
      dataDir: consoleDir,
      passphrase: BENCH_PASSPHRASE,
      console: true,
    });
    const page = await readFeed(`${withConsole.consoleUrl}/events`);
    cleanups.push(() => page.destroy());
    const { port } = await tls.call<{ port: number }>('start', {
      keyPem: kdcKeyPem,
      certPem: kdcCred.certPem,
      caPem: bench.caCertPem,
    });
    const floorUrl = (
      await floor.call<{ url: string }>('start', { serverHelloBytes: sizes.serverHello, readyBytes: 120 })
    ).url;
    const clientSpecs = clients.map((c) => ({ certPem: c.certPem, keyPem: c.keyPem }));
    const kdsRound = (count: number): Promise<RoundResult> =>
      kdsLoad.call('handshakes', {
        url,
        caCertPem: bench.caCertPem,
        clients: clientSpecs,
        count,
        concurrency: CONCURRENCY,
      });
    const consoleRound = (count: number): Promise<RoundResult> =>
      kdsLoad.call('handshakes', {
        url: withConsole.url,
        caCertPem: bench.caCertPem,
        clients: clientSpecs,
        count,
        concurrency: CONCURRENCY,
      });
    const tlsRound = (count: number): Promise<RoundResult> =>
      tlsLoad.call('handshakes', {
        port,
        keyPem: clients[0]!.keyPem,
        certPem: clients[0]!.certPem,
        caPem: bench.caCertPem,
        count,
        concurrency: CONCURRENCY,
      });

    const resumedRound = (count: number): Promise<RoundResult> =>
      kdsLoad.call('resumed', {
        url,
        caCertPem: bench.caCertPem,
        clients: clientSpecs,
        count,
        concurrency: CONCURRENCY,
      });
    await kdsLoad.call('primeTickets', { url, caCertPem: bench.caCertPem, clients: clientSpecs });
    // TLS 1.3 resumption: one session per connection in flight, each resumed and replaced in turn.
    const tlsResumedRound = (count: number): Promise<RoundResult> =>
      tlsLoad.call('resumed', { port, count, concurrency: CONCURRENCY });
    await tlsLoad.call('primeSessions', {
      port,
      keyPem: clients[0]!.keyPem,
      certPem: clients[0]!.certPem,
      caPem: bench.caCertPem,
      slots: CONCURRENCY,
    });

    const floorRound = (count: number): Promise<RoundResult> =>
      floorLoad.call('connections', {
        url: floorUrl,
        clientHelloBytes: sizes.clientHello,
        clientFinishBytes: sizes.clientFinish,
        count,
        concurrency: CONCURRENCY,
      });

    // Every server is warmed by the same rule (bench/harness.ts warmUntilSettled, docs/performance.md
    // "handshake"): rounds of WARM_ROUND until the mean CPU per handshake of the last WARM_WINDOW rounds
    // is less than WARM_MAX_FALL below that of the WARM_WINDOW rounds before, at most WARM_MAX_ROUNDS.
    // Then the servers are measured alternately, so that drifting machine load hits them alike.
    const measure = async (server: Worker, round: (n: number) => Promise<RoundResult>, count: number) => {
      const c0 = await server.call<number>('cpu');
      const res = await round(count);
      const c1 = await server.call<number>('cpu');
      if (res.errors > 0) throw new Error(`${res.errors} handshakes failed: ${res.firstError}`);
      return { rate: perSecond(count, res.ms), cpu: (c1 - c0) / count, latencies: res.latencies ?? [] };
    };
    const warm = (server: Worker, round: (n: number) => Promise<RoundResult>) =>
      warmUntilSettled(async () => (await measure(server, round, WARM_ROUND)).cpu, {
        window: WARM_WINDOW,
        maxFall: WARM_MAX_FALL,
        maxRounds: WARM_MAX_ROUNDS,
      });
    const warmUps: [string, { costs: number[]; settled: boolean }][] = [];
    warmUps.push(['kds', await warm(kdc, kdsRound)]);
    warmUps.push(['kds console', await warm(consoleKdc, consoleRound)]);
    warmUps.push(['kds resumed', await warm(kdc, resumedRound)]);
    warmUps.push(['TLS', await warm(tls, tlsRound)]);
    warmUps.push(['TLS resumed', await warm(tls, tlsResumedRound)]);
    warmUps.push(['ws floor', await warm(floor, floorRound)]);
    const floorCpu: number[] = [];
    const kdsRate: number[] = [];
    const tlsRate: number[] = [];
    const kdsCpu: number[] = [];
    const tlsCpu: number[] = [];
    const consoleCpu: number[] = [];
    const resumedCpu: number[] = [];
    const resumedRate: number[] = [];
    const tlsResumedCpu: number[] = [];
    const tlsResumedRate: number[] = [];
    const consoleRate: number[] = [];
    // Each console round over the plain round of the same run: load drifting between runs cancels.
    const consolePairs: number[] = [];
    // The console's own work per handshake, in this process (bench/console-work.ts): the two-KDC
    // ratio above varies with the machine's load by more than the 5% it checks.
    const consoleWork: number[] = [];
    const latencies: number[] = [];
    // KDS_BENCH_PROFILE=<file.cpuprofile>: a V8 CPU profile of the KDC over the measured runs.
    const profile = process.env.KDS_BENCH_PROFILE;
    if (profile) await kdc.call('profileStart');
    for (let r = 0; r < RUNS; r++) {
      const k = await measure(kdc, kdsRound, PER_RUN);
      kdsRate.push(k.rate);
      kdsCpu.push(k.cpu);
      latencies.push(...k.latencies);
      const rs = await measure(kdc, resumedRound, PER_RUN);
      resumedCpu.push(rs.cpu);
      resumedRate.push(rs.rate);
      const c = await measure(consoleKdc, consoleRound, PER_RUN);
      consoleCpu.push(c.cpu);
      consoleRate.push(c.rate);
      consolePairs.push(c.cpu / k.cpu);
      const t = await measure(tls, tlsRound, PER_RUN);
      tlsRate.push(t.rate);
      tlsCpu.push(t.cpu);
      const tr = await measure(tls, tlsResumedRound, PER_RUN);
      tlsResumedCpu.push(tr.cpu);
      tlsResumedRate.push(tr.rate);
      floorCpu.push((await measure(floor, floorRound, PER_RUN)).cpu);
      cryptoUs.push((await measureCryptoBound(cryptoOpts)).totalUs);
      consoleWork.push(await measureConsoleWork({ handshakes: 3_000, inFlight: CONCURRENCY, rate: c.rate }));
    }
    if (profile) await kdc.call('profileStop', { path: profile });

    const fKdsCpu = summarize(kdsCpu, 'us CPU/handshake');
    const fTlsCpu = summarize(tlsCpu, 'us CPU/handshake');
    const fKdsRate = summarize(kdsRate, 'handshakes/s');
    const fTlsRate = summarize(tlsRate, 'handshakes/s');
    const fFloorCpu = summarize(floorCpu, 'us CPU/connection');
    const fConsoleCpu = summarize(consoleCpu, 'us CPU/handshake');
    const fConsoleRate = summarize(consoleRate, 'handshakes/s');
    const fCrypto = summarize(cryptoUs, 'us CPU/handshake');
    const fConsoleWork = summarize(consoleWork, 'us CPU/handshake');
    const fResumedCpu = summarize(resumedCpu, 'us CPU/handshake');
    const fResumedRate = summarize(resumedRate, 'handshakes/s');
    const fTlsResumedCpu = summarize(tlsResumedCpu, 'us CPU/handshake');
    const fTlsResumedRate = summarize(tlsResumedRate, 'handshakes/s');
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
      kds_resumed_server_cpu_per_handshake: fResumedCpu,
      kds_resumed_handshakes_per_s: fResumedRate,
      tls13_resumed_server_cpu_per_handshake: fTlsResumedCpu,
      tls13_resumed_handshakes_per_s: fTlsResumedRate,
      kds_with_console_server_cpu_per_handshake: fConsoleCpu,
      kds_with_console_handshakes_per_s: fConsoleRate,
      console_work_per_handshake: fConsoleWork,
      tls13_server_cpu_per_handshake: fTlsCpu,
      crypto_bound_cpu_per_handshake: fCrypto,
      ws_transport_floor_cpu_per_connection: fFloorCpu,
      kds_per_server_cpu_s: perCpuSecond(fKdsCpu),
      tls13_per_server_cpu_s: perCpuSecond(fTlsCpu),
      crypto_bound_per_cpu_s: {
        median: 1e6 / fCrypto.median,
        min: 1e6 / fCrypto.max,
        max: 1e6 / fCrypto.min,
        unit: 'handshakes/CPU-s',
      },
      kds_latency_p50: summarize([percentile(latencies, 50)], 'ms'),
      kds_latency_p99: summarize([percentile(latencies, 99)], 'ms'),
    };
    return {
      machine: machine(),
      figures,
      ratios: {
        server_cost_vs_crypto_bound: ratio(fKdsCpu.median, fCrypto.median),
        // A resumed session (no RSA; a fresh X25519; the ticket kept, not replaced) vs a full one.
        resumed_vs_full: ratio(fResumedCpu.median, fKdsCpu.median),
        // The same against Node's TLS 1.3 resuming with a session ticket (and issuing the next one).
        resumed_vs_tls_resumption: ratio(fResumedCpu.median, fTlsResumedCpu.median),
        // The crypto plus what a bare WebSocket server pays for the same connection and frames: the
        // floor of any design that keeps one WebSocket connection per session.
        server_cost_vs_crypto_plus_transport: ratio(fKdsCpu.median, fCrypto.median + fFloorCpu.median),
        kds_vs_tls_per_server_cpu: ratio(fTlsCpu.median, fKdsCpu.median),
        kds_vs_tls_rate: ratio(fKdsRate.median, fTlsRate.median),
        // The live console on (kds server start --console, one page reading the feed) vs off: the median
        // of the per-run ratios (bench/console.ts measures the same with more rounds), and of the medians.
        console_on_vs_off_server_cpu: summarize(consolePairs, 'on/off').median,
        console_on_vs_off_server_cpu_medians: ratio(fConsoleCpu.median, fKdsCpu.median),
        console_on_vs_off_rate: ratio(fConsoleRate.median, fKdsRate.median),
        // The console's own work per handshake (one page reading) as a share of the KDC's CPU per handshake.
        console_work_vs_server_cpu: ratio(fConsoleWork.median, fKdsCpu.median),
      },
      notes: [
        `${RUNS} runs x ${PER_RUN} handshakes each for kds and TLS, alternating; ${CONCURRENCY} in flight; ${CLIENTS} client certificates`,
        "TLS 1.3 resumption: Node's default server (stateless tickets under its automatic ticket keys), one session per connection in flight; it issues no new ticket after a resumption, and neither does kds while the client's ticket has 6 h or more left (client/ticket-renewal.ts), so each slot offers its ticket again",
        `warm-up (each server the same rule: rounds of ${WARM_ROUND} until the mean of the last ${WARM_WINDOW} fell < ${WARM_MAX_FALL * 100}% from the ${WARM_WINDOW} before, at most ${WARM_MAX_ROUNDS}), us CPU per handshake: ${warmUps
          .map(
            ([name, w]) =>
              `${name} ${w.costs.map((c) => c.toFixed(0)).join(' -> ')}${w.settled ? '' : ' (NOT settled: cap reached)'}`,
          )
          .join('; ')}`,
        // A server still settling would show as a falling sequence here.
        `measured runs in order, us CPU per handshake: kds ${kdsCpu.map((c) => c.toFixed(0)).join(', ')}; TLS ${tlsCpu.map((c) => c.toFixed(0)).join(', ')}; ws floor ${floorCpu.map((c) => c.toFixed(0)).join(', ')}`,
        `crypto-bound: measured ${cryptoUs.length} times (before the servers start, then after each run); parts of the first (us CPU): ${Object.entries(
          crypto.parts,
        )
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', ')}`,
        `once per client certificate, not in the crypto-bound (us CPU): ${Object.entries(
          crypto.perCertificate,
        )
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', ')}`,
        'target: server_cost_vs_crypto_bound <= 1.3',
        'target: console_on_vs_off_server_cpu < 1.05 (the console moves the handshake cost by less than 5%); console_work_vs_server_cpu < 0.05 is the same question without the second process',
      ],
    };
  } finally {
    for (const cleanup of cleanups) cleanup();
    await Promise.all(workers.map((w) => w.stop()));
    bench.remove();
  }
}
