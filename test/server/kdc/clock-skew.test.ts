// KDC nodes on one PostgreSQL store and their clocks (docs/deployment.md "Clocks"), in process with an
// injected clock: a node whose clock is off the database's by more than the bound refuses to start
// (`clock_skew`) before it writes anything (no key expired by its clock, no CRL signed with it); one a
// few seconds off starts and says so; a running node whose clock drifts out of bounds stops its CRL
// issue and key retention, answers /healthz with 503, and resumes once back. And a node's start leaves
// the end-to-end reservations of the other nodes' live sessions alone (only the stale ones go).
import t from 'tap';
import type * as Tap from 'tap';
import { join } from 'node:path';
import { initCa } from '../../../server/ca/init.js';
import { startKdc } from '../../../server/kdc/kdc.js';
import { PgStore } from '../../../server/store/pg-store.js';
import type { NewSymKey } from '../../../server/store/store.js';
import { RESERVATION_TTL_MS } from '../../../server/keys/ttl.js';
import { KdsError } from '../../../shared/errors.js';
import { pgTestSchema } from '../../helpers/pg.js';
import { startTestKdc } from '../../helpers/kdc-in-process.js';
import { TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { tempDir } from '../../helpers/tmp.js';

t.setTimeout(180_000);

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A CA initialised on a fresh schema, and a store handle on it (closed before the schema is dropped). */
async function sharedStore(t: Tap.Test): Promise<{ url: string; store: PgStore }> {
  const handles: PgStore[] = [];
  const { url } = pgTestSchema(t, async () => {
    for (const h of handles) await h.close();
  });
  await initCa({
    dataDir: join(tempDir(t), 'data'),
    caKeyBits: 2048,
    passphrase: TEST_CA_PASSPHRASE,
    storeUrl: url,
  });
  const store = await PgStore.open(url);
  handles.push(store);
  return { url, store };
}

const serial32 = (n: number): string => n.toString(16).padStart(32, '0');

function symKey(serial: string, over: Partial<NewSymKey>): NewSymKey {
  const now = Date.now();
  return {
    serial,
    mode: 'kdc',
    owner: 'alice',
    ownerCert: 'a1',
    peer: 'bob',
    peerCert: 'b1',
    createdAt: now,
    expiresAt: now + DAY,
    state: 'active',
    digest: Buffer.alloc(32, 1),
    wrappedKey: Buffer.from('wrapped'),
    kekVersion: 1,
    ...over,
  };
}

/** An end-to-end reservation as key.reserve writes it, made `ageMs` ago. */
function reservation(serial: string, ageMs: number): NewSymKey {
  const createdAt = Date.now() - ageMs;
  return symKey(serial, {
    mode: 'e2e',
    state: 'reserved',
    createdAt,
    expiresAt: createdAt + DAY,
    digest: null,
    wrappedKey: null,
    kekVersion: null,
    prekeyId: 'p1',
    prekeyPublic: Buffer.alloc(32, 9),
  });
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test('a node whose clock is five days fast refuses to start, having written nothing', async (t) => {
  const { url, store } = await sharedStore(t);
  await store.insertSymKey(symKey(serial32(1), {}));
  const crl = (await store.getCrlState())!;
  const logs: string[] = [];
  const err = await startKdc({
    dataDir: join(tempDir(t), 'data'),
    storeUrl: url,
    port: 0,
    passphrase: TEST_CA_PASSPHRASE,
    log: (line) => logs.push(line),
    clock: () => Date.now() + 5 * DAY,
  }).then(
    async (kdc) => {
      await kdc.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  t.ok(err instanceof KdsError, 'refused');
  t.equal((err as KdsError | undefined)?.code, 'clock_skew');
  t.match(
    (err as Error | undefined)?.message,
    /^this node's clock is 43200\d\.\d s ahead of the database server's \(.*; at most 30 s allowed\): .*NTP/,
  );
  t.equal((await store.getSymKey(serial32(1)))!.state, 'active', 'the valid key is still active');
  t.same((await store.getCrlState())!.crlNumber, crl.crlNumber, 'no CRL signed with that clock');
  t.same(logs, []);
});

t.test('a node a few seconds off starts, and says so', async (t) => {
  const { url } = await sharedStore(t);
  const { kdc, logs } = await startTestKdc(t, {
    dataDir: join(tempDir(t), 'data'),
    storeUrl: url,
    clock: () => Date.now() - 5_000,
  });
  t.match(
    logs.filter((l) => l.includes('clock')),
    [/^this node's clock is 5\.\d s behind the database server's: beyond 30 s/],
  );
  const health = await fetch(`${kdc.httpUrl}/healthz`);
  t.equal(health.status, 200);
  t.match(await health.json(), { ok: true, clock: { inSync: true } });
});

t.test('a running node whose clock drifts stops its time-based writes to the store', async (t) => {
  const { url, store } = await sharedStore(t);
  // Expired an hour ago (the node's start marks it so): kept for a day (keyRetentionMs), unless a clock
  // says that day is over.
  await store.insertSymKey(
    symKey(serial32(2), { createdAt: Date.now() - 2 * HOUR, expiresAt: Date.now() - HOUR }),
  );
  let offset = 0;
  const { kdc, logs } = await startTestKdc(t, {
    dataDir: join(tempDir(t), 'data'),
    storeUrl: url,
    clock: () => Date.now() + offset,
    clockCheckMs: 50,
    keyRetentionMs: DAY,
    keyRetentionSweepMs: 100,
    // No periodic CRL upkeep in the background: the test calls it.
    revocationSyncMs: 3_600_000,
  });
  const crl = (await store.getCrlState())!;
  t.equal((await store.getSymKey(serial32(2)))!.state, 'expired');
  offset = 5 * DAY;
  await until('the drift is noticed', () =>
    logs.some((l) => /ahead of the database server's \(at most/.test(l)),
  );
  t.match(
    logs.at(-1),
    /^this node's clock is 43200\d\.\d s ahead .* this node stops issuing CRLs and pruning keys/,
  );
  // Several retention passes later, by a clock that says the key's day of retention is over.
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.ok(await store.getSymKey(serial32(2)), 'the expired key is not pruned');
  t.equal(await kdc.ca.maintainCrl(), undefined, 'the due CRL is not signed');
  t.equal(await kdc.ca.publishFullCrlIfStale(), undefined);
  t.equal((await store.getCrlState())!.crlNumber, crl.crlNumber);
  const health = await fetch(`${kdc.httpUrl}/healthz`);
  t.equal(health.status, 503, '/healthz: a load balancer takes the node out');
  const body = (await health.json()) as { ok: boolean; clock: { skewMs: number; inSync: boolean } };
  t.equal(body.ok, false);
  t.equal(body.clock.inSync, false);
  t.ok(Math.abs(body.clock.skewMs - 5 * DAY) < 5_000, `skewMs ${body.clock.skewMs}`);
  const metrics = await (await fetch(kdc.metricsUrl)).text();
  const gauge = Number(/\nkds_clock_skew_seconds (\S+)/.exec(metrics)?.[1]);
  t.ok(Math.abs(gauge - (5 * DAY) / 1000) < 5, `kds_clock_skew_seconds ${gauge}`);
  offset = 0;
  await until('the return is noticed', () => logs.some((l) => /^clock back within 30 s/.test(l)));
  t.equal((await fetch(`${kdc.httpUrl}/healthz`)).status, 200);
  t.ok(await store.getSymKey(serial32(2)), 'and by a right clock the key is kept for its day');
});

t.test("a node's start leaves the live reservations of the other nodes' sessions alone", async (t) => {
  const { url, store } = await sharedStore(t);
  await startTestKdc(t, { dataDir: join(tempDir(t), 'data'), storeUrl: url });
  // A sender on node 1 reserved a second ago and is about to deposit; another reservation is stale.
  await store.insertSymKey(reservation(serial32(3), 1_000));
  await store.insertSymKey(reservation(serial32(4), RESERVATION_TTL_MS + 60_000));
  await startTestKdc(t, { dataDir: join(tempDir(t), 'data'), storeUrl: url });
  t.match(await store.getSymKey(serial32(3)), { state: 'reserved' }, 'the live reservation is still there');
  t.equal(await store.getSymKey(serial32(4)), undefined, 'the stale one is gone');
});
