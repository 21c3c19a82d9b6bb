// A KDC node under a least-privilege PostgreSQL role (docs/deployment.md "Database roles"): the owner role
// creates and migrates the store once (`kds server init --store`), and the nodes connect as a role granted
// only CONNECT, USAGE on the schema, SELECT/INSERT/UPDATE/DELETE on its tables and UPDATE on its sequences.
// Opening the store used to run CREATE SCHEMA/TABLE IF NOT EXISTS every time, which PostgreSQL refuses
// without CREATE privilege even when the object exists: such a node could not start. (The conformance
// suite runs every Store method under such a role: conformance.test.ts, engine "postgres-run-time-role".)
// The owner may be given a schema made beforehand instead of CREATE on the database.
import t from 'tap';
import pg from 'pg';
import { PG_TEST_URL, pgGrantRunTime, pgTestRole, pgTestSchema } from '../../helpers/pg.js';
import { PgStore } from '../../../server/store/pg-store.js';

t.test('a node opens, writes and reads as a role with the run-time grants only', async (t) => {
  const opened: PgStore[] = [];
  const close = async (): Promise<void> => {
    for (const s of opened) await s.close();
  };
  const { url, schema } = pgTestSchema(t, close);
  const { role, url: urlAs } = await pgTestRole(t, close);
  const owner = await PgStore.open(url); // creates and migrates the schema
  opened.push(owner);
  await pgGrantRunTime(role, schema);

  const node = await PgStore.open(urlAs(schema));
  opened.push(node);
  t.equal(await node.schemaVersion(), await owner.schemaVersion(), 'opened without migrating anything');
  await node.transaction((tx) => tx.setSetting('written.by.node', 1));
  t.equal(await node.getSetting('written.by.node'), 1, 'its write reads back');
  t.equal(await owner.getSetting('written.by.node'), 1, 'and is in the shared store');
  const heard: string[] = [];
  await node.listen('revoked', { onNotify: (p) => heard.push(p) });
  await owner.transaction((tx) => tx.notify('revoked', 'x'));
  const deadline = Date.now() + 10_000;
  while (heard.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.same(heard, ['x'], 'it LISTENs (no privilege needed)');

  // It really is least-privilege: it may not create anything, so a store needing a migration is refused.
  const admin = new pg.Client({ connectionString: PG_TEST_URL });
  await admin.connect();
  t.teardown(() => admin.end());
  await admin.query(`UPDATE ${schema}.kds_schema_version SET version = version - 1`);
  await t.rejects(PgStore.open(urlAs(schema)), {
    code: 'store_error',
    message: /cannot open the store .*\(42501: /, // insufficient_privilege
  });
});

t.test('the owner may be given a schema made beforehand instead of CREATE on the database', async (t) => {
  const opened: PgStore[] = [];
  const close = async (): Promise<void> => {
    for (const s of opened) await s.close();
  };
  const { schema } = pgTestSchema(t, close);
  const { role, url: urlAs } = await pgTestRole(t, close);
  const admin = new pg.Client({ connectionString: PG_TEST_URL });
  await admin.connect();
  t.teardown(() => admin.end());
  await admin.query(`CREATE SCHEMA ${schema} AUTHORIZATION ${role}`);
  const owner = await PgStore.open(urlAs(schema));
  opened.push(owner);
  t.ok((await owner.schemaVersion()) > 0, 'it migrated the schema it was given');
  await owner.setSetting('x', 1);
  t.equal(await owner.getSetting('x'), 1);
});
