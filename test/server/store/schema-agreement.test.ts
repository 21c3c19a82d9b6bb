// The two engines' schemas agree: the same tables, columns (type class, NOT NULL, primary key), unique
// constraints, indexes (columns, uniqueness, partial or not) and append-only triggers, as SQLite and
// PostgreSQL themselves report them after all migrations; and the append-only triggers refuse on both.
// server/store/pg-migrations.ts lists the deliberate differences, and this test allows exactly those.
import t from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { tempDir } from '../../helpers/tmp.js';
import { pgRawClient, pgTestSchema } from '../../helpers/pg.js';
import { openStore } from '../../../server/store/store.js';
import { MIGRATIONS } from '../../../server/store/migrations.js';
import { PG_MIGRATIONS } from '../../../server/store/pg-migrations.js';
import { PgStore } from '../../../server/store/pg-store.js';

interface Schema {
  /** table -> column -> "type notnull pk" */
  columns: Record<string, Record<string, string>>;
  /** "table(col, col)" of every UNIQUE constraint and primary key */
  uniques: string[];
  /** "name: table(cols) [unique] [partial]" of every CREATE INDEX */
  indexes: string[];
  /** "table.trigger" */
  triggers: string[];
}

/** PostgreSQL-only on purpose (pg-migrations.ts's header). */
const PG_ONLY_TABLES = ['kds_schema_version'];
const PG_ONLY_COLUMNS = ['sym_keys.seq', 'renewals.seq'];
const PG_ONLY_UNIQUES = ['sym_keys(seq)', 'renewals(seq)'];
const PG_ONLY_TRIGGER = /_no_truncate$/;

const typeClass = (type: string): string => {
  const ty = type.toLowerCase();
  if (ty === 'integer' || ty === 'bigint') return 'int';
  if (ty === 'text') return 'text';
  if (ty === 'blob' || ty === 'bytea') return 'bytes';
  return `?${ty}`;
};

function sqliteSchema(file: string): Schema {
  const db = new Database(file, { readonly: true });
  try {
    const tables = (
      db
        .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
        .all() as {
        name: string;
      }[]
    ).map((r) => r.name);
    const s: Schema = { columns: {}, uniques: [], indexes: [], triggers: [] };
    for (const table of tables) {
      const cols = db.prepare(`PRAGMA table_info(${table})`).all() as {
        name: string;
        type: string;
        notnull: number;
        pk: number;
      }[];
      s.columns[table] = Object.fromEntries(
        cols.map((c) => [
          c.name,
          `${typeClass(c.type)} ${c.notnull === 1 || c.pk > 0 ? 'notnull' : 'null'} ${c.pk > 0 ? 'pk' : ''}`.trim(),
        ]),
      );
      const pk = cols.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
      if (pk.length > 0) s.uniques.push(`${table}(${pk.map((c) => c.name).join(', ')})`);
      const list = db.prepare(`PRAGMA index_list(${table})`).all() as {
        name: string;
        unique: number;
        origin: string;
        partial: number;
      }[];
      for (const ix of list) {
        const cols = (db.prepare(`PRAGMA index_info(${ix.name})`).all() as { name: string }[]).map(
          (c) => c.name,
        );
        if (ix.origin === 'u') s.uniques.push(`${table}(${cols.join(', ')})`);
        else if (ix.origin === 'c') {
          s.indexes.push(
            `${ix.name}: ${table}(${cols.join(', ')})${ix.unique ? ' unique' : ''}${ix.partial ? ' partial' : ''}`,
          );
        }
      }
    }
    s.triggers = (
      db.prepare(`SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'`).all() as {
        tbl_name: string;
        name: string;
      }[]
    ).map((r) => `${r.tbl_name}.${r.name}`);
    return normalize(s);
  } finally {
    db.close();
  }
}

