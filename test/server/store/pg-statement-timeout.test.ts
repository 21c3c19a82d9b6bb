// A database whose default statement_timeout is far below what kds waits for (ALTER DATABASE ... SET
// statement_timeout = '50ms', set by an administrator for other applications): each connection of the
// store sets its own (server/store/pg-store.ts connectionOptions), which takes precedence over the
// database's and the role's defaults, and a migration lifts it for its own transaction. Waiting on the
// store's write lock behind another node's transaction is ordinary work: it used to fail as `store_error`
// (57014) whenever it took longer than the database's default.
import t from 'tap';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { PG_TEST_URL } from '../../helpers/pg.js';
import { PgStore } from '../../../server/store/pg-store.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test("a database default statement_timeout of 50 ms does not cut kds's statements", async (t) => {
  // A database of its own: the setting belongs to the whole database, which other tests share.
  const database = `kds_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_TEST_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.query(`ALTER DATABASE ${database} SET statement_timeout = '50ms'`);
  const opened: PgStore[] = [];
  t.teardown(async () => {
    for (const s of opened) await s.close();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  });
  const u = new URL(PG_TEST_URL);
  u.pathname = `/${database}`;
  const raw = new pg.Client({ connectionString: u.toString() });
  await raw.connect();
  t.teardown(() => raw.end());
  t.equal(
    (await raw.query('SHOW statement_timeout')).rows[0].statement_timeout,
    '50ms',
    'the default applies',
  );
  await t.rejects(raw.query('SELECT pg_sleep(0.2)'), { code: '57014' }, 'to a connection that sets nothing');

  // Two nodes opening at once: one migrates, the other waits for the migration lock.
  u.searchParams.set('schema', 'kds');
  const [node1, node2] = await Promise.all([PgStore.open(u.toString()), PgStore.open(u.toString())]);
  opened.push(node1, node2);

  // Node 2 waits on the write lock while node 1's transaction takes 300 ms.
  let holding!: () => void;
  const held = new Promise<void>((resolve) => (holding = resolve));
  const first = node1.transaction(async (tx) => {
    await tx.setSetting('first', 1);
    holding();
    await sleep(300);
  });
  await held;
  const started = Date.now();
  await node2.transaction((tx) => tx.setSetting('second', 2));
  t.ok(Date.now() - started >= 200, 'node 2 waited for the write lock');
  await first;
  t.equal(await node1.getSetting('second'), 2, 'and both committed');
  t.equal(await node2.getSetting('first'), 1);
});
