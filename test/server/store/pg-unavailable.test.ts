// PostgreSQL going away under a store: the connections of one store are terminated by the server (what a
// PostgreSQL restart or an administrator's pg_terminate_backend does to a node). Calls in flight fail
// with `unavailable` (never a crash, never another code), a transaction cut in the middle leaves nothing,
// and the same store object recovers by itself (the pool opens new connections): no reopen, no restart.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pgTestSchema, PG_TEST_URL } from '../../helpers/pg.js';
import { pgSchemaBehindProxy } from '../../helpers/pg-proxy.js';
import { PgStore } from '../../../server/store/pg-store.js';
import { KdsError } from '../../../shared/errors.js';

async function terminate(applicationName: string): Promise<number> {
  const admin = new pg.Client({ connectionString: PG_TEST_URL });
  await admin.connect();
  try {
    const r = await admin.query<{ pid: number }>(
      `SELECT pg_terminate_backend(pid) AS pid FROM pg_stat_activity WHERE application_name = $1`,
      [applicationName],
    );
    return r.rowCount ?? 0;
  } finally {
    await admin.end();
  }
}

/** Retry `fn` until it succeeds, recording the codes of the failures (at most `tries`). */
async function eventually<T>(fn: () => Promise<T>, codes: string[], tries = 20): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      codes.push(err instanceof KdsError ? err.code : `not a KdsError: ${String(err)}`);
      if (i >= tries) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

t.test('terminated connections: unavailable, nothing half-written, recovery without reopening', async (t) => {
  const app = `kds-test-${randomBytes(4).toString('hex')}`;
  const opened: PgStore[] = [];
  const { url } = pgTestSchema(t, async () => {
    for (const s of opened) await s.close();
  });
  const store = await PgStore.open(url, { applicationName: app });
  opened.push(store);
  await store.setSetting('before', 1);

  // A transaction whose connection is terminated between two of its statements.
  const cut = store.transaction(async (tx) => {
    await tx.setSetting('half', 1);
    t.ok((await terminate(app)) >= 1, 'the store connections were terminated');
    await tx.setSetting('half', 2);
  });
  await t.rejects(cut, { code: 'unavailable' }, 'the transaction fails as unavailable');

  const codes: string[] = [];
  t.equal(await eventually(() => store.getSetting('before'), codes), 1, 'the store answers again');
  t.ok(
    codes.every((c) => c === 'unavailable'),
    `failures on the way back are unavailable only (${codes.join(', ') || 'none'})`,
  );
  t.equal(await store.getSetting('half'), undefined, 'nothing of the cut transaction was committed');
  await store.transaction(async (tx) => tx.setSetting('after', 2));
  t.equal(await store.getSetting('after'), 2, 'transactions work again on the same store object');
});

t.test('a database that refuses connections: unavailable at open and on calls', async (t) => {
  // Port 1 on the loopback: nothing listens there.
  await t.rejects(PgStore.open('postgres://postgres@127.0.0.1:1/test'), { code: 'unavailable' });
});

t.test('a database cut off after open: every kind of call is unavailable, then works again', async (t) => {
  // Through a proxy (test/helpers/tcp-proxy.ts) that drops its connections and refuses new ones: what a
  // node sees while PostgreSQL restarts. changeCounter() runs before every handshake's certificate check
  // (server/kdc/cert-check.ts): it once let node-postgres's own error through, which the KDC turned into
  // `internal` and a logged stack trace instead of `unavailable`.
  const { proxiedUrl, proxy, opened } = await pgSchemaBehindProxy(t);
  const store = await PgStore.open(proxiedUrl);
  opened.push(store);
  await store.setSetting('before', 1);
  await proxy.cut();
  const calls: [string, () => Promise<unknown>][] = [
    ['changeCounter', () => store.changeCounter()],
    ['schemaVersion', () => store.schemaVersion()],
    ['getSetting', () => store.getSetting('before')],
    ['setSetting', () => store.setSetting('during', 1)],
    ['transaction', () => store.transaction((tx) => tx.setSetting('during', 1))],
    ['batch', () => store.batch((tx) => tx.setSetting('during', 1))],
    ['listCertificates', () => store.listCertificates()],
    ['countSymKeysByState', () => store.countSymKeysByState()],
  ];
  for (const [name, call] of calls) {
    await t.rejects(call(), { code: 'unavailable', message: /the database is unavailable/ }, name);
  }
  await proxy.restore();
  t.equal(await store.getSetting('before'), 1, 'the same store object answers again');
  t.type(await store.changeCounter(), 'number');
  t.equal(await store.getSetting('during'), undefined, 'nothing was written while it was cut off');
});

