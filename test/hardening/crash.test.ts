// Crash durability: KDS_CRASH_ROUNDS rounds (CI 6, full 100) of
//   start the server process -> run a continuous mix of operations -> SIGKILL it at a random moment
// and the next start checks everything the dead server had ACKNOWLEDGED (a reply reached the client):
//   - issuance (admin.token + enroll over the wire): the certificate row, with the PEM the client got;
//   - certificate revocation: the revocation row, and the CRL entry;
//   - key deposit (e2e) and KDC-generated keys: the key row with Alice's digest, active unless revoked;
//   - key revocation: the key row is revoked;
//   - delivery: once Bob reconnects and syncs, he holds every acknowledged key, byte-equal to Alice's;
// and, every round: `PRAGMA integrity_check` is ok, no serial appears twice (certificates, keys, CRL
// entries), root_crl.pem is never torn (it parses and verifies even straight after the kill, before
// any repair), and after the restart it is the store's CRL, listing exactly the revocation rows.
// The time from spawn to listening is collected; the issue's target is 2 s (asserted generously).
// KDS_SEED replays the random kill moments and operation mix.
import t from 'tap';
import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadAdminCredentials } from '../../client/admin.js';
import { writeClientHome } from '../../client/home.js';
import { KeyClient } from '../../client/keys/key-client.js';
import { ClientKeyStore } from '../../client/keys/key-store.js';
import { openSession, type ClientSession } from '../../client/session.js';
import { CertificateAuthority } from '../../server/ca/authority.js';
import { equalBytes } from '../../shared/crypto/ct.js';
import { KdsError } from '../../shared/errors.js';
import { parseCrl } from '../../shared/pki/crl.js';
import { createCsr } from '../../shared/pki/csr.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import { issueTestClient, testKeyPair, type TestClient } from '../helpers/kdc-in-process.js';
import { initDataDir, startServer, TEST_CA_PASSPHRASE, type ServerProcess } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';
import { PARAMS, param, seed } from '../helpers/hardening-params.js';

const ROUNDS = param(PARAMS.crashRounds);
const SEED = seed();
const READY_TARGET_MS = 2_000;
const READY_GENEROUS_MS = 60_000;
/** Errors an operation may end with because the server died under it (not a durability failure). */
const CRASH_CODES = new Set(['session_closed', 'unavailable', 'timeout', 'peer_unavailable']);

/** mulberry32: a small seeded PRNG, so a failing round can be replayed with KDS_SEED. */
function prng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface Acks {
  issued: Map<string, { name: string; fingerprint: string }>;
  revokedCerts: Set<string>;
  keys: Map<string, { key: Buffer; digest: string; mode: string }>;
  revokedKeys: Set<string>;
}

