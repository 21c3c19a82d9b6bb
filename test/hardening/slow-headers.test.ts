// Slow headers against the KDC's HTTP server, before any WebSocket upgrade (docs/attacks.md, "Hostile
// peers"). The attack: open TCP connections and send half a request (or nothing), holding a file
// descriptor each for as long as the server waits for headers (Node's default: 60 s, checked every
// 30 s), from one address, by the thousand. What must hold:
//   - per address, at most maxConnectionsPerAddress TCP connections at once: the rest are closed as
//     they arrive, before any HTTP parsing;
//   - a connection that has not sent its headers within headersTimeoutMs is closed;
//   - at most maxConnections TCP connections in all;
//   - while one address holds thousands of attempts, an honest client from another address gets
//     GET /healthz and a session's ping served within a generous bound (10 s).
// Attackers connect from 127.0.0.2 and up (Linux routes 127.0.0.0/8 to lo), the honest client from
// 127.0.0.1.
import t from 'tap';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { DEFAULT_MAX_CONNECTIONS_PER_ADDRESS } from '../../server/kdc/limits.js';
import type { KdcOptions } from '../../server/kdc/kdc.js';
import { issueTestClient, sessionFor, startTestKdc } from '../helpers/kdc-in-process.js';

t.setTimeout(120_000);

const SERVED_WITHIN_MS = 10_000;
const HEADERS_TIMEOUT_MS = 1_500;

interface Holder {
  /** Sockets the server closed, and how long after they connected. */
  closedAfter: number[];
  open(): number;
  stop(): Promise<void>;
}

/**
 * `count` connections from `addresses`, each sending half a request line (or, every other one,
 * nothing at all). With `reconnect`, every connection the server closes is opened again (a sustained
 * attack).
 */
function holdConnections(
  port: number,
  count: number,
  addresses: readonly string[],
  reconnect: boolean,
): Holder {
  const live = new Set<Socket>();
  const closedAfter: number[] = [];
  let stopped = false;
  const one = (i: number): void => {
    if (stopped) return;
    const started = performance.now();
    let connected = false;
    const socket = connect({ host: '127.0.0.1', port, localAddress: addresses[i % addresses.length]! });
    live.add(socket);
    socket.on('connect', () => {
      connected = true;
      if (i % 2 === 0) socket.write('GET /healthz HTTP/1.1\r\nHost: kds\r\n'); // never the blank line
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      live.delete(socket);
      if (stopped) return;
      if (connected) closedAfter.push(performance.now() - started);
      if (reconnect) setTimeout(() => one(i), 20);
    });
  };
  for (let i = 0; i < count; i++) one(i);
  return {
    closedAfter,
    open: () => live.size,
    stop: async () => {
      stopped = true;
      const all = [...live];
      for (const s of all) s.destroy();
      await new Promise((r) => setImmediate(r));
    },
  };
}

function within<T>(p: Promise<T>, ms: number): Promise<T | 'hang'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<'hang'>((r) => (timer = setTimeout(() => r('hang'), ms)))]).finally(
    () => clearTimeout(timer),
  );
}

const waitFor = async (what: () => boolean, ms: number): Promise<boolean> => {
  const until = performance.now() + ms;
  while (!what() && performance.now() < until) await new Promise((r) => setTimeout(r, 50));
  return what();
};

t.test('one address holding thousands of half-sent requests', async (t) => {
  const { kdc } = await startTestKdc(t, { headersTimeoutMs: HEADERS_TIMEOUT_MS } as Partial<KdcOptions>);
  const honest = await issueTestClient(kdc.ca, 'honest');
  const cap = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
  const attempts = cap + 1_500;
  const attack = holdConnections(kdc.port, attempts, ['127.0.0.2'], false);
  t.teardown(() => attack.stop());
  const refused = await waitFor(() => attack.closedAfter.length >= attempts - cap, 10_000);
  t.ok(
    refused,
    `connections over the per-address cap (${cap}) are closed at once: ${attack.closedAfter.length} of ${attempts - cap}`,
  );

  const started = performance.now();
  const health = await within(
    fetch(`${kdc.httpUrl}/healthz`).then((r) => r.status),
    SERVED_WITHIN_MS,
  );
  t.equal(
    health,
    200,
    `GET /healthz from another address served (${(performance.now() - started).toFixed(0)} ms)`,
  );
  const pong = await within(
    (async () => {
      const session = await sessionFor(kdc, honest);
      try {
        return (await session.request('ping', {})).pong;
      } finally {
        await session.close();
      }
    })(),
    SERVED_WITHIN_MS,
  );
  t.equal(pong, true, 'an honest session is served while the attacker holds its connections');

  const timedOut = await waitFor(() => attack.open() === 0, HEADERS_TIMEOUT_MS + 8_000);
  t.ok(
    timedOut,
    `every connection without headers is closed after the headers timeout (${attack.open()} left)`,
  );
});

t.test('a sustained attack from one address does not lock another out', async (t) => {
  const { kdc } = await startTestKdc(t, { headersTimeoutMs: HEADERS_TIMEOUT_MS } as Partial<KdcOptions>);
  const honest = await issueTestClient(kdc.ca, 'honest-2');
  const attack = holdConnections(kdc.port, 3_000, ['127.0.0.3'], true);
  t.teardown(() => attack.stop());
  await new Promise((r) => setTimeout(r, 1_000));
  for (let round = 0; round < 3; round++) {
    const pong = await within(
      (async () => {
        const session = await sessionFor(kdc, honest);
        try {
          const health = (await fetch(`${kdc.httpUrl}/healthz`)).status;
          return health === 200 && (await session.request('ping', {})).pong === true;
        } finally {
          await session.close();
        }
      })(),
      SERVED_WITHIN_MS,
    );
    t.equal(pong, true, `round ${round + 1}: /healthz and a session's ping served`);
  }
});

t.test('the global cap: at most maxConnections TCP connections at once', async (t) => {
  const max = 40;
  const { kdc } = await startTestKdc(t, {
    maxConnections: max,
    maxConnectionsPerAddress: 10,
    headersTimeoutMs: 30_000,
  } as Partial<KdcOptions>);
  const addresses = Array.from({ length: 10 }, (_, i) => `127.0.0.${10 + i}`);
  const attack = holdConnections(kdc.port, 100, addresses, false);
  t.teardown(() => attack.stop());
  const settled = await waitFor(() => attack.closedAfter.length >= 100 - max, 10_000);
  t.ok(
    settled,
    `the connections over the global cap were closed: ${attack.closedAfter.length} of ${100 - max}`,
  );
  await new Promise((r) => setTimeout(r, 300));
  t.ok(attack.open() <= max, `no more than ${max} held (${attack.open()})`);
});
