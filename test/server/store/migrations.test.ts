// Upgrades of the SQLite store (server/store/migrations.ts): a store of every shape released migrations
// left behind reaches the latest schema; an upgrade that fails at any step leaves the store exactly as
// it was; a read-only open never migrates; and no released migration's text changes.
import t from 'tap';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tempDir } from '../../helpers/tmp.js';
import { EnvironmentError } from '../../../shared/errors.js';
import { MIGRATIONS, migrate, userVersion, type Migration } from '../../../server/store/migrations.js';
import { PG_MIGRATIONS } from '../../../server/store/pg-migrations.js';
import { SqliteStore } from '../../../server/store/sqlite-store.js';

const LATEST = MIGRATIONS.length;

/** Migration 3 as it shipped before its text dropped sym_keys_by_owner (the stores it made keep that index). */
function firstReleasedMigration3(): Migration {
  const current = MIGRATIONS[2]!;
  if (typeof current.up !== 'string') throw new Error('migration 3 is SQL');
  const up = current.up.replace(/^\s*DROP INDEX sym_keys_by_owner;\n/m, '');
  if (up === current.up) throw new Error('migration 3 no longer drops sym_keys_by_owner');
  return { ...current, up };
}

/** A file store at `version` made by `migrations` (each one by itself, as the kds of that time did). */
function storeAt(dir: string, migrations: readonly Migration[]): Database.Database {
  const db = new Database(join(dir, 'kds.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  for (const m of migrations) {
    db.transaction(() => {
      if (typeof m.up === 'string') db.exec(m.up);
      else m.up(db);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return db;
}

/** Every schema object with its SQL, and every index with its columns (the SQL text keeps IF NOT EXISTS). */
function schemaOf(db: Database.Database): string[] {
  const rows = db
    .prepare(
      `SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name`,
    )
    .all() as { type: string; name: string; tbl_name: string; sql: string | null }[];
  return rows.map((r) => {
    if (r.type !== 'index') return `${r.type} ${r.name}: ${r.sql ?? ''}`;
    const cols = (db.prepare(`PRAGMA index_info(${r.name})`).all() as { name: string }[]).map((c) => c.name);
    return `index ${r.name} on ${r.tbl_name}(${cols.join(', ')})`;
  });
}

function seedRows(db: Database.Database): void {
  db.prepare(
    `INSERT INTO sym_keys (serial, mode, owner, owner_cert, peer, peer_cert, created_at, expires_at, state)
     VALUES (?, 'e2e', 'alice', 'c1', 'bob', 'c2', 1000, 2000, 'reserved')`,
  ).run('ab'.repeat(16));
  db.prepare(
    `INSERT INTO audit_log (at, actor, action, subject) VALUES (1000, 'kds', 'ca.init', 'root-ca')`,
  ).run();
}

t.test('a store whose migration 3 kept sym_keys_by_owner upgrades to the latest schema', async (t) => {
  const dir = tempDir(t);
  const db = storeAt(dir, [MIGRATIONS[0]!, MIGRATIONS[1]!, firstReleasedMigration3()]);
  t.teardown(() => db.close());
  seedRows(db);
  t.equal(userVersion(db), 3);
  t.ok(schemaOf(db).includes('index sym_keys_by_owner on sym_keys(owner, created_at)'), 'with the index');
  t.equal(migrate(db), 3, 'migrated from 3');
  t.equal(userVersion(db), LATEST);

  const fresh = new Database(':memory:');
  t.teardown(() => fresh.close());
  migrate(fresh);
  t.same(schemaOf(db), schemaOf(fresh), 'the same schema as a store created by this kds');
  t.equal((db.prepare('SELECT count(*) AS n FROM sym_keys').get() as { n: number }).n, 1, 'its keys kept');
  t.equal(
    (db.prepare('SELECT count(*) AS n FROM audit_log WHERE hash IS NOT NULL').get() as { n: number }).n,
    1,
  );
});

t.test('the same store left at version 6 by a failed upgrade of one migration per transaction', async (t) => {
  const dir = tempDir(t);
  const db = storeAt(dir, [
    MIGRATIONS[0]!,
    MIGRATIONS[1]!,
    firstReleasedMigration3(),
    ...MIGRATIONS.slice(3, 6),
  ]);
  t.teardown(() => db.close());
  t.equal(migrate(db), 6);
  t.equal(userVersion(db), LATEST);
});

t.test('the same store opened by the store class, then read-only', async (t) => {
  const dir = tempDir(t);
  storeAt(dir, [MIGRATIONS[0]!, MIGRATIONS[1]!, firstReleasedMigration3()]).close();
  const store = SqliteStore.open(dir);
  t.equal(store.schemaVersion(), LATEST);
  store.close();
  const reader = SqliteStore.open(dir, { readOnly: true });
  t.teardown(() => reader.close());
  t.equal(reader.schemaVersion(), LATEST);
});

t.test('an upgrade that fails at a later step leaves the store exactly as it was', async (t) => {
  const dir = tempDir(t);
  const db = storeAt(dir, MIGRATIONS.slice(0, 3));
  t.teardown(() => db.close());
  seedRows(db);
  // In the way of the last migration: everything before it would have run.
  db.exec('CREATE INDEX certificates_by_status ON certificates (status)');
  const before = schemaOf(db);

  t.throws(() => migrate(db), /index certificates_by_status already exists/);
  t.equal(userVersion(db), 3, 'still at version 3');
  t.same(schemaOf(db), before, 'no table, column, index or trigger of migrations 4-9 left behind');
  t.notOk(db.inTransaction, 'the transaction was rolled back, not left open');
  t.equal((db.prepare('SELECT count(*) AS n FROM sym_keys').get() as { n: number }).n, 1, 'rows kept');
});

t.test('a data migration that throws half-way leaves the store as it was', async (t) => {
  const dir = tempDir(t);
  const db = storeAt(dir, MIGRATIONS.slice(0, 4));
  t.teardown(() => db.close());
  const before = schemaOf(db);
  const failing: Migration = {
    version: 6,
    name: 'fails after its first statement',
    up: (d) => {
      d.exec('CREATE TABLE half_done (x INTEGER)');
      throw new Error('injected failure');
    },
  };
  t.throws(() => migrate(db, [...MIGRATIONS.slice(0, 5), failing]), /injected failure/);
  t.equal(userVersion(db), 4, 'migration 5 (the audit chain) was rolled back with it');
  t.same(schemaOf(db), before);
});

t.test('a read-only open migrates nothing: an older store is refused with the way forward', async (t) => {
  const dir = tempDir(t);
  storeAt(dir, MIGRATIONS.slice(0, 9)).close();
  const err = (() => {
    try {
      SqliteStore.open(dir, { readOnly: true });
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  t.type(err, EnvironmentError);
  t.equal((err as EnvironmentError).code, 'config');
  t.equal(
    (err as EnvironmentError).message,
    'the store has schema 9, this kds expects 10; run `kds server start` (which migrates) after taking a ' +
      'backup (docs/deployment.md "Upgrading"); this command only reads and does not migrate',
  );
  const raw = new Database(join(dir, 'kds.sqlite'), { readonly: true });
  t.teardown(() => raw.close());
  t.equal(userVersion(raw), 9, 'not migrated');
});

t.test('a read-only open of a newer store is refused as before', async (t) => {
  const dir = tempDir(t);
  const db = storeAt(dir, MIGRATIONS);
  db.pragma(`user_version = ${LATEST + 1}`);
  db.close();
  t.throws(() => SqliteStore.open(dir, { readOnly: true }), {
    code: 'store_error',
    message: `the store has schema version ${LATEST + 1}, newer than this kds (${LATEST}); upgrade kds`,
  });
  t.throws(() => SqliteStore.open(dir), { code: 'store_error' });
});

t.test('a read-only open of a missing or empty store: no kds store, and nothing created', async (t) => {
  const dir = tempDir(t);
  t.throws(() => SqliteStore.open(join(dir, 'none'), { readOnly: true }), { code: 'ca_missing' });
  new Database(join(dir, 'kds.sqlite')).close();
  t.throws(() => SqliteStore.open(dir, { readOnly: true }), { code: 'ca_missing' });
});

// The text of every released migration, by digest. A migration that shipped must never change: the
// stores in the field ran its old text (migration 3 was edited once, and stores of both shapes exist,
// which migration 7 has to allow for). Change a digest only for a migration that never shipped, or for
// an edit that leaves every store the old text ran on as it was (migration 7's IF NOT EXISTS), said in
// the migration's comment. [version, SQLite, PostgreSQL]
const RELEASED: readonly (readonly [number, string, string])[] = [
  [1, '99b35b71a9ab1d40', 'a4cf512403b3afcb'],
  [2, '53a3fec297b21ec3', 'fc3aa6140da6c38e'],
  [3, '5dcab83c460cd3fe', 'd008dbb66ad8f7cb'],
  [4, '2022d2bdd2ec982e', '3a4a1ecb8f01818f'],
  [5, 'function', 'function'],
  [6, '14dd5c80a634ed14', 'ad640aee8ee1472d'],
  [7, '15d59ea729811d0c', '64b215f9883d570f'],
  [8, '08a70bd86ee81270', '4f05f473986c6f7f'],
  [9, '57b43c08fed7e917', '7693f9ba908aa1fb'],
  [10, '04902d5acb64500a', '4cac1b8c209583eb'],
];

t.test('released migrations are unchanged (both engines)', async (t) => {
  const digest = (up: unknown): string =>
    typeof up === 'string' ? createHash('sha256').update(up).digest('hex').slice(0, 16) : 'function';
  const now = MIGRATIONS.map((m, i) => [m.version, digest(m.up), digest(PG_MIGRATIONS[i]?.up)] as const);
  t.same(now.slice(0, RELEASED.length), RELEASED);
  t.equal(RELEASED.length, MIGRATIONS.length, 'a new migration adds its digests here when it ships');
});
