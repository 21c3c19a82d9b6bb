// Slow headers against the KDC's HTTP server, before any WebSocket upgrade (docs/attacks.md, "Hostile
// peers"). The attack: open TCP connections and send half a request (or nothing), holding a file
// descriptor each for as long as the server waits for headers (Node's default: 60 s, checked every
// 30 s), from one address, by the thousand. What must hold:
//   - per address, at most maxConnectionsPerAddress TCP connections at once: the rest are closed as
//     they arrive, before any HTTP parsing;
//   - a connection that has not sent its headers within headersTimeoutMs is closed;
//   - at most maxConnections TCP connections in all;
//   - while one address holds thousands of attempts, an honest client from another address gets
//     GET /healthz and a session's ping served within a generous bound (10 s);
//   - `kds server start` takes the limits as flags (--max-connections, --max-connections-per-address,
//     --headers-timeout), a bad value being a usage error.
// Attackers connect from 127.0.0.2 and up (Linux routes 127.0.0.0/8 to lo), the honest client from
// 127.0.0.1.
import t from 'tap';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { DEFAULT_MAX_CONNECTIONS_PER_ADDRESS } from '../../server/kdc/limits.js';
import { issueTestClient, sessionFor, startTestKdc } from '../helpers/kdc-in-process.js';
import { initDataDir, runKds, startServer } from '../helpers/kds-process.js';

t.setTimeout(120_000);

const SERVED_WITHIN_MS = 10_000;
const HEADERS_TIMEOUT_MS = 1_500;

interface Holder {
  /** Sockets the server closed after they connected. */
  closedAfter: number[];
  /** Connected sockets the server still holds open. */
  open(): number;
  /** Resolves once `count` connections were attempted and each has connected or failed. */
  started: Promise<void>;
  stop(): Promise<void>;
}

/**
 * `count` connections from `addresses`, each sending half a request line (or, every other one,
 * nothing at all), opened in waves of WAVE so that the kernel's accept queue never overflows (a SYN
 * dropped there is retried seconds later, which would blur what the server did). With `reconnect`,
 * every connection the server closes is opened again (a sustained attack).
 */
