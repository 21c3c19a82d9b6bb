// Handshake flood against a live server process with its default limits (256 connections in their
// handshake, a per-IP token bucket of 64 + 32/s, a 10 s handshake timeout). KDS_FLOOD_CONNECTIONS
// (500) attacker connections that start handshakes and never finish them: a third send a valid
// client_hello (the server signs an answer) and then nothing, a third connect and send nothing, a third
// send garbage. While the flood is SUSTAINED (every attacker connection that is closed, refused or
// evicted reconnects at once), an honest client must complete its handshake; the time it took is
// printed and compared with the 2 s target (a generous bound is asserted: no wall-clock in tests).
//   1. One attacker address: the rate limit refuses most of it before any RSA work.
//   2. 100 attacker addresses (5 connections each): every connection is within its per-IP budget,
//      so the flood fills the unauthenticated cap; the server must still let the honest client in
//      (server/kdc/kdc.ts evicts the oldest connection still in its handshake when the cap is full).
// The honest client connects from 127.0.0.1, the attackers from 127.0.0.2 and up.
import t from 'tap';
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSession } from '../../client/session.js';
import { decodeFrame } from '../../shared/protocol/messages.js';
import { CertificateAuthority } from '../../server/ca/authority.js';
import { issueTestClient } from '../helpers/kdc-in-process.js';
import { initDataDir, startServer, TEST_CA_PASSPHRASE, type ServerProcess } from '../helpers/kds-process.js';
import { loopbackAddress, newClientHandshake, rawConnect } from '../helpers/raw-client.js';
import { PARAMS, param } from '../helpers/hardening-params.js';

const CONNECTIONS = param(PARAMS.floodConnections);
/** The honest handshake's target, from the issue. Reported, and asserted only with a wide margin. */
const TARGET_MS = 2_000;
const GENEROUS_MS = 15_000;

interface Flood {
  stop(): Promise<void>;
  stats: { opened: number; refused: Map<string, number>; helloAnswered: number; errors: number };
}

/** `n` attacker workers, worker i on address addressOf(i), each reconnecting until stopped. */
function flood(server: ServerProcess, caCertPem: string, n: number, addressOf: (i: number) => string): Flood {
  let stopping = false;
  const stats = { opened: 0, refused: new Map<string, number>(), helloAnswered: 0, errors: 0 };
  const live = new Set<{ destroy(): void }>();
  const worker = async (i: number): Promise<void> => {
    while (!stopping) {
      let conn;
      try {
        conn = await rawConnect(server.url, { localAddress: addressOf(i), timeoutMs: 5_000 });
      } catch {
        stats.errors += 1;
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      stats.opened += 1;
      live.add(conn);
      const kind = i % 3;
      if (kind === 0) conn.send(newClientHandshake({ caCertPem, mode: 'enroll' }).clientHello());
      else if (kind === 2) conn.send(Buffer.from('GET / HTTP/1.0\r\n\r\n'));
      // kind 1: say nothing at all
      for (;;) {
        const frame = await conn.next(60_000);
        if (frame === undefined || frame === 'hang' || stopping) break;
        if (isServerHello(frame)) stats.helloAnswered += 1;
      }
      const { reason } = await conn.closed;
      stats.refused.set(reason || 'closed', (stats.refused.get(reason || 'closed') ?? 0) + 1);
      live.delete(conn);
    }
  };
  const workers = Array.from({ length: n }, (_, i) => worker(i));
  return {
    stats,
    stop: async () => {
      stopping = true;
      for (const c of live) c.destroy();
      await Promise.all(workers);
    },
  };
}

function isServerHello(frame: Buffer): boolean {
  try {
    return decodeFrame(frame).t === 'server_hello';
  } catch {
    return false;
  }
}

async function connectionsOf(server: ServerProcess): Promise<number> {
  const h = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { connections: number };
  return h.connections;
}

t.test('handshake flood', { timeout: 180_000 }, async (t) => {
  const dataDir = await initDataDir(t);
  const ca = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  const honestId = await issueTestClient(ca, 'honest');
  ca.close();
  const server = await startServer(t, dataDir);
  const caCertPem = readFileSync(join(dataDir, 'root_ca.pem'), 'utf8');

  const honestHandshake = async (label: string): Promise<number> => {
    const started = performance.now();
    const session = await openSession({
      server: server.url,
      mode: 'auth',
      credentials: { privateKey: honestId.privateKey, certPem: honestId.certPem },
      caCertPem,
      connectTimeoutMs: GENEROUS_MS,
    });
    const ms = performance.now() - started;
    t.equal(session.facts.identity.name, 'honest', `${label}: the honest client completed its handshake`);
    t.equal((await session.request('ping', {})).pong, true, `${label}: and its session works`);
    await session.close();
    t.comment(`${label}: honest handshake took ${ms.toFixed(0)} ms (target ${TARGET_MS} ms)`);
    return ms;
  };

  const scenarios: [string, (i: number) => string][] = [
    ['one attacker address', () => '127.0.0.2'],
    ['100 attacker addresses', (i) => loopbackAddress(1 + (i % 100))],
  ];
  for (const [label, addressOf] of scenarios) {
    const f = flood(server, caCertPem, CONNECTIONS, addressOf);
    // Let the flood reach its steady state: the cap is full or the rate limit is refusing.
    for (let i = 0; i < 100 && f.stats.opened < CONNECTIONS; i++) await new Promise((r) => setTimeout(r, 50));
    t.comment(`${label}: ${f.stats.opened} attacker connections opened, ${await connectionsOf(server)} open at the server`);
    const ms = await honestHandshake(label);
    t.ok(ms < GENEROUS_MS, `${label}: well within the generous bound`);
    await f.stop();
    t.comment(
      `${label}: attacker connections ended by ${[...f.stats.refused.entries()].map(([k, v]) => `${k}=${v}`).join(' ')}; server_hellos answered ${f.stats.helloAnswered}`,
    );
    // Drain: every attacker connection goes away, nothing leaks.
    for (let i = 0; i < 100 && (await connectionsOf(server)) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    t.equal(await connectionsOf(server), 0, `${label}: no connection left behind after the flood`);
  }
  t.equal(server.child.exitCode, null, 'the server survived both floods');
});