async function pgSchema(client: import('pg').Client, schema: string): Promise<Schema> {
  const s: Schema = { columns: {}, uniques: [], indexes: [], triggers: [] };
  const cols = await client.query<{
    table_name: string;
    column_name: string;
    data_type: string;
    is_nullable: string;
  }>(
    `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = $1`,
    [schema],
  );
  const pkCols = await client.query<{ table_name: string; column_name: string }>(
    `SELECT tc.table_name, kcu.column_name FROM information_schema.table_constraints tc
       JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
     WHERE tc.table_schema = $1 AND tc.constraint_type = 'PRIMARY KEY'`,
    [schema],
  );
  const pk = new Set(pkCols.rows.map((r) => `${r.table_name}.${r.column_name}`));
  for (const c of cols.rows) {
    if (PG_ONLY_TABLES.includes(c.table_name) || PG_ONLY_COLUMNS.includes(`${c.table_name}.${c.column_name}`))
      continue;
    const isPk = pk.has(`${c.table_name}.${c.column_name}`);
    (s.columns[c.table_name] ??= {})[c.column_name] =
      `${typeClass(c.data_type)} ${c.is_nullable === 'NO' ? 'notnull' : 'null'} ${isPk ? 'pk' : ''}`.trim();
  }
  // Every index with its columns: constraint-backed ones (primary keys, UNIQUE) are uniques, the others indexes.
  const ix = await client.query<{
    table: string;
    name: string;
    cols: string[];
    unique: boolean;
    partial: boolean;
    constraint: boolean;
  }>(
    `SELECT t.relname AS table, i.relname AS name,
            array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS cols,
            x.indisunique AS unique, x.indpred IS NOT NULL AS partial,
            EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid) AS constraint
     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
     JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1`,
    [schema],
  );
  for (const r of ix.rows) {
    if (PG_ONLY_TABLES.includes(r.table)) continue;
    const desc = `${r.table}(${r.cols.join(', ')})`;
    if (r.constraint) {
      if (!PG_ONLY_UNIQUES.includes(desc)) s.uniques.push(desc);
    } else s.indexes.push(`${r.name}: ${desc}${r.unique ? ' unique' : ''}${r.partial ? ' partial' : ''}`);
  }
  const tr = await client.query<{ table: string; name: string }>(
    `SELECT c.relname AS table, tg.tgname AS name FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT tg.tgisinternal`,
    [schema],
  );
  s.triggers = tr.rows.filter((r) => !PG_ONLY_TRIGGER.test(r.name)).map((r) => `${r.table}.${r.name}`);
  return normalize(s);
}

function normalize(s: Schema): Schema {
  return {
    columns: s.columns,
    uniques: [...s.uniques].sort(),
    indexes: [...s.indexes].sort(),
    triggers: [...s.triggers].sort(),
  };
}

t.test('the migrations lists match one to one (versions and names)', async (t) => {
  t.same(
    PG_MIGRATIONS.map((m) => [m.version, m.name]),
    MIGRATIONS.map((m) => [m.version, m.name]),
  );
});

t.test('SQLite and PostgreSQL schemas agree after all migrations; append-only on both', async (t) => {
  const dir = tempDir(t);
  openStore(dir).close();
  const lite = sqliteSchema(join(dir, 'kds.sqlite'));

  const { url, schema } = pgTestSchema(t);
  await (await PgStore.open(url)).close();
  const client = await pgRawClient(t, schema);
  const pg = await pgSchema(client, schema);

  t.same(Object.keys(pg.columns).sort(), Object.keys(lite.columns).sort(), 'tables');
  for (const table of Object.keys(lite.columns))
    t.same(pg.columns[table], lite.columns[table], `columns of ${table}`);
  t.same(pg.uniques, lite.uniques, 'primary keys and UNIQUE constraints');
  t.same(pg.indexes, lite.indexes, 'indexes');
  t.same(pg.triggers, lite.triggers, 'triggers');
  t.ok(lite.triggers.length >= 4, 'the append-only triggers exist');

  // The triggers refuse, on both engines.
  const raw = new Database(join(dir, 'kds.sqlite'));
  t.teardown(() => raw.close());
  raw.prepare(`INSERT INTO audit_log (at, actor, action) VALUES (1, 'a', 'b')`).run();
  t.throws(() => raw.prepare(`UPDATE audit_log SET actor = 'x'`).run(), /append-only/);
  t.throws(() => raw.prepare(`DELETE FROM audit_log`).run(), /append-only/);
  await client.query(`INSERT INTO audit_log (at, actor, action) VALUES (1, 'a', 'b')`);
  await t.rejects(client.query(`UPDATE audit_log SET actor = 'x'`), /append-only/);
  await t.rejects(client.query(`DELETE FROM audit_log`), /append-only/);
  await t.rejects(client.query(`TRUNCATE audit_log`), /append-only/);
  await t.rejects(client.query(`TRUNCATE revocations`), /permanent/);
});