t.test(
  'SIGKILL during issuance, revocation, key deposit and delivery',
  { timeout: Math.max(600_000, ROUNDS * 30_000) },
  async (t) => {
    const random = prng(SEED);
    t.comment(`seed ${SEED} (KDS_SEED=${SEED} replays), ${ROUNDS} rounds`);
    const dataDir = await initDataDir(t);
    const homes = tempDir(t, 'kds-crash-');
    const ca = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
    const alice = await issueTestClient(ca, 'alice');
    const bob = await issueTestClient(ca, 'bob');
    // Certificates to revoke from the first round on (issuance over the wire is the slowest operation).
    const preissued = [];
    for (let i = 0; i < 4; i++) preissued.push(await issueTestClient(ca, `pre-${i}`));
    await ca.close();
    const caCertPem = readFileSync(join(dataDir, 'root_ca.pem'), 'utf8');
    const caCert = parseCertificate(caCertPem);
    const admin = loadAdminCredentials(dataDir, { passphrase: TEST_CA_PASSPHRASE });
    const pair = await testKeyPair();
    for (const id of [alice, bob])
      writeClientHome(
        join(homes, id.name),
        { privateKey: id.privateKey, certPem: id.certPem, caPem: caCertPem },
        undefined,
      );

    const acks: Acks = {
      issued: new Map(),
      revokedCerts: new Set(),
      keys: new Map(),
      revokedKeys: new Set(),
    };
    for (const c of preissued)
      acks.issued.set(c.cert.serialHex, { name: c.name, fingerprint: c.cert.fingerprint256 });
    const readyMs: number[] = [];
    const unexpected: string[] = [];
    const inFlightAtKill: number[] = [];
    let enrolled = 0;

    const keyClient = async (
      server: ServerProcess,
      id: TestClient,
    ): Promise<{ client: KeyClient; session: ClientSession }> => {
      const session = await openSession({
        server: server.url,
        mode: 'auth',
        credentials: { privateKey: id.privateKey, certPem: id.certPem },
        caCertPem,
        requestTimeoutMs: 10_000,
      });
      const client = new KeyClient({
        session,
        name: id.name,
        certSerial: id.cert.serialHex,
        identityKey: id.privateKey,
        ca: caCert,
        store: ClientKeyStore.open(join(homes, id.name), id.name, id.privateKey),
      });
      await client.start();
      return { client, session };
    };

    const slowStarts: string[] = [];
    const start = async (): Promise<ServerProcess> => {
      const started = performance.now();
      const server = await startServer(t, dataDir);
      const ms = performance.now() - started;
      readyMs.push(ms);
      if (ms > READY_TARGET_MS * 2)
        slowStarts.push(`start ${readyMs.length}: ${ms.toFixed(0)} ms, load ${loadavg()[0]!.toFixed(1)}`);
      return server;
    };

    /** Everything acknowledged so far must be in the store and the CRL (run right after each restart). */
    const verifyStore = (round: number): void => {
      const db = new Database(join(dataDir, 'kds.sqlite'), { readonly: true });
      try {
        const integrity = db.pragma('integrity_check', { simple: true });
        if (integrity !== 'ok') unexpected.push(`round ${round}: integrity_check says ${String(integrity)}`);
        const dupCerts = db
          .prepare('SELECT serial FROM certificates GROUP BY serial HAVING count(*) > 1')
          .all();
        if (dupCerts.length > 0)
          unexpected.push(`round ${round}: duplicated certificate serials ${JSON.stringify(dupCerts)}`);
        const dupKeys = db.prepare('SELECT serial FROM sym_keys GROUP BY serial HAVING count(*) > 1').all();
        if (dupKeys.length > 0)
          unexpected.push(`round ${round}: duplicated key serials ${JSON.stringify(dupKeys)}`);
        const certRow = db.prepare('SELECT fingerprint, status FROM certificates WHERE serial = ?');
        for (const [serial, want] of acks.issued) {
          const row = certRow.get(serial) as { fingerprint: string; status: string } | undefined;
          if (row === undefined || row.fingerprint !== want.fingerprint)
            unexpected.push(`round ${round}: acknowledged certificate ${serial} (${want.name}) lost`);
        }
        const revoked = new Set(
          (db.prepare('SELECT serial FROM revocations').all() as { serial: string }[]).map((r) => r.serial),
        );
        for (const serial of acks.revokedCerts)
          if (!revoked.has(serial))
            unexpected.push(`round ${round}: acknowledged revocation of ${serial} lost`);
        const crlState = db.prepare('SELECT crl_number AS n, pem FROM crl_state').get() as {
          n: number;
          pem: string;
        };
        const onDisk = readFileSync(join(dataDir, 'root_crl.pem'), 'utf8');
        if (onDisk !== crlState.pem)
          unexpected.push(`round ${round}: root_crl.pem is not the store's CRL after the restart`);
        const crl = parseCrl(onDisk);
        if (!crl.signatureValid(caCert)) unexpected.push(`round ${round}: root_crl.pem does not verify`);
        const entries = crl.entries.map((e) => e.serialHex);
        if (new Set(entries).size !== entries.length)
          unexpected.push(`round ${round}: a serial is listed twice in the CRL`);
        if (entries.length !== revoked.size || entries.some((s) => !revoked.has(s)))
          unexpected.push(`round ${round}: CRL entries differ from the revocation rows`);
        if (crl.crlNumber !== BigInt(crlState.n))
          unexpected.push(`round ${round}: CRL number ${crl.crlNumber} vs store ${crlState.n}`);
        const keyRow = db.prepare('SELECT state, hex(digest) AS digest FROM sym_keys WHERE serial = ?');
        for (const [serial, want] of acks.keys) {
          const row = keyRow.get(serial) as { state: string; digest: string } | undefined;
          if (row === undefined)
            unexpected.push(`round ${round}: acknowledged ${want.mode} key ${serial} lost`);
          else if (row.digest.toLowerCase() !== want.digest)
            unexpected.push(`round ${round}: key ${serial} digest differs from Alice's`);
          else if (acks.revokedKeys.has(serial) && row.state !== 'revoked')
            unexpected.push(`round ${round}: acknowledged key revocation ${serial} lost (${row.state})`);
        }
      } finally {
        db.close();
      }
    };

    /** Bob, reconnected and synced, holds every acknowledged key that is not revoked, equal to Alice's. */
    const verifyDeliveries = (round: number, bobClient: KeyClient): void => {
      for (const [serial, want] of acks.keys) {
        const held = bobClient.store.getKey(serial);
        if (acks.revokedKeys.has(serial)) continue;
        if (held === undefined)
          unexpected.push(`round ${round}: Bob never received acknowledged key ${serial}`);
        else if (held.key !== undefined && !equalBytes(Buffer.from(held.key, 'base64'), want.key))
          unexpected.push(`round ${round}: Bob's ${serial} differs from Alice's`);
        else if (held.key === undefined && held.state !== 'revoked')
          unexpected.push(`round ${round}: Bob's ${serial} has no key (${held.state})`);
      }
    };

    const tolerate = (what: string, err: unknown): void => {
      const code = err instanceof KdsError ? err.code : undefined;
      if (code === undefined || !CRASH_CODES.has(code))
        unexpected.push(`${what}: ${code ?? ''} ${(err as Error).message}`);
    };

    let server = await start();
    for (let round = 0; round < ROUNDS; round++) {
      if (round > 0) verifyStore(round);
      const adminSession = await openSession({
        server: server.url,
        mode: 'auth',
        credentials: { privateKey: admin.privateKey, certPem: admin.certPem },
        caCertPem,
        requestTimeoutMs: 10_000,
      });
      const a = await keyClient(server, alice);
      const b = await keyClient(server, bob);
      verifyDeliveries(round, b.client);
      let dead = false;
      let inFlight = 0;
      const pause = (): Promise<void> => new Promise((r) => setTimeout(r, random() * 20));
      const loop = async (what: string, op: () => Promise<void>): Promise<void> => {
        while (!dead) {
          inFlight += 1;
          try {
            await op();
          } catch (err) {
            if (!dead) tolerate(what, err);
            else if (!(err instanceof KdsError))
              unexpected.push(`${what} after the kill: ${(err as Error).message}`);
          } finally {
            inFlight -= 1;
          }
          await pause();
        }
      };
      const loops = [
        loop('issuance', async () => {
          const name = `crash-${enrolled++}`;
          const { token } = (await adminSession.request('admin.token', { name })) as { token: string };
          const csr = await createCsr(name, pair.privateKeyPem, pair.publicKeyPem);
          const enrollSession = await openSession({
            server: server.url,
            mode: 'enroll',
            caCertPem,
            requestTimeoutMs: 10_000,
          });
          try {
            const reply = await enrollSession.request('enroll', { token, csr });
            const cert = parseCertificate(String(reply.cert));
            acks.issued.set(cert.serialHex, { name, fingerprint: cert.fingerprint256 });
          } finally {
            void enrollSession.close().catch(() => undefined);
          }
        }),
        loop('certificate revocation', async () => {
          const target = [...acks.issued.keys()].find((s) => !acks.revokedCerts.has(s));
          if (target === undefined) return;
          await adminSession.request('cert.revoke', { serial: target, reason: 'keyCompromise' });
          acks.revokedCerts.add(target);
        }),
        loop('e2e key deposit', async () => {
          const sent = await a.client.sendKey({ to: 'bob', mode: 'e2e' });
          const rec = a.client.store.getKey(sent.serial)!;
          acks.keys.set(sent.serial, {
            key: Buffer.from(rec.key!, 'base64'),
            digest: rec.digest,
            mode: 'e2e',
          });
        }),
        loop('KDC-generated key', async () => {
          const sent = await a.client.sendKey({ to: 'bob', mode: 'kdc' });
          const rec = a.client.store.getKey(sent.serial)!;
          acks.keys.set(sent.serial, {
            key: Buffer.from(rec.key!, 'base64'),
            digest: rec.digest,
            mode: 'kdc',
          });
        }),
        loop('key revocation', async () => {
          const candidates = [...acks.keys.keys()].filter((s) => !acks.revokedKeys.has(s));
          if (candidates.length < 4) return;
          const serial = candidates[Math.floor(random() * candidates.length)]!;
          await a.client.revokeKey(serial, 'superseded');
          acks.revokedKeys.add(serial);
        }),
      ];
      await new Promise((r) => setTimeout(r, 100 + random() * 900));
      // On a loaded machine a whole enrollment can outlast the kill window. Until every kind of
      // operation has been acknowledged once (else the checks below would prove nothing about it), the
      // kill waits for that, up to 60 s; it still lands while the other loops are mid-flight.
      const everyKindAcked = (): boolean =>
        acks.issued.size > preissued.length && acks.revokedCerts.size > 0 && acks.keys.size > 0;
      for (const until = Date.now() + 60_000; !everyKindAcked() && Date.now() < until; )
        await new Promise((r) => setTimeout(r, 50));
      inFlightAtKill.push(inFlight);
      server.child.kill('SIGKILL');
      await server.stop();
      dead = true;
      // Straight after the kill, before any repair: the CRL file is old or new, never torn.
      const crlNow = parseCrl(readFileSync(join(dataDir, 'root_crl.pem'), 'utf8'));
      if (!crlNow.signatureValid(caCert)) unexpected.push(`round ${round}: root_crl.pem torn by the kill`);
      await Promise.all(loops);
      a.client.detach();
      b.client.detach();
      server = await start();
    }
    verifyStore(ROUNDS);
    const b = await keyClient(server, bob);
    verifyDeliveries(ROUNDS, b.client);
    b.client.detach();
    await b.session.close();

    t.same(
      unexpected,
      [],
      'every acknowledged operation survived every kill; store, CRL and deliveries consistent',
    );
    t.ok(
      acks.issued.size > preissued.length && acks.revokedCerts.size > 0 && acks.keys.size > 0,
      'each kind of operation was acknowledged at least once',
    );
    t.comment(
      `acknowledged before kills: ${acks.issued.size} certificates, ${acks.revokedCerts.size} certificate revocations, ${acks.keys.size} keys, ${acks.revokedKeys.size} key revocations; operations in flight at the kills: ${inFlightAtKill.join(' ')}`,
    );
    const sorted = [...readyMs].sort((x, y) => x - y);
    t.comment(
      `server ready (spawn to listening) over ${sorted.length} starts: p50 ${sorted[sorted.length >> 1]!.toFixed(0)} ms, max ${sorted[sorted.length - 1]!.toFixed(0)} ms (target ${READY_TARGET_MS} ms)`,
    );
    if (slowStarts.length > 0) t.comment(`slow starts (load average at the time): ${slowStarts.join('; ')}`);
    t.ok(
      sorted[sorted.length - 1]! < READY_GENEROUS_MS,
      `every restart was ready within the generous bound of ${READY_GENEROUS_MS} ms`,
    );
    await server.stop('SIGTERM');
  },
);
