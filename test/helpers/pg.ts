// PostgreSQL for tests: the server the development and CI machines run (127.0.0.1:5432, trust auth,
// database `test`; .ci/run starts it), or KDS_TEST_PG_URL. Each test gets its own schema, dropped when
// the test ends. When PostgreSQL is not running the test FAILS (the open is refused): never a skip.
import pg from 'pg';
import { randomBytes } from 'node:crypto';

export const PG_TEST_URL = process.env.KDS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** A fresh schema name in the test database; `before` runs at teardown before the schema is dropped. */
export function pgTestSchema(t: Teardown, before?: () => Promise<void>): { url: string; schema: string } {
  const schema = `kds_t_${randomBytes(6).toString('hex')}`;
  t.teardown(async () => {
    await before?.();
    const client = new pg.Client({ connectionString: PG_TEST_URL });
    await client.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    } finally {
      await client.end();
    }
  });
  const sep = PG_TEST_URL.includes('?') ? '&' : '?';
  return { url: `${PG_TEST_URL}${sep}schema=${schema}`, schema };
}

/** A plain client working in `schema` (raw SQL for schema checks). */
export async function pgRawClient(t: Teardown, schema: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: PG_TEST_URL, options: `-c search_path=${schema}` });
  await client.connect();
  t.teardown(() => client.end());
  return client;
}

/**
 * A fresh login role (not a superuser, granted nothing), dropped at teardown after `before` (close what
 * connects as it first): DROP OWNED BY revokes what it was granted in the test database, then DROP ROLE.
 * Roles belong to the whole server, so its name is random like a schema's. `url(schema)` connects as it.
 */
export async function pgTestRole(
  t: Teardown,
  before?: () => Promise<void>,
): Promise<{ role: string; url: (schema: string) => string }> {
  const role = `kds_t_role_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_TEST_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE ${role} LOGIN`);
  } finally {
    await admin.end();
  }
  t.teardown(async () => {
    await before?.();
    const client = new pg.Client({ connectionString: PG_TEST_URL });
    await client.connect();
    try {
      await underDatabaseAclLock(client, () => client.query(`DROP OWNED BY ${role}`));
      await client.query(`DROP ROLE ${role}`);
    } finally {
      await client.end();
    }
  });
  return {
    role,
    url: (schema) => {
      const u = new URL(PG_TEST_URL);
      u.username = role;
      u.password = '';
      u.searchParams.set('schema', schema);
      return u.toString();
    },
  };
}

/**
 * GRANT ... ON DATABASE and DROP OWNED BY rewrite the test database's one pg_database row, and two test
 * files doing so at once fail with "tuple concurrently updated" (PostgreSQL takes no lock for it): one at
 * a time across the whole run, by a transaction-scoped advisory lock.
 */
export async function underDatabaseAclLock(client: pg.Client, fn: () => Promise<unknown>): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('kds-test-database-acl'))`);
    await fn();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Grant `role` what a KDC node needs at run time on the migrated store in `schema`, and nothing more:
 * the statements docs/deployment.md "Database roles" gives operators (keep the two the same).
 */
export async function pgGrantRunTime(role: string, schema: string): Promise<void> {
  const admin = new pg.Client({ connectionString: PG_TEST_URL });
  await admin.connect();
  try {
    const database = new URL(PG_TEST_URL).pathname.slice(1);
    await underDatabaseAclLock(admin, () => admin.query(`GRANT CONNECT ON DATABASE ${database} TO ${role}`));
    await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
    await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${role}`);
    await admin.query(`GRANT UPDATE ON ALL SEQUENCES IN SCHEMA ${schema} TO ${role}`);
  } finally {
    await admin.end();
  }
}
