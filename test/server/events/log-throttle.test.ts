// Repeated refusals in the log (server/events/log-throttle.ts): per kind (event type, peer, code or
// limit) the first PER_WINDOW lines of a window are written and the rest counted, then reported once
// when the window ends; other events always pass; a flood from many peers shares one kind per type
// beyond the table's size. Then through the log reader: the lines a refusal flood leaves in the log.
import t from 'tap';
import { EventBus } from '../../../server/events/bus.js';
import { attachLogReader } from '../../../server/events/log-reader.js';
import { LogThrottle, PER_WINDOW, WINDOW_MS } from '../../../server/events/log-throttle.js';
import type { KdcEvent } from '../../../shared/events/kdc-events.js';

const refusedFrom = (address: string, at = 0): KdcEvent => ({
  type: 'connection.refused',
  at,
  address,
  code: 'too_many_connections',
  limit: 'per_address_cap',
});

function throttle(now: { t: number }) {
  const reports: [KdcEvent, number][] = [];
  const th = new LogThrottle({ now: () => now.t, onSuppressed: (e, n) => reports.push([e, n]) });
  return { th, reports };
}

t.test('per kind: the first of a window written, the rest counted and reported once', async (t) => {
  const now = { t: 1_000 };
  const { th, reports } = throttle(now);
  const admitted = Array.from({ length: 100 }, () => th.admit(refusedFrom('10.0.0.1'))).filter(Boolean);
  t.equal(admitted.length, PER_WINDOW, `${PER_WINDOW} of 100 written`);
  t.ok(th.admit(refusedFrom('10.0.0.2')), 'another address is another kind');
  t.ok(th.admit({ type: 'kdc.warning', at: 0, message: 'x' }), 'other events always pass');
  th.flush();
  t.same(reports, [], 'nothing reported before the window ends');
  now.t += WINDOW_MS;
  th.flush();
  t.equal(reports.length, 1);
  t.equal(reports[0]![1], 100 - PER_WINDOW, 'the count of what was held back');
  t.match(reports[0]![0], { address: '10.0.0.1' }, 'named by the first held back');
  t.ok(th.admit(refusedFrom('10.0.0.1')), 'a new window writes again');
  th.flush();
  t.equal(reports.length, 1, 'a window with nothing held back reports nothing');
});

t.test('a window that ends while events keep coming is reported by the next event', async (t) => {
  const now = { t: 0 };
  const { th, reports } = throttle(now);
  for (let i = 0; i < PER_WINDOW + 5; i++) th.admit(refusedFrom('10.0.0.1'));
  now.t = WINDOW_MS;
  t.ok(th.admit(refusedFrom('10.0.0.1')));
  t.same(
    reports.map(([, n]) => n),
    [5],
  );
});

t.test('requests refused by a quota: per name, request and code', async (t) => {
  const now = { t: 0 };
  const { th } = throttle(now);
  const refused = (request: string): KdcEvent => ({
    type: 'request.refused',
    at: 0,
    connection: 'c',
    name: 'alice',
    role: 'client',
    request,
    code: 'rate_limited',
    message: 'slow down',
  });
  let a = 0;
  let b = 0;
  for (let i = 0; i < 50; i++) {
    if (th.admit(refused('key.create'))) a++;
    if (th.admit(refused('key.reserve'))) b++;
  }
  t.same([a, b], [PER_WINDOW, PER_WINDOW]);
});

t.test('a flood from many addresses: the table stays bounded, the rest share one kind', async (t) => {
  const now = { t: 0 };
  const { th, reports } = throttle(now);
  let written = 0;
  for (let i = 0; i < 5_000; i++) if (th.admit(refusedFrom(`10.0.${i >> 8}.${i & 255}`))) written++;
  t.equal(
    written,
    1_000 + PER_WINDOW,
    'one line for each of the first 1,000 addresses, then 20 for the rest',
  );
  th.close();
  t.same(
    reports.map(([, n]) => n),
    [5_000 - 1_000 - PER_WINDOW],
    'the rest reported at close',
  );
});

t.test('the log reader: a refusal flood leaves its first lines and one count', async (t) => {
  const lines: string[] = [];
  const bus = new EventBus();
  const reader = await attachLogReader(bus, {
    format: 'text',
    level: 'info',
    write: (chunk) => lines.push(...chunk.split('\n').filter((l) => l !== '')),
  });
  for (let i = 0; i < 500; i++) bus.emit(refusedFrom('10.0.0.9'));
  bus.emit({ type: 'kdc.warning', message: 'still here' });
  reader.close();
  t.equal(
    lines.filter((l) => /connection refused: too_many_connections/.test(l) && !/more lines/.test(l)).length,
    PER_WINDOW,
  );
  t.ok(
    lines.some((l) => /still here/.test(l)),
    'other lines are written',
  );
  t.match(
    lines.at(-1),
    /480 more lines like "10\.0\.0\.9 connection refused: too_many_connections \(per address cap\)" in the last 10 s were not written/,
  );
});
