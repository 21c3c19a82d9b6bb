// Load: KDS_LOAD_PAIRS pairs (50: 100 concurrent clients) x KDS_LOAD_EXCHANGES key exchanges (CI 5,
// full 10) per flow, both flows (end-to-end with prekeys, and KDC-generated), all pairs at once, against a real
// server process. The clients are in-process library clients (client/session + client/keys KeyClient,
// the code every CLI command runs), each connecting from its own loopback address as 100 users would
// (the per-IP handshake limit stays on). An exchange is complete when BOTH parties hold the key as
// `active` (Bob after the KDC's `valid` verdict on his signed digest, Alice after `key.verified`).
// Then, for every exchange: Alice's and Bob's key bytes are equal, their digests equal the KDC's,
// the KDC's row is active and peer-verified, and for KDC-generated keys the KDC's KEK-wrapped copy
// unwraps to the same bytes. 0 errors, 0 lost keys, 0 mismatches; p50/p99 latency of an exchange
// (send-key to both active) is printed.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeClientHome } from '../../client/home.js';
import { KeyClient, type KeyEvent } from '../../client/keys/key-client.js';
import { ClientKeyStore } from '../../client/keys/key-store.js';
import { openSession, type ClientSession } from '../../client/session.js';
import { CertificateAuthority } from '../../server/ca/authority.js';
import { KeyEncryptionKeys } from '../../server/keys/kek.js';
import { openStore } from '../../server/store/store.js';
import { equalBytes } from '../../shared/crypto/ct.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import { issueTestClient, type TestClient } from '../helpers/kdc-in-process.js';
import { initDataDir, startServer, TEST_CA_PASSPHRASE } from '../helpers/kds-process.js';
import { loopbackAddress } from '../helpers/raw-client.js';
import { tempDir } from '../helpers/tmp.js';
import { PARAMS, param } from '../helpers/hardening-params.js';

const PAIRS = param(PARAMS.loadPairs);
const EXCHANGES = param(PARAMS.loadExchanges);
const EXCHANGE_TIMEOUT_MS = 60_000;

interface Party {
  name: string;
  client: KeyClient;
  session: ClientSession;
  /** serial -> resolve, called when this party's copy becomes active. */
  waiting: Map<string, () => void>;
  active: Set<string>;
  errors: string[];
}

interface Exchange {
  pair: number;
  mode: 'e2e' | 'kdc';
  serial: string;
  ms: number;
}

/** utime + stime of a process (Linux /proc), in seconds; 0 elsewhere. */
function processCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

