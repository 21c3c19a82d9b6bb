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
import { dirname, join } from 'node:path';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type * as Tap from 'tap';
import { openSession } from '../../client/session.js';
import { DEFAULT_RATE_LIMIT } from '../../server/kdc/limits.js';
import { CertificateAuthority } from '../../server/ca/authority.js';
import { issueTestClient } from '../helpers/kdc-in-process.js';
import { initDataDir, startServer, TEST_CA_PASSPHRASE, type ServerProcess } from '../helpers/kds-process.js';
import { PARAMS, param } from '../helpers/hardening-params.js';

const CONNECTIONS = param(PARAMS.floodConnections);
/** The honest handshake's target, from the issue. Reported, and asserted only with a wide margin. */
const TARGET_MS = 2_000;
const GENEROUS_MS = 15_000;
const here = dirname(fileURLToPath(import.meta.url));
/** server/kdc/limits.ts DEFAULT_RATE_LIMIT, which `kds server start` uses. */
const RATE_BURST = DEFAULT_RATE_LIMIT.burst;
const RATE_PER_SECOND = DEFAULT_RATE_LIMIT.perSecond;

interface FloodStats {
  opened: number;
  connectErrors: number;
  helloAnswered: number;
  endedBy: Record<string, number>;
}

interface Flood {
  stop(): Promise<FloodStats>;
}

/** The attacker: fixtures/flood-worker.js in a child process (its own CPU and event loop). */
async function flood(
  t: Tap.Test,
  server: ServerProcess,
  caCertPem: string,
  connections: number,
  addresses: number,
): Promise<Flood> {
  const child = fork(
    join(here, 'fixtures', 'flood-worker.js'),
    [JSON.stringify({ url: server.url, caCertPem, connections, addresses })],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // Not this process's flags: fork() would pass tap's process-info loader on the command line,
      // where test/helpers/preload.ts cannot take it out, and the child would record coverage the run
      // then reports as incomplete (exit 1).
      execArgv: [],
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  await new Promise<void>((resolve) => child.once('message', () => resolve()));
  return {
    stop: () =>
      new Promise<FloodStats>((resolve) => {
        child.once('message', (m) => resolve((m as { stats: FloodStats }).stats));
        child.send('stop');
      }),
  };
}

async function connectionsOf(server: ServerProcess): Promise<number> {
  const h = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { connections: number };
  return h.connections;
}

t.test('handshake flood', { timeout: 180_000 }, async (t) => {
  const dataDir = await initDataDir(t);
  const ca = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  const honestId = await issueTestClient(ca, 'honest');
  await ca.close();
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

  const scenarios: [string, number][] = [
    ['one attacker address', 1],
    ['100 attacker addresses', 100],
  ];
  for (const [label, addresses] of scenarios) {
    const floodStarted = performance.now();
    const f = await flood(t, server, caCertPem, CONNECTIONS, addresses);
    let stats: FloodStats | undefined;
    try {
      // Let the flood reach its steady state: the cap is full, or the rate limit is refusing.
      for (let i = 0; i < 60 && (await connectionsOf(server)) < 200; i++)
        await new Promise((r) => setTimeout(r, 50));
      t.comment(`${label}: ${await connectionsOf(server)} connections open at the server`);
      const ms = await honestHandshake(label);
      t.ok(ms < GENEROUS_MS, `${label}: well within the generous bound`);
    } finally {
      const stopping = performance.now();
      stats = await f.stop();
      t.comment(`${label}: attacker stopped in ${(performance.now() - stopping).toFixed(0)} ms`);
    }
    t.comment(
      `${label}: ${stats.opened} attacker connections (${stats.connectErrors} connect errors), ended by ${Object.entries(
        stats.endedBy,
      )
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}; ${stats.helloAnswered} server_hellos signed for them`,
    );
    // The RSA work an address can cause is bounded by its token bucket (64, then 32/s), spent at
    // admission before the client_hello is read: one signed server_hello per admitted hello at most.
    const floodSeconds = (performance.now() - floodStarted) / 1000;
    const bound = addresses * (RATE_BURST + RATE_PER_SECOND * floodSeconds);
    t.ok(
      stats.helloAnswered <= bound,
      `${label}: ${stats.helloAnswered} signatures for the attacker <= ${bound.toFixed(0)} (the rate limit's bound)`,
    );
    // Drain: every attacker connection goes away, nothing leaks.
    for (let i = 0; i < 100 && (await connectionsOf(server)) > 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    t.equal(await connectionsOf(server), 0, `${label}: no connection left behind after the flood`);
  }
  t.equal(server.child.exitCode, null, 'the server survived both floods');
});
