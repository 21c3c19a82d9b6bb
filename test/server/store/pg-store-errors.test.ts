// How PostgreSQL failures reach callers (server/store/pg-store.ts pgError): `unavailable` for an outage
// (the caller may retry later, the node logs it once as an outage), `store_error` for what is not one
// (alerted on: docs/operations.md kds_store_errors_total). No connection slot left (SQLSTATE 53300:
// max_connections or the role's CONNECTION LIMIT) is an outage: it was `store_error`. So is a statement the
// database did not finish in time (57014 statement timeout, 55P03 lock timeout): it was `store_error` too.
import t from 'tap';
import pg from 'pg';
import { PG_TEST_URL, pgTestRole, pgTestSchema, underDatabaseAclLock } from '../../helpers/pg.js';
import { PgStore, pgError } from '../../../server/store/pg-store.js';

/** An error shaped like node-postgres's DatabaseError for a SQLSTATE. */
function sqlState(code: string, message: string): Error {
  return Object.assign(new Error(message), { code, severity: 'FATAL' });
}

t.test('each failure is classified: an outage is unavailable, anything else store_error', async (t) => {
  const gone = 'the database is unavailable: store read failed';
  const late = (why: string): string => `the database did not answer in time (${why}): store read failed`;
  const cases: [Error, string, string?][] = [
    [sqlState('53300', 'sorry, too many clients already'), 'unavailable', gone],
    [sqlState('53300', 'too many connections for role "kds"'), 'unavailable', gone],
    [sqlState('08006', 'connection failure'), 'unavailable', gone],
    [sqlState('57P01', 'terminating connection due to administrator command'), 'unavailable', gone],
    [sqlState('57P03', 'the database system is starting up'), 'unavailable', gone],
    [sqlState('57P05', 'terminating connection due to idle-session timeout'), 'unavailable', gone],
    [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      'unavailable',
      gone,
    ],
    [new Error('Connection terminated unexpectedly'), 'unavailable', gone],
    // Up, but not answering in time (a lock held elsewhere): transient, and said as what it is.
    [new Error('Query read timeout'), 'unavailable', late('no reply on the connection')],
    [
      sqlState('57014', 'canceling statement due to statement timeout'),
      'unavailable',
      late('statement timeout: a lock held by another session?'),
    ],
    [
      sqlState('57014', 'canceling statement due to user request'),
      'unavailable',
      'the database cancelled the statement (canceling statement due to user request): store read failed',
    ],
    [
      sqlState('55P03', 'canceling statement due to lock timeout'),
      'unavailable',
      late('lock timeout: a lock held by another session?'),
    ],
    // Class 53 other than 53300 needs an operator, not a retry: it stays an alerted store_error.
    [sqlState('53100', 'could not extend file: No space left on device'), 'store_error'],
    [sqlState('53200', 'out of memory'), 'store_error'],
    [sqlState('53400', 'configuration limit exceeded'), 'store_error'],
    [sqlState('42501', 'permission denied for table certificates'), 'store_error'],
    [sqlState('23505', 'duplicate key value violates unique constraint'), 'store_error'],
  ];
  for (const [err, code, message] of cases) {
    const kds = pgError(err, 'store read failed');
    const name = `${(err as { code?: string }).code ?? err.message}`;
    t.equal(kds.code, code, `${name}: ${code}`);
    if (message !== undefined) t.equal(kds.message, message, `${name}: its message`);
    else t.match(kds.message, /^store read failed \(/, `${name}: its message`);
  }
});

t.test("a role at its CONNECTION LIMIT: calls fail as unavailable, then work once it's lifted", async (t) => {
  const opened: PgStore[] = [];
  const close = async (): Promise<void> => {
    for (const s of opened) await s.close();
  };
  const { schema } = pgTestSchema(t, close);
  const { role, url } = await pgTestRole(t, close);
  const admin = new pg.Client({ connectionString: PG_TEST_URL });
  await admin.connect();
  t.teardown(() => admin.end());
  // The role creates and owns the store's schema, as the role that runs `kds server init --store` does.
  await underDatabaseAclLock(admin, () =>
    admin.query(`GRANT CREATE ON DATABASE ${new URL(PG_TEST_URL).pathname.slice(1)} TO ${role}`),
  );
  const store = await PgStore.open(url(schema));
  opened.push(store);
  // Opening used a connection of its own, closed since; the pool has opened none yet.
  await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT 0`);
  await t.rejects(store.getSetting('x'), { code: 'unavailable', message: /the database is unavailable/ });
  await t.rejects(
    store.transaction((tx) => tx.setSetting('x', 1)),
    { code: 'unavailable' },
  );
  await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT -1`);
  await store.setSetting('x', 1);
  t.equal(await store.getSetting('x'), 1, 'the same store object works once a slot is free');
});
