// A statement of the store that waits on a lock another session holds (an administrator's LOCK TABLE,
// another application's long transaction): PostgreSQL itself ends it at the store's statement_timeout,
// which every connection sets a little below node-postgres's query_timeout. The call fails as
// `unavailable`, saying the database did not answer in time rather than that it is down, and the backend
// is idle again when the pool drops its connection, so it ends with it. When the client gave up first
// (query_timeout alone), it dropped its socket while the backend went on waiting on the lock, keeping
// its connection slot (and, in a transaction, the store's write lock); the pool opened a replacement, and
// a node's backends grew past its pool size for as long as the lock was held.
// In a group commit, the callers after one that failed so fail with it at once: each would otherwise
// wait on the same lock in turn, the store's write lock held all along.
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
    let peak = 0;
    for (let round = 0; round < 3; round++) {
      // Every connection of the pool: two reads and a transaction (its write reaches the locked table).
      const calls = Promise.allSettled([
        store.getSetting('x'),
        store.getSetting('x'),
        store.transaction((tx) => tx.setSetting('y', round)),
      ]);
      let done = false;
      void calls.then(() => (done = true));
      while (!done) {
        peak = Math.max(peak, (await backends()).all);
        await new Promise((r) => setTimeout(r, 50));
      }
      const outcomes = await calls;
      for (const o of outcomes) {
        const err = o.status === 'rejected' ? (o.reason as KdsError) : undefined;
        t.equal(err?.code, 'unavailable', `round ${round}: the call fails as unavailable`);
        t.match(
          err?.message,
          /^the database did not answer in time \(statement timeout: a lock held by another session\?\): store (read|transaction|write) failed$/,
        );
        // The server's answer, not node-postgres's own read timeout: it came before the client gave up.
        t.equal(
          (err?.cause as { code?: string } | undefined)?.code,
          '57014',
          'ended by the server (query_canceled)',
        );
      }
      seen.push(await settled());
    }
    t.same(
      seen.map((b) => b.waiting),
      [0, 0, 0],
      'after each round no backend is left waiting on the lock',
    );
    t.ok(
      peak <= POOL && seen.every((b) => b.all <= POOL),
      `nor more backends than the pool's ${POOL} connections, at any time (at most ${peak}) or after a round`,
    );

    await locker.query('COMMIT');
    t.equal(await store.getSetting('x'), 1, 'the store answers once the lock is released');
    await store.transaction((tx) => tx.setSetting('y', 'after'));
    t.equal(await store.getSetting('y'), 'after');
    t.ok((await backends()).all <= POOL);
  },
);

t.test(
  'a group commit whose caller waited out the bound: the callers after it fail with it, unrun',
  async (t) => {
    const opened: PgStore[] = [];
    const { url, schema } = pgTestSchema(t, async () => {
      for (const s of opened) await s.close();
    });
    const store = await PgStore.open(url, { queryTimeoutMs: 1_500 });
    opened.push(store);
    await store.setSetting('x', 1);
    const locker = await pgRawClient(t, schema);

    // A first caller keeps the batch running while three more queue: they form the next batch, together.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const first = store.batch(async (tx) => {
      await gate;
      await tx.setSetting('first', 1);
    });
    let ran = 0;
    const queued = [1, 2, 3].map((i) =>
      store.batch(async (tx) => {
        ran += 1;
        await tx.setSetting(`queued${i}`, i);
      }),
    );
    await new Promise((r) => setTimeout(r, 50));
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE settings IN ACCESS EXCLUSIVE MODE');
    const started = Date.now();
    open();
    await t.rejects(first, { code: 'unavailable' }, 'the first batch: its caller waited out the bound');
    const outcomes = await Promise.allSettled(queued);
    const elapsed = Date.now() - started;
    await locker.query('COMMIT');
    t.same(
      outcomes.map((o) => (o.status === 'rejected' ? (o.reason as KdsError).code : 'ok')),
      ['unavailable', 'unavailable', 'unavailable'],
      'every caller of the second batch fails as unavailable',
    );
    t.equal(
      ran,
      1,
      `only its first caller ran (${elapsed} ms): the others would have waited on the same lock in turn`,
    );
    t.equal(await store.getSetting('queued2'), undefined, 'nothing of them was written');
    await store.batch((tx) => tx.setSetting('after', 1));
    t.equal(await store.getSetting('after'), 1, 'the next batch commits');
  },
);
