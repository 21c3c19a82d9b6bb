// The store gauges of GET /metrics (kds_keys, kds_delivery_queue_depth) on a PostgreSQL store whose
// sym_keys table another session holds locked (an administrator's LOCK TABLE, a long migration): a
// scrape answers within its short wait with the gauges' last values and their age, the count finishes
// in the background, and scrapes arriving meanwhile share that one count instead of each starting its
// own (they used to wait for the lock, time out at the scraper, and pile up queries holding connections).
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { EventBus } from '../../../server/events/bus.js';
import { KdcMetrics, type MetricsSources } from '../../../server/events/metrics.js';
import { PgStore } from '../../../server/store/pg-store.js';
import { pgRawClient, pgTestSchema } from '../../helpers/pg.js';

type Families = ReturnType<typeof parsePrometheusTextFormat>;

function value(families: Families, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.find((f) => f.name === name);
  const m = family?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  return m === undefined ? undefined : Number((m as { value: string }).value);
}

/** A CRL's DER as countCrlEntries reads it (tbsCertList without revokedCertificates): the CRL gauges need one. */
function emptyCrlPem(): string {
  const tlv = (tag: number, ...content: Buffer[]): Buffer => {
    const body = Buffer.concat(content);
    return Buffer.concat([Buffer.from([tag, body.length]), body]);
  };
  const alg = tlv(0x30, tlv(0x06, Buffer.from('2a864886f70d01010b', 'hex')));
  const tbs = tlv(0x30, alg, tlv(0x30), tlv(0x17, Buffer.from('260101000000Z')));
  const der = tlv(0x30, tbs, alg, tlv(0x03, Buffer.from([0])));
  return `-----BEGIN X509 CRL-----\n${der.toString('base64')}\n-----END X509 CRL-----\n`;
}

/** Settles with the scrape's text, or 'still waiting' after ms. */
function within(p: Promise<string>, ms: number): Promise<string> {
  const late = new Promise<string>((resolve) => setTimeout(() => resolve('still waiting'), ms).unref());
  return Promise.race([p, late]);
}

t.test('a scrape while sym_keys is locked: last values at once, one count in flight', async (t) => {
  const app = `kds-metrics-${randomBytes(4).toString('hex')}`;
  const opened: PgStore[] = [];
  const { url, schema } = pgTestSchema(t, async () => {
    for (const s of opened) await s.close();
  });
  const store = await PgStore.open(url, { applicationName: app });
  opened.push(store);
  const sql = await pgRawClient(t, schema);
  await sql.query(
    `INSERT INTO sym_keys (serial, mode, owner, owner_cert, peer, peer_cert, created_at, expires_at, state, digest)
     VALUES ($1, 'e2e', 'alice', '01', 'bob', '02', 0, 1, 'active', $2)`,
    [randomBytes(16).toString('hex'), randomBytes(32)],
  );
  let counts = 0;
  const pem = emptyCrlPem();
  const sources = {
    ca: {
      store: {
        countSymKeysByState: () => {
          counts += 1;
          return store.countSymKeysByState();
        },
        countPendingDeliveries: () => store.countPendingDeliveries(),
      },
      currentCrl: () => ({ crlNumber: 1, pem, thisUpdate: Date.now(), nextUpdate: Date.now() + 3_600_000 }),
      currentDeltaCrl: () => undefined,
    },
    sessionCount: () => 0,
    connectionCount: () => 0,
    requestTypes: [],
    readerErrors: () => 0,
  } as unknown as MetricsSources;
  const metrics = new KdcMetrics(new EventBus(), { storeWaitMs: 200 });
  t.teardown(() => metrics.close());
  await metrics.load();
  metrics.bind(sources);

  const before = parsePrometheusTextFormat(await metrics.render());
  t.equal(value(before, 'kds_keys', { state: 'active' }), 1, 'the count, read from the store');
  t.ok(value(before, 'kds_store_gauges_age_seconds')! < 1, 'fresh');
  t.equal(counts, 1);

  const locker = await pgRawClient(t, schema);
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE sym_keys IN ACCESS EXCLUSIVE MODE');
  await new Promise((r) => setTimeout(r, 1_100)); // past the gauges' 1 s freshness: the next scrape counts

  const scrapes = await Promise.all([1, 2, 3].map(() => within(metrics.render(), 2_000)));
  for (const text of scrapes) {
    t.not(text, 'still waiting', 'the scrape answers without waiting for the lock');
    if (text === 'still waiting') continue;
    const families = parsePrometheusTextFormat(text);
    t.equal(value(families, 'kds_keys', { state: 'active' }), 1, 'with the last values');
    t.ok(value(families, 'kds_store_gauges_age_seconds')! >= 1, 'and their age');
  }
  await new Promise((r) => setTimeout(r, 1_100));
  t.not(await within(metrics.render(), 2_000), 'still waiting', 'a scrape later on too');
  t.equal(counts, 2, 'the scrapes shared one count');
  const waiting = await sql.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
    [app],
  );
  t.equal(waiting.rows[0]!.n, 1, 'one statement of the store waits on the lock');

  await locker.query('COMMIT');
  let fresh: Families = [];
  for (let i = 0; i < 50; i++) {
    fresh = parsePrometheusTextFormat(await metrics.render());
    if (value(fresh, 'kds_store_gauges_age_seconds')! < 1) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(value(fresh, 'kds_store_gauges_age_seconds')! < 1, 'fresh again once the lock is released');
  t.equal(value(fresh, 'kds_keys', { state: 'active' }), 1);
});
