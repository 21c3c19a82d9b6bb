// Requests in flight per session (server/kdc/connection.ts, docs/security.md "Hostile peers"): an
// authenticated session has at most MAX_IN_FLIGHT_REQUESTS handlers running at once, an anonymous
// (enrollment) session one. What comes in beyond that waits, in order, with the socket paused (TCP
// backpressure), and is served as earlier requests finish: nothing is refused for pipelining. Frames
// already read when the socket was paused are queued up to MAX_QUEUED_RECORDS; a session that overflows
// that queue is closed with `rate_limited`.
import t from 'tap';
import { HandlerRegistry } from '../../../server/kdc/dispatch.js';
import {
  MAX_ANONYMOUS_REQUESTS,
  MAX_IN_FLIGHT_REQUESTS,
  MAX_QUEUED_RECORDS,
} from '../../../server/kdc/limits.js';
import { defineAppType } from '../../../shared/protocol/catalog.js';
import { encodeValue } from '../../../shared/protocol/codec.js';
import { s } from '../../../shared/protocol/schema.js';
import { startFrameHarness } from '../../helpers/frame-harness.js';
import { issueTestClient, sessionFor, startTestKdc } from '../../helpers/kdc-in-process.js';
import { rawHandshake } from '../../helpers/raw-client.js';

t.setTimeout(120_000);

// A request type whose handler waits for the test to open a gate, counting how many run at once.
defineAppType('test.gate', { request: s.map({}), response: s.map({}) });
let running = 0;
let peak = 0;
let open: () => void = () => {};
let gate = Promise.resolve();
function closeGate(): void {
  gate = new Promise((resolve) => (open = resolve));
  running = 0;
  peak = 0;
}
const registry = new HandlerRegistry({
  'test.gate': {
    roles: ['client', 'anonymous'],
    handle: async () => {
      running += 1;
      peak = Math.max(peak, running);
      await gate;
      running -= 1;
      return {};
    },
  },
  ping: { roles: ['client'], handle: async () => ({ pong: true }) },
});

const { kdc, dataDir } = await startTestKdc(t, { registry });
const alice = await issueTestClient(kdc.ca, 'alice');
const bob = await issueTestClient(kdc.ca, 'bob');
const caCertPem = kdc.ca.caCertPem;
/** Wait until `n` handlers run (or 10 s), then a little longer: had more been let through, they would run by then. */
async function settleAt(n: number): Promise<void> {
  const until = Date.now() + 10_000;
  while (peak < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 300));
}

t.test(
  'an authenticated session: MAX_IN_FLIGHT_REQUESTS at once, the rest wait and are served',
  async (t) => {
    closeGate();
    const raw = await rawHandshake({
      url: kdc.url,
      mode: 'auth',
      caCertPem,
      credentials: { privateKey: alice.privateKey, certPem: alice.certPem },
    });
    const total = MAX_IN_FLIGHT_REQUESTS * 3 + 5;
    for (let id = 1; id <= total; id++) raw.request('test.gate', id, {});
    await settleAt(MAX_IN_FLIGHT_REQUESTS);
    t.equal(peak, MAX_IN_FLIGHT_REQUESTS, `at most ${MAX_IN_FLIGHT_REQUESTS} handlers ran at once`);
    // Meanwhile another client is served as usual.
    const other = await sessionFor(kdc, bob);
    t.same(
      await other.request('ping', {}, { timeoutMs: 10_000 }),
      { pong: true },
      'another session is served',
    );
    await other.close();
    open();
    const answered = new Set<number>();
    for (let i = 0; i < total; i++) {
      const m = await raw.read(10_000);
      if (typeof m !== 'object' || m.kind !== 'ok') {
        t.fail(`expected an ok response, got ${JSON.stringify(m)}`);
        break;
      }
      answered.add(m.id);
    }
    t.equal(answered.size, total, 'every pipelined request was served (backpressure, not refusal)');
    t.equal(peak, MAX_IN_FLIGHT_REQUESTS, 'and never more at once');
    raw.conn.destroy();
  },
);

t.test('an anonymous session: one request at a time', async (t) => {
  closeGate();
  const raw = await rawHandshake({ url: kdc.url, mode: 'enroll', caCertPem });
  for (let id = 1; id <= MAX_ANONYMOUS_REQUESTS; id++) raw.request('test.gate', id, {});
  await settleAt(1);
  t.equal(peak, 1, 'one handler at a time');
  open();
  for (let i = 0; i < MAX_ANONYMOUS_REQUESTS; i++) t.match(await raw.read(10_000), { kind: 'ok' });
  t.equal(peak, 1);
  raw.conn.destroy();
});

t.test('frames read while paused are bounded: overflowing the queue closes with rate_limited', async (t) => {
  closeGate();
  const harness = await startFrameHarness(kdc, dataDir, { registry });
  const session = await (await harness.fixedHandshake('client', 'queue-filler')).open();
  // The FakeSocket delivers synchronously whatever a paused ws would still deliver from its buffer.
  let id = 0;
  for (let i = 0; i < MAX_IN_FLIGHT_REQUESTS + MAX_QUEUED_RECORDS; i++)
    session.send(session.seal(encodeValue({ t: 'test.gate', id: ++id, b: {} })));
  t.equal(session.sock.isPaused, true, 'the socket is paused while requests wait');
  t.equal(session.conn.closed, false, 'a full queue is still within bounds');
  session.send(session.seal(encodeValue({ t: 'test.gate', id: ++id, b: {} })));
  const closing = await session.next();
  t.match(closing, { t: 'session.closing', b: { code: 'rate_limited' } });
  t.equal(await session.sock.closed, 4004, 'closed with the rate_limited close code');
  open();
});

t.test('the socket is resumed once the backlog drains', async (t) => {
  closeGate();
  const harness = await startFrameHarness(kdc, dataDir, { registry });
  const session = await (await harness.fixedHandshake('client', 'drainer')).open();
  for (let id = 1; id <= MAX_IN_FLIGHT_REQUESTS + 10; id++)
    session.send(session.seal(encodeValue({ t: 'test.gate', id, b: {} })));
  t.equal(session.sock.isPaused, true);
  open();
  for (let i = 0; i < MAX_IN_FLIGHT_REQUESTS + 10; i++) t.match(await session.next(), { t: 'ok' });
  t.equal(session.sock.isPaused, false, 'reading resumed');
  await session.close();
});
