// Key retention (docs/keys.md "Retention"; server/keys/key-sweep.ts pruneExpiredKeys): keys that expired
// longer ago than the retention are deleted, in batches, each with an audit entry; nothing else is. A
// verdict on a deleted key is `not_found`, and its notices still queued are dropped at the next key.sync
// instead of failing it. Through a running KDC: the timer runs it, `key.pruned` says so and the metric
// counts it; `--key-retention-days` is validated before the KDC starts; 0 keeps every key.
import t from 'tap';
import { KEY_RETENTION_BATCH } from '../../../server/keys/key-sweep.js';
import { startKdc } from '../../../server/kdc/kdc.js';
import { EventBus } from '../../../server/events/bus.js';
import type { KdcEvent } from '../../../shared/events/kdc-events.js';
import { harness } from './fixtures.js';
import { initDataDir, runKds, TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { issueTestClient, sessionFor, startTestKdc } from '../../helpers/kdc-in-process.js';

const DAY = 24 * 60 * 60 * 1000;

t.test('keys expired longer ago than the retention are deleted; nothing else', async (t) => {
  const h = await harness(t);
  const short = await h.service.create(h.alice.caller, { peer: 'bob', ttl: 60_000 });
  const long = await h.service.create(h.alice.caller, { peer: 'bob', ttl: 10 * DAY });
  const revoked = await h.service.create(h.alice.caller, { peer: 'carol', ttl: 10 * DAY });
  await h.service.revoke(h.alice.caller, { serial: revoked.serial, reason: 'keyCompromise' });

  h.clock.now += 60_000 + DAY - 1; // short expired a day ago, less one ms
  t.equal(await h.service.pruneExpired(DAY), 0, 'not yet a full retention period after its expiry');
  h.clock.now += 1;
  t.equal(await h.service.pruneExpired(DAY), 0, 'expiry is exclusive: exactly a day after it, kept');
  h.clock.now += 1;
  t.equal(await h.service.pruneExpired(DAY), 1, 'then deleted');
  t.equal(h.store.getSymKey(short.serial), undefined);
  t.ok(h.store.getSymKey(long.serial), 'a key not expired stays');
  t.equal(h.store.getSymKey(revoked.serial)?.state, 'revoked', 'a revoked key stays until it expired');
  const audit = h.store.listAudit({ action: 'key.prune' });
  t.equal(audit.length, 1, 'one audit entry for the batch');
  t.same(audit[0]?.detail, { keys: 1, expiredBefore: h.clock.now - DAY });

  // bob was offline: the delivery notice of the deleted key is still queued. key.sync drops it.
  t.ok(
    h.store.listDeliveries('bob').some((d) => d.keySerial === short.serial),
    'its notice is queued',
  );
  const pushed: string[] = [];
  const sync = await h.service.sync(h.bob.caller, (type, body) =>
    pushed.push(`${type} ${String(body.serial)}`),
  );
  t.notOk(
    pushed.some((p) => p.endsWith(short.serial)),
    'not pushed',
  );
  t.ok(pushed.includes(`key.delivered ${long.serial}`), 'the live key is');
  t.equal(sync.remaining, 0);
  t.notOk(
    h.store.listDeliveries('bob').some((d) => d.keySerial === short.serial),
    'and it left the queue',
  );
  const v = await h.service.verify(h.bob.caller, { serial: short.serial, digest: Buffer.alloc(32) });
  t.equal(v.verdict, 'not_found', 'a verdict on a deleted key');

  h.clock.now += 10 * DAY + DAY + 1;
  t.equal(await h.service.pruneExpired(DAY), 2, 'the others once they expired a day ago, revoked or not');
});

t.test('a backlog is deleted in batches', async (t) => {
  const h = await harness(t, {
    limits: {
      activeKeysPerPair: 10_000,
      queuedKeyNoticesPerPair: 10_000,
      creation: { burst: 10_000, perSecond: 1 },
    },
  });
  const n = KEY_RETENTION_BATCH * 2 + 3;
  for (let i = 0; i < n; i++) await h.service.create(h.alice.caller, { peer: 'bob', ttl: 1_000 });
  h.clock.now += 2_000 + DAY;
  t.equal(await h.service.pruneExpired(DAY), n);
  t.same(
    h.store.listAudit({ action: 'key.prune' }).map((a) => a.detail.keys),
    [KEY_RETENTION_BATCH, KEY_RETENTION_BATCH, 3],
    'one transaction and one audit entry per batch',
  );
  t.equal(h.store.listSymKeys().length, 0);
});

t.test('a running KDC runs the retention on its timer, announces it and counts it', async (t) => {
  const events = new EventBus();
  const seen: KdcEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const { kdc } = await startTestKdc(t, {
    keyRetentionMs: 1,
    keyRetentionSweepMs: 50,
    events,
    rateLimit: false,
  });
  const alice = await issueTestClient(kdc.ca, 'alice');
  await issueTestClient(kdc.ca, 'bob');
  const session = await sessionFor(kdc, alice);
  t.teardown(() => session.close());
  const short = await session.request('key.create', { peer: 'bob', ttl: 1_000 });
  const long = await session.request('key.create', { peer: 'bob' });
  const until = Date.now() + 20_000;
  while (!seen.some((e) => e.type === 'key.pruned') && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const pruned = seen.find((e) => e.type === 'key.pruned');
  t.ok(pruned, 'key.pruned was emitted');
  t.equal(pruned?.type === 'key.pruned' ? pruned.keys : undefined, 1);
  t.equal(await kdc.ca.store.getSymKey(short.serial), undefined, 'the expired key is gone');
  t.ok(await kdc.ca.store.getSymKey(long.serial), 'the live one is not');
  const metrics = await fetch(`${kdc.httpUrl}/metrics`).then((r) => r.text());
  t.match(metrics, /^kds_keys_pruned_total 1$/m, 'counted');
});

t.test('retention 0 keeps every key; a bad value is refused before the KDC starts', async (t) => {
  const { kdc } = await startTestKdc(t, { keyRetentionMs: 0, keyRetentionSweepMs: 20, rateLimit: false });
  const alice = await issueTestClient(kdc.ca, 'alice');
  await issueTestClient(kdc.ca, 'bob');
  const session = await sessionFor(kdc, alice);
  t.teardown(() => session.close());
  const short = await session.request('key.create', { peer: 'bob', ttl: 1_000 });
  await new Promise((r) => setTimeout(r, 1_500)); // expired, and ~25 passes of the timer since
  t.ok(await kdc.ca.store.getSymKey(short.serial), 'still there');

  const dataDir = await initDataDir(t);
  await t.rejects(startKdc({ dataDir, port: 0, passphrase: TEST_CA_PASSPHRASE, keyRetentionMs: -1 }), {
    code: 'bad_request',
  });
  for (const bad of ['-1', '36501', '1.5', 'week']) {
    const r = await runKds([
      'server',
      'start',
      '--data-dir',
      dataDir,
      '--port',
      '0',
      '--key-retention-days',
      bad,
    ]);
    t.equal(r.code, 2, `--key-retention-days ${bad}: a usage error`);
    t.match(r.stderr, /--key-retention-days: expected a whole number from 0 to 36500/);
  }
});
