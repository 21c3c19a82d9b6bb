// A statement of the store that waits on a lock another session holds (an administrator's LOCK TABLE,
// another application's long transaction): PostgreSQL itself ends it at the store's statement_timeout,
// which every connection sets a little below node-postgres's query_timeout. The call fails as
// `unavailable`, saying the database did not answer in time rather than that it is down, and the backend
// is idle again when the pool drops its connection, so it ends with it. When the client gave up first
// (query_timeout alone), it dropped its socket while the backend went on waiting on the lock, keeping
// its connection slot (and, in a transaction, the store's write lock); the pool opened a replacement, and
// a node's backends grew past its pool size for as long as the lock was held.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { pgRawClient, pgTestSchema } from '../../helpers/pg.js';
import { PgStore } from '../../../server/store/pg-store.js';
import { KdsError } from '../../../shared/errors.js';

t.test(
  'a statement blocked on a lock is ended by the server; the backends stay within the pool',
  async (t) => {
    const app = `kds-lock-${randomBytes(4).toString('hex')}`;
    const opened: PgStore[] = [];
    const { url, schema } = pgTestSchema(t, async () => {
      for (const s of opened) await s.close();
    });
    const POOL = 3;
    const store = await PgStore.open(url, { applicationName: app, poolSize: POOL, queryTimeoutMs: 1_500 });
    opened.push(store);
    await store.setSetting('x', 1);
    const observer = await pgRawClient(t, schema);
    const backends = async (): Promise<{ all: number; waiting: number }> => {
      const r = await observer.query<{ all: number; waiting: number }>(
        `SELECT count(*)::int AS all, count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS waiting
       FROM pg_stat_activity WHERE application_name = $1`,
        [app],
      );
      return r.rows[0]!;
    };
    /** The backends once a round's calls have settled: the pool's replacements are opening, the dropped ones ending. */
    const settled = async (): Promise<{ all: number; waiting: number }> => {
      const deadline = Date.now() + 1_000;
      let b = await backends();
      while ((b.all > POOL || b.waiting > 0) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        b = await backends();
      }
      return b;
    };

    const locker = await pgRawClient(t, schema);
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE settings IN ACCESS EXCLUSIVE MODE');
    const seen: { all: number; waiting: number }[] = [];
    for (let round = 0; round < 3; round++) {
      const started = Date.now();
      // Every connection of the pool: two reads and a transaction (its write reaches the locked table).
      const outcomes = await Promise.allSettled([
        store.getSetting('x'),
        store.getSetting('x'),
        store.transaction((tx) => tx.setSetting('y', round)),
      ]);
      const elapsed = Date.now() - started;
      for (const o of outcomes) {
        const err = o.status === 'rejected' ? (o.reason as KdsError) : undefined;
        t.equal(err?.code, 'unavailable', `round ${round}: the call fails as unavailable`);
        t.match(
          err?.message,
          /^the database did not answer in time \(statement timeout: a lock held by another session\?\): store (read|transaction|write) failed$/,
        );
        t.equal(
          (err?.cause as { code?: string } | undefined)?.code,
          '57014',
          'ended by the server (query_canceled)',
        );
      }
      t.ok(elapsed < 1_500, `round ${round}: before the client's own bound (${elapsed} ms)`);
      seen.push(await settled());
    }
    t.same(
      seen.map((b) => b.waiting),
      [0, 0, 0],
      'after each round no backend is left waiting on the lock',
    );
    t.ok(
      seen.every((b) => b.all <= POOL),
      `nor more backends than the pool's ${POOL} connections: ${JSON.stringify(seen)}`,
    );

    await locker.query('COMMIT');
    t.equal(await store.getSetting('x'), 1, 'the store answers once the lock is released');
    await store.transaction((tx) => tx.setSetting('y', 'after'));
    t.equal(await store.getSetting('y'), 'after');
    t.ok((await backends()).all <= POOL);
  },
);
