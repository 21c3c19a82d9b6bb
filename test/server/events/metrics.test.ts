// The metrics reader counts what the bus carries: labelled counters by their label values, summed per
// series, the same totals on every scrape (a scrape reads the counts, it never adds them again), a
// cascade counted by its number of keys; a request type the handler registry does not know is
// `unknown`. Read back through a Prometheus text-format parser, as a scraper reads them.
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import t from 'tap';
import { EventBus } from '../../../server/events/bus.js';
import { KdcMetrics } from '../../../server/events/metrics.js';

type Families = ReturnType<typeof parsePrometheusTextFormat>;

function series(families: Families, name: string): Record<string, number> {
  const family = families.find((f) => f.name === name);
  if (family === undefined) return {};
  return Object.fromEntries(
    family.metrics.map((m) => [
      Object.entries(m.labels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
      Number(m.value),
    ]),
  );
}

t.test('prom-client loads only with load(); the events before it are all counted', async (t) => {
  // First in this file: nothing before it loaded prom-client. A KDC calls load() once it listens (kds server start is ~45 ms of CPU shorter before it listens).
  const { createRequire } = await import('node:module');
  const cache = createRequire(import.meta.url).cache;
  const promLoaded = (): boolean => Object.keys(cache).some((path) => path.includes('/prom-client/'));
  const bus = new EventBus();
  const metrics = new KdcMetrics(bus);
  t.teardown(() => metrics.close());
  for (let i = 0; i < 3; i++)
    bus.emit({ type: 'key.created', serial: `s${i}`, owner: 'alice', peer: 'bob', mode: 'kdc' });
  bus.emit({ type: 'store.commit', callers: 4, durationMs: 3 });
  t.notOk(promLoaded(), 'not loaded by counting');
  await metrics.load();
  t.ok(promLoaded(), 'loaded by load()');
  bus.emit({ type: 'key.created', serial: 's3', owner: 'alice', peer: 'bob', mode: 'e2e' });
  const families = parsePrometheusTextFormat(await metrics.render());
  t.same(series(families, 'kds_keys_created_total'), { 'mode=kdc': 3, 'mode=e2e': 1 });
  const commits = families.find((f) => f.name === 'kds_store_commit_duration_seconds');
  t.equal(Number((commits?.metrics[0] as { count?: string } | undefined)?.count), 1, 'the early commit');
});

t.test('counters by label values; every scrape gives the same totals', async (t) => {
  const bus = new EventBus();
  const metrics = new KdcMetrics(bus);
  t.teardown(() => metrics.close());
  const handshake = (group: string): void =>
    bus.emit({
      type: 'handshake.completed',
      connection: 'c',
      address: '127.0.0.1',
      name: 'alice',
      serial: 'ab',
      role: 'client',
      mode: 'auth',
      group,
      durationMs: 2,
    });
  handshake('x25519');
  handshake('x25519');
  handshake('ffdhe2048');
  bus.emit({
    type: 'handshake.refused',
    connection: 'c',
    address: '127.0.0.1',
    code: 'bad_signature',
    by: 'kdc',
    durationMs: 1,
  });
  for (const code of ['ok', 'ok', 'not_found'])
    bus.emit({
      type: 'request.served',
      connection: 'c',
      name: 'alice',
      role: 'client',
      request: 'key.create',
      code,
      durationMs: 1,
    });
  bus.emit({ type: 'key.created', serial: 's', owner: 'alice', peer: 'bob', mode: 'kdc' });
  bus.emit({ type: 'key.created', serial: 's', owner: 'alice', peer: 'bob', mode: 'e2e' });
  bus.emit({ type: 'key.revoked', serial: 's', by: 'alice', reason: 'superseded' });
  bus.emit({ type: 'key.cascade', name: 'bob', certSerial: 'cd', keys: 5 });
  bus.emit({ type: 'key.verified', serial: 's', by: 'bob', verdict: 'valid' });

  const first = await metrics.render();
  const families = parsePrometheusTextFormat(first);
  t.same(series(families, 'kds_handshakes_total'), {
    'outcome=ok,group=x25519,code=ok': 2,
    'outcome=ok,group=ffdhe2048,code=ok': 1,
    'outcome=refused,group=none,code=bad_signature': 1,
  });
  t.same(series(families, 'kds_requests_total'), {
    'type=unknown,code=ok': 2,
    'type=unknown,code=not_found': 1,
  });
  t.same(series(families, 'kds_keys_created_total'), { 'mode=kdc': 1, 'mode=e2e': 1 });
  t.same(series(families, 'kds_revocations_total'), { 'kind=key': 1, 'kind=key_cascade': 5 });
  t.same(series(families, 'kds_key_verifications_total'), { 'verdict=valid': 1 });
  t.same(series(families, 'kds_request_refusals_total'), {}, 'no series before the first refusal');

  const second = parsePrometheusTextFormat(await metrics.render());
  for (const name of ['kds_handshakes_total', 'kds_requests_total', 'kds_revocations_total'])
    t.same(series(second, name), series(families, name), `${name}: a second scrape adds nothing`);

  handshake('x25519');
  t.equal(
    series(parsePrometheusTextFormat(await metrics.render()), 'kds_handshakes_total')[
      'outcome=ok,group=x25519,code=ok'
    ],
    3,
  );
});

t.test(
  'while prom-client loads, at most 10,000 events are held; the rest are counted as reader errors',
  async (t) => {
    const bus = new EventBus();
    let release: (() => void) | undefined;
    const metrics = new KdcMetrics(bus, {
      importPromClient: async () => {
        await new Promise<void>((resolve) => (release = resolve));
        return import('prom-client');
      },
    });
    t.teardown(() => metrics.close());
    const loading = metrics.load();
    for (let i = 0; i < 10_005; i++)
      bus.emit({ type: 'key.created', serial: `s${i}`, owner: 'alice', peer: 'bob', mode: 'kdc' });
    t.same(metrics.early, { held: 10_000, dropped: 5 }, 'bounded while the import hangs');
    release!();
    await loading;
    t.same(metrics.early, { held: 0, dropped: 5 }, 'the held events counted and let go');
    metrics.bind({
      sessionCount: () => 0,
      connectionCount: () => 0,
      readerErrors: () => 1,
      requestTypes: [],
    } as unknown as Parameters<KdcMetrics['bind']>[0]);
    const families = parsePrometheusTextFormat(await metrics.render());
    t.same(series(families, 'kds_keys_created_total'), { 'mode=kdc': 10_000 });
    t.same(series(families, 'kds_event_reader_errors'), { '': 6 }, 'the dropped ones show as reader errors');
  },
);

t.test('a failed import lets the held events go and keeps no more; a scrape fails', async (t) => {
  const bus = new EventBus();
  const metrics = new KdcMetrics(bus, { importPromClient: () => Promise.reject(new Error('no module')) });
  t.teardown(() => metrics.close());
  bus.emit({ type: 'key.created', serial: 's0', owner: 'alice', peer: 'bob', mode: 'kdc' });
  t.same(metrics.early, { held: 1, dropped: 0 });
  await t.rejects(metrics.load(), { message: 'no module' });
  for (let i = 0; i < 100; i++)
    bus.emit({ type: 'key.created', serial: `s${i}`, owner: 'alice', peer: 'bob', mode: 'kdc' });
  t.same(metrics.early, { held: 0, dropped: 0 }, 'nothing held after the failure');
  await t.rejects(metrics.render(), { message: 'no module' }, 'the scrape fails (the endpoint answers 500)');
});