t.test('load: 100 concurrent clients, both flows', { timeout: 600_000 }, async (t) => {
  const dataDir = await initDataDir(t);
  const homes = tempDir(t, 'kds-load-');
  const ca = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  const ids: TestClient[] = [];
  // One RSA key for every client (keygen is the slow part; names, certificates and stores differ).
  for (let i = 0; i < PAIRS; i++)
    ids.push(await issueTestClient(ca, `alice-${i}`), await issueTestClient(ca, `bob-${i}`));
  await ca.close();
  const caCertPem = readFileSync(join(dataDir, 'root_ca.pem'), 'utf8');
  const caCert = parseCertificate(caCertPem);
  const server = await startServer(t, dataDir);

  const open = async (id: TestClient, i: number): Promise<Party> => {
    const home = join(homes, id.name);
    writeClientHome(home, { privateKey: id.privateKey, certPem: id.certPem, caPem: caCertPem }, undefined);
    const session = await openSession({
      server: server.url,
      mode: 'auth',
      credentials: { privateKey: id.privateKey, certPem: id.certPem },
      caCertPem,
      localAddress: loopbackAddress(i),
      requestTimeoutMs: EXCHANGE_TIMEOUT_MS,
    });
    const party: Party = {
      name: id.name,
      client: undefined as unknown as KeyClient,
      session,
      waiting: new Map(),
      active: new Set(),
      errors: [],
    };
    const onEvent = (e: KeyEvent): void => {
      if (e.event === 'key.rejected' || e.event === 'message.rejected')
        party.errors.push(`${e.event} ${e.serial}: ${e.code}`);
      const serial = 'serial' in e ? e.serial : undefined;
      if ((e.event === 'key' || e.event === 'key.verified') && e.state === 'active' && serial !== undefined) {
        party.active.add(serial);
        party.waiting.get(serial)?.();
      }
    };
    party.client = new KeyClient({
      session,
      name: id.name,
      certSerial: id.cert.serialHex,
      identityKey: id.privateKey,
      ca: caCert,
      store: ClientKeyStore.open(home, id.name, id.privateKey),
      onEvent,
    });
    await party.client.start();
    return party;
  };

  const startedOpen = performance.now();
  const parties = await Promise.all(ids.map((id, i) => open(id, i)));
  t.comment(
    `${parties.length} clients connected and published prekeys in ${((performance.now() - startedOpen) / 1000).toFixed(1)} s`,
  );

  const activeAt = (p: Party, serial: string): Promise<void> =>
    new Promise((resolve, reject) => {
      if (p.active.has(serial)) return resolve();
      const timer = setTimeout(
        () => reject(new Error(`${p.name}: ${serial} not active within ${EXCHANGE_TIMEOUT_MS} ms`)),
        EXCHANGE_TIMEOUT_MS,
      );
      p.waiting.set(serial, () => {
        clearTimeout(timer);
        p.waiting.delete(serial);
        resolve();
      });
    });

  const exchanges: Exchange[] = [];
  const failures: string[] = [];
  const startedLoad = performance.now();
  const cpuBefore = process.cpuUsage();
  const serverCpuBefore = processCpuSeconds(server.child.pid!);
  await Promise.all(
    Array.from({ length: PAIRS }, async (_, pair) => {
      const alice = parties[2 * pair]!;
      const bob = parties[2 * pair + 1]!;
      for (const mode of ['e2e', 'kdc'] as const) {
        for (let j = 0; j < EXCHANGES; j++) {
          const started = performance.now();
          try {
            const sent = await alice.client.sendKey({ to: bob.name, mode });
            await Promise.all([activeAt(alice, sent.serial), activeAt(bob, sent.serial)]);
            exchanges.push({ pair, mode, serial: sent.serial, ms: performance.now() - started });
          } catch (err) {
            failures.push(`pair ${pair} ${mode} #${j}: ${(err as Error).message}`);
          }
        }
      }
    }),
  );
  const seconds = (performance.now() - startedLoad) / 1000;
  const clientCpu = process.cpuUsage(cpuBefore);
  const serverCpu = processCpuSeconds(server.child.pid!) - serverCpuBefore;
  t.comment(
    `CPU during the load: clients ${((clientCpu.user + clientCpu.system) / 1e6).toFixed(1)} s, server ${serverCpu.toFixed(1)} s, wall ${seconds.toFixed(1)} s`,
  );
  t.same(failures, [], '0 errors in any exchange');
  t.same(
    parties.flatMap((p) => p.errors),
    [],
    '0 rejected keys or messages on any client',
  );
  t.equal(exchanges.length, PAIRS * EXCHANGES * 2, `all ${PAIRS * EXCHANGES * 2} exchanges completed`);
  for (const mode of ['e2e', 'kdc'] as const) {
    const ms = exchanges
      .filter((e) => e.mode === mode)
      .map((e) => e.ms)
      .sort((a, b) => a - b);
    if (ms.length > 0) {
      t.comment(
        `${mode}: ${ms.length} exchanges, p50 ${percentile(ms, 50).toFixed(0)} ms, p99 ${percentile(ms, 99).toFixed(0)} ms, max ${ms[ms.length - 1]!.toFixed(0)} ms`,
      );
    }
  }
  t.comment(
    `${exchanges.length} exchanges by ${parties.length} concurrent clients in ${seconds.toFixed(1)} s (${(exchanges.length / seconds).toFixed(0)}/s)`,
  );

  // What Alice, Bob and the KDC hold.
  const store = openStore(dataDir);
  t.teardown(() => store.close());
  const kek = await KeyEncryptionKeys.open(dataDir, TEST_CA_PASSPHRASE);
  const mismatches: string[] = [];
  for (const e of exchanges) {
    const alice = parties[2 * e.pair]!;
    const bob = parties[2 * e.pair + 1]!;
    const a = alice.client.store.getKey(e.serial);
    const b = bob.client.store.getKey(e.serial);
    const kdc = store.getSymKey(e.serial);
    if (a?.key === undefined || b?.key === undefined || kdc === undefined) {
      mismatches.push(`${e.serial}: lost (alice ${a?.state}, bob ${b?.state}, kdc ${kdc?.state})`);
      continue;
    }
    const aKey = Buffer.from(a.key, 'base64');
    const bKey = Buffer.from(b.key, 'base64');
    if (aKey.length !== 32 || !equalBytes(aKey, bKey))
      mismatches.push(`${e.serial}: alice and bob hold different keys`);
    if (a.state !== 'active' || b.state !== 'active')
      mismatches.push(`${e.serial}: states ${a.state}/${b.state}`);
    if (kdc.state !== 'active' || kdc.peerVerifiedAt === null)
      mismatches.push(`${e.serial}: KDC state ${kdc.state}, verified ${kdc.peerVerifiedAt}`);
    if (kdc.owner !== alice.name || kdc.peer !== bob.name || kdc.mode !== e.mode)
      mismatches.push(`${e.serial}: KDC parties ${kdc.owner}->${kdc.peer} ${kdc.mode}`);
    if (kdc.digest === null || a.digest !== kdc.digest.toString('hex') || b.digest !== a.digest)
      mismatches.push(`${e.serial}: digests differ`);
    if (e.mode === 'kdc') {
      const unwrapped = kek.unwrap(e.serial, kdc.wrappedKey!, kdc.kekVersion!);
      if (!equalBytes(unwrapped, aKey)) mismatches.push(`${e.serial}: the KDC's wrapped key is another key`);
    }
  }
  t.same(mismatches, [], '0 lost keys and 0 mismatches between Alice, Bob and the KDC');
  const kdcKeys = store.listSymKeys({ states: ['active'] }).filter((k) => k.owner.startsWith('alice-'));
  t.equal(kdcKeys.length, exchanges.length, 'the KDC holds exactly one active key per exchange, no more');
  await Promise.all(
    parties.map(async (p) => {
      p.client.detach();
      await p.session.close();
    }),
  );
  t.equal(server.child.exitCode, null, 'the server is still running');
});
