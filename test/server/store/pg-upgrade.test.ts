// Upgrades of a PostgreSQL store (server/store/pg-store.ts): every pending migration runs in one
// transaction, so an upgrade that fails at a later step leaves the store at its old version with none
// of the earlier steps' tables; a read-only open (the commands that only read) migrates nothing.
import t from 'tap';
import type * as Tap from 'tap';
import type pg from 'pg';
import { pgRawClient, pgTestSchema } from '../../helpers/pg.js';
import { PG_MIGRATIONS } from '../../../server/store/pg-migrations.js';
import { PgStore } from '../../../server/store/pg-store.js';

const LATEST = PG_MIGRATIONS.length;

/** The schema at `version`, as a kds of that version left it. */
async function schemaAt(t: Tap.Test, version: number): Promise<{ url: string; raw: pg.Client }> {
  const { url, schema } = pgTestSchema(t);
  const raw = await pgRawClient(t, schema);
  await raw.query(`CREATE SCHEMA ${schema}`);
  await raw.query(
    'CREATE TABLE kds_schema_version (id BIGINT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)',
  );
  for (const m of PG_MIGRATIONS.slice(0, version)) {
    if (typeof m.up !== 'string') throw new Error(`migration ${m.version} is not SQL`);
    await raw.query(m.up);
  }
  await raw.query('INSERT INTO kds_schema_version (id, version) VALUES (1, $1)', [version]);
  return { url, raw };
}

async function versionOf(raw: pg.Client): Promise<number> {
  return Number(
    (await raw.query<{ version: string }>('SELECT version FROM kds_schema_version')).rows[0]!.version,
  );
}

async function exists(raw: pg.Client, table: string): Promise<boolean> {
  return (
    (await raw.query<{ r: string | null }>('SELECT to_regclass($1)::text AS r', [table])).rows[0]!.r !== null
  );
}

t.test('an upgrade that fails at a later step leaves the store exactly as it was', async (t) => {
  const { url, raw } = await schemaAt(t, 3);
  // In the way of the last migration: everything before it would have run.
  await raw.query('CREATE INDEX certificates_by_status ON certificates (status)');
  await t.rejects(PgStore.open(url), { code: 'store_error', message: /certificates_by_status/ });
  t.equal(await versionOf(raw), 3, 'still at version 3');
  t.notOk(await exists(raw, 'renewals'), "migration 4's table rolled back");
  t.notOk(await exists(raw, 'audit_heads'), "migration 5's table rolled back");

  await raw.query('DROP INDEX certificates_by_status');
  const store = await PgStore.open(url);
  t.teardown(() => store.close());
  t.equal(await versionOf(raw), LATEST, 'the next attempt migrates it');
});

t.test('a read-only open migrates nothing: an older store is refused with the way forward', async (t) => {
  const { url, raw } = await schemaAt(t, 3);
  await t.rejects(PgStore.open(url, { readOnly: true }), {
    code: 'config',
    message: new RegExp(
      `^the store has schema 3, this kds expects ${LATEST}; run \`kds server start\` \\(which migrates\\)`,
    ),
  });
  t.equal(await versionOf(raw), 3, 'not migrated');
  t.notOk(await exists(raw, 'renewals'));
});

t.test('a read-only open of a store at this version reads it', async (t) => {
  const { url } = pgTestSchema(t);
  const writer = await PgStore.open(url);
  await writer.setSetting('probe', { a: 1 });
  await writer.close();
  const reader = await PgStore.open(url, { readOnly: true });
  t.teardown(() => reader.close());
  t.same(await reader.getSetting('probe'), { a: 1 });
});

t.test('a read-only open of an empty database: no kds store, and nothing created', async (t) => {
  const { url, schema } = pgTestSchema(t);
  await t.rejects(PgStore.open(url, { readOnly: true }), { code: 'ca_missing', message: /no kds store in/ });
  const raw = await pgRawClient(t, 'public');
  const found = await raw.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  t.equal(found.rowCount, 0, 'the schema was not created');
});