const WAVE = 200;
function holdConnections(
  port: number,
  count: number,
  addresses: readonly string[],
  reconnect: boolean,
): Holder {
  const connected = new Set<Socket>();
  const all = new Set<Socket>();
  const closedAfter: number[] = [];
  let stopped = false;
  const one = (i: number): Promise<void> =>
    new Promise((settled) => {
      if (stopped) return settled();
      const started = performance.now();
      const socket = connect({ host: '127.0.0.1', port, localAddress: addresses[i % addresses.length]! });
      all.add(socket);
      socket.resume(); // read (and drop) what the server answers, so its close is seen
      socket.on('connect', () => {
        connected.add(socket);
        if (i % 2 === 0) socket.write('GET /healthz HTTP/1.1\r\nHost: kds\r\n'); // never the blank line
        settled();
      });
      socket.on('error', () => settled());
      socket.on('close', () => {
        all.delete(socket);
        settled();
        if (stopped) return;
        if (connected.delete(socket)) closedAfter.push(performance.now() - started);
        if (reconnect) setTimeout(() => void one(i), 20);
      });
    });
  const started = (async () => {
    for (let i = 0; i < count; i += WAVE) {
      await Promise.all(Array.from({ length: Math.min(WAVE, count - i) }, (_, k) => one(i + k)));
    }
  })();
  return {
    closedAfter,
    open: () => connected.size,
    started,
    stop: async () => {
      stopped = true;
      for (const s of [...all]) s.destroy();
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

t.test('one address holding thousands of half-sent requests: the per-address cap', async (t) => {
  // A long headers timeout here, so that every close seen comes from the cap.
  const { kdc } = await startTestKdc(t, { headersTimeoutMs: 60_000 });
  const honest = await issueTestClient(kdc.ca, 'honest');
  const cap = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
  const attempts = cap + 1_500;
  const attack = holdConnections(kdc.port, attempts, ['127.0.0.2'], false);
  t.teardown(() => attack.stop());
  await attack.started;
  const refused = await waitFor(() => attack.closedAfter.length >= attempts - cap, 5_000);
  t.ok(
    refused,
    `connections over the cap (${cap}) are closed: ${attack.closedAfter.length} of ${attempts - cap}`,
  );
  t.equal(attack.open(), cap, `the address holds exactly its cap of ${cap}`);
  t.ok(
    attack.closedAfter.every((ms) => ms < SERVED_WITHIN_MS),
    'each at once (not by a timeout)',
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
});

t.test('the headers timeout closes connections that never finish their headers', async (t) => {
  const { kdc } = await startTestKdc(t, { headersTimeoutMs: HEADERS_TIMEOUT_MS });
  const honest = await issueTestClient(kdc.ca, 'patient');
  // An upgraded (WebSocket) connection is past its headers: it must outlive the timeout.
  const session = await sessionFor(kdc, honest);
  const attack = holdConnections(kdc.port, 200, ['127.0.0.4'], false);
  t.teardown(() => attack.stop());
  await attack.started;
  t.equal(attack.open(), 200, 'under the per-address cap: all held at first');
  const timedOut = await waitFor(() => attack.open() === 0, HEADERS_TIMEOUT_MS + 8_000);
  t.ok(timedOut, `all closed after the headers timeout (${attack.open()} left)`);
  t.ok(
    attack.closedAfter.every((ms) => ms >= HEADERS_TIMEOUT_MS - 100),
    `none before ${HEADERS_TIMEOUT_MS} ms`,
  );
  t.same(await session.request('ping', {}), { pong: true }, 'the WebSocket session is still served');
  await session.close();
  // The closed ones gave their places back: the same address may open as many again.
  const again = holdConnections(kdc.port, 200, ['127.0.0.4'], false);
  t.teardown(() => again.stop());
  await again.started;
  t.equal(again.open(), 200, 'the address can hold its connections again');
  t.equal(again.closedAfter.length, 0, 'none refused');
});

t.test('a sustained attack from one address does not lock another out', async (t) => {
  const { kdc } = await startTestKdc(t, { headersTimeoutMs: HEADERS_TIMEOUT_MS });
  const honest = await issueTestClient(kdc.ca, 'honest-2');
  const attack = holdConnections(kdc.port, 2_000, ['127.0.0.3'], true);
  t.teardown(() => attack.stop());
  await attack.started;
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
  });
  const addresses = Array.from({ length: 10 }, (_, i) => `127.0.0.${10 + i}`);
  const attack = holdConnections(kdc.port, 100, addresses, false);
  t.teardown(() => attack.stop());
  await attack.started;
  const settled = await waitFor(() => attack.closedAfter.length >= 100 - max, 10_000);
  t.ok(
    settled,
    `the connections over the global cap were closed: ${attack.closedAfter.length} of ${100 - max}`,
  );
  await new Promise((r) => setTimeout(r, 300));
  t.ok(attack.open() <= max, `no more than ${max} held (${attack.open()})`);
});

t.test('kds server start: the limits as flags', async (t) => {
  const dataDir = await initDataDir(t);
  const bad = await runKds([
    'server',
    'start',
    '--data-dir',
    dataDir,
    '--port',
    '0',
    '--max-connections',
    '0',
    '--json',
  ]);
  t.equal(bad.code, 2, 'a limit that is not a positive integer is a usage error');
  // With --json the usage error is the JSON on stdout (docs/cli.md).
  t.match(JSON.parse(bad.stdout), {
    error: {
      code: 'bad_request',
      message: /--max-connections: expected a whole number from 1 to 1000000 in decimal digits, got "0"/,
    },
  });
  const server = await startServer(t, dataDir, [
    '--max-connections-per-address',
    '5',
    '--headers-timeout',
    '1000',
  ]);
  const port = Number(new URL(server.httpUrl).port);
  const attack = holdConnections(port, 8, ['127.0.0.5'], false);
  t.teardown(() => attack.stop());
  await attack.started;
  t.ok(await waitFor(() => attack.closedAfter.length >= 3, 5_000), 'connections over 5 closed at once');
  t.ok(await waitFor(() => attack.open() === 0, 9_000), 'the other 5 closed by the 1 s headers timeout');
  t.equal((await fetch(`${server.httpUrl}/healthz`)).status, 200, 'the server serves on');
});