t.test('a malformed store URL is a usage error before anything connects', async (t) => {
  await t.rejects(PgStore.open('mysql://x@y/z'), { code: 'bad_request' });
  await t.rejects(PgStore.open('postgres://x@y/z?schema=Robert%27);DROP'), { code: 'bad_request' });
  await t.rejects(PgStore.open('not a url'), { code: 'bad_request' });
});

t.test(
  'the listening connection lost: reconnected, listeners told of the gap, notifications flow again',
  async (t) => {
    const app = `kds-test-${randomBytes(4).toString('hex')}`;
    const opened: PgStore[] = [];
    const { url } = pgTestSchema(t, async () => {
      for (const s of opened) await s.close();
    });
    const node1 = await PgStore.open(url, { applicationName: app });
    const node2 = await PgStore.open(url, { applicationName: `${app}-2` });
    opened.push(node1, node2);
    const heard: string[] = [];
    let gaps = 0;
    await node1.listen('revoked', { onNotify: (p) => heard.push(p), onGap: () => (gaps += 1) });
    const waitFor = async (cond: () => boolean): Promise<boolean> => {
      const deadline = Date.now() + 10_000;
      while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return cond();
    };
    await node2.transaction((tx) => tx.notify('revoked', 'before'));
    t.ok(await waitFor(() => heard.includes('before')), 'heard across nodes');
    t.ok((await terminate(app)) >= 1, 'node 1 connections terminated (its listening one included)');
    t.ok(await waitFor(() => gaps === 1), 'the listener was told it may have missed notifications');
    await node2.transaction((tx) => tx.notify('revoked', 'after'));
    t.ok(await waitFor(() => heard.includes('after')), 'heard again after reconnecting');
  },
);

t.test(
  'connections terminated while the pool hands them to waiting transactions: no node crash',
  async (t) => {
    // A FATAL that arrives while pg-pool gives a connection to a waiting caller, before the caller's
    // continuation has put its own listener on it, is an 'error' emitted with no listener: an uncaught
    // exception that kills the KDC. Writers queue on the pool (more than its size) so that connections
    // are handed over all the time, while every connection of the store is terminated at short random
    // intervals. Counted directly: any 'error' a pg client emits with no listener.
    const app = `kds-test-${randomBytes(4).toString('hex')}`;
    const opened: PgStore[] = [];
    const { url } = pgTestSchema(t, async () => {
      for (const s of opened) await s.close();
    });
    let unheard = 0;
    const emit = pg.Client.prototype.emit;
    pg.Client.prototype.emit = function (this: pg.Client, event: string | symbol, ...args: unknown[]) {
      if (event === 'error' && this.listenerCount('error') === 0) {
        unheard += 1;
        return true; // counted instead of thrown, so that the run goes on and the count is exact
      }
      return emit.call(this, event, ...args);
    } as typeof emit;
    t.teardown(() => {
      pg.Client.prototype.emit = emit;
    });
    const store = await PgStore.open(url, { applicationName: app, poolSize: 4 });
    opened.push(store);
    let stop = false;
    const done = { ok: 0, failed: 0, kills: 0 };
    const other: string[] = [];
    const writer = async (): Promise<void> => {
      while (!stop) {
        try {
          await store.transaction(async (tx) => {
            await tx.getSetting('x');
            await tx.setSetting('x', Date.now());
          });
          done.ok += 1;
        } catch (err) {
          done.failed += 1;
          if (!(err instanceof KdsError && err.code === 'unavailable')) other.push(String(err));
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const killer = async (): Promise<void> => {
      const admin = new pg.Client({ connectionString: PG_TEST_URL });
      await admin.connect();
      try {
        while (!stop) {
          await new Promise((r) => setTimeout(r, 5 + Math.random() * 40));
          const r = await admin.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`,
            [app],
          );
          done.kills += r.rowCount ?? 0;
        }
      } finally {
        await admin.end();
      }
    };
    const running = [...Array.from({ length: 12 }, writer), killer()];
    await new Promise((r) => setTimeout(r, 8_000));
    stop = true;
    await Promise.all(running);
    t.comment(`transactions ${done.ok} ok, ${done.failed} failed; ${done.kills} connections terminated`);
    t.ok(done.kills > 20 && done.failed > 0, 'the connections were cut while transactions ran');
    t.equal(unheard, 0, "no 'error' reached a connection without a listener (each would be a crash)");
    t.same(other, [], 'every failure was unavailable');
    const codes: string[] = [];
    t.equal(await eventually(() => store.getSetting('after'), codes), undefined, 'the store answers after');
  },
);
