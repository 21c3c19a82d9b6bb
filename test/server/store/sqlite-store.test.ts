import t from 'tap';
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers/tmp.js';
import { openStore, type NewCertificate } from '../../../server/store/store.js';
import { MIGRATIONS, migrate } from '../../../server/store/migrations.js';
import { NEWEST_KEYS_OF_PARTY_SQL, NEWEST_KEYS_SQL } from '../../../server/store/sqlite-keys.js';
import { deleteExpiredKeysSql, newestCertificatesSql } from '../../../server/store/rows.js';
import {
  CERTIFICATE_SERIALS_SQL,
  CERTIFICATE_STATUS_COUNTS_SQL,
} from '../../../server/store/sqlite-certificates.js';

const DAY = 86_400_000;
/** The version the last migration brings a database to. */
const LATEST_SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

function cert(serialHex: string, name = 'alice', role: NewCertificate['role'] = 'client'): NewCertificate {
  return { serialHex, name, role, notBefore: 1_000, notAfter: 1_000 + 30 * DAY, issuedAt: 1_000 };
}

function issued(serialHex: string, name = 'alice', pem = `-----BEGIN CERTIFICATE-----\n${serialHex}\n`) {
  return { ...cert(serialHex, name), pem, fingerprint256: `fp${serialHex}` };
}

function issue(store: ReturnType<typeof openStore>, serialHex: string, name = 'alice'): void {
  store.insertIssuedCertificate(issued(serialHex, name));
}

t.test('migrations from empty: latest user_version, every table, 0600 file, WAL', async (t) => {
  const dir = tempDir(t);
  const store = openStore(dir);
  t.teardown(() => store.close());
  t.equal(store.schemaVersion(), LATEST_SCHEMA_VERSION);
  t.equal(LATEST_SCHEMA_VERSION, MIGRATIONS.length);
  const raw = new Database(join(dir, 'kds.sqlite'), { readonly: true });
  t.teardown(() => raw.close());
  const tables = (
    raw.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]
  )
    .map((r) => r.name)
    .sort();
  for (const name of [
    'audit_log',
    'certificates',
    'crl_state',
    'enrollment_tokens',
    'revocations',
    'settings',
  ]) {
    t.ok(tables.includes(name), `table ${name}`);
  }
  t.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(statSync(join(dir, 'kds.sqlite')).mode & 0o777, 0o600);
  t.equal(statSync(dir).mode & 0o777, 0o700);
});

t.test('reopening is idempotent; a newer schema is refused', async (t) => {
  const dir = tempDir(t);
  openStore(dir).close();
  const again = openStore(dir);
  t.equal(again.schemaVersion(), LATEST_SCHEMA_VERSION);
  again.close();
  const raw = new Database(join(dir, 'kds.sqlite'));
  raw.pragma(`user_version = ${LATEST_SCHEMA_VERSION + 1}`);
  raw.close();
  t.throws(() => openStore(dir), { code: 'store_error' });
});

t.test('a later migration is applied on top, in order, once', async (t) => {
  const db = new Database(':memory:');
  t.teardown(() => db.close());
  t.equal(migrate(db), 0);
  const extra = [
    ...MIGRATIONS,
    { version: MIGRATIONS.length + 1, name: 'test', up: 'CREATE TABLE extra (x)' },
  ];
  t.equal(migrate(db, extra), LATEST_SCHEMA_VERSION);
  t.equal(migrate(db, extra), LATEST_SCHEMA_VERSION + 1);
  t.throws(() => migrate(db, [{ version: 2, name: 'gap', up: '' }]), /out of order/);
});

t.test('serial UNIQUE is enforced and one active certificate per name', async (t) => {
  const store = openStore(tempDir(t));
  t.teardown(() => store.close());
  store.insertIssuedCertificate(issued('01', 'alice', 'pem1'));
  t.throws(() => store.insertIssuedCertificate(issued('01', 'bob')), { code: 'store_error' }, 'serial taken');
  t.throws(
    () => store.insertIssuedCertificate(issued('XYZ', 'carol')),
    { code: 'store_error' },
    'serial must be lowercase hex',
  );
  t.throws(() => store.insertIssuedCertificate(issued('02', 'alice', 'pem2')), { code: 'already_active' });
  t.equal(store.getCertificate('02'), undefined, 'a refused insert leaves no row');
  store.setCertificateStatus('01', 'superseded');
  store.insertIssuedCertificate(issued('02', 'alice', 'pem2'));
  t.equal(store.activeCertificate('alice')!.serialHex, '02');
  t.equal(store.activeCertificate('alice')!.pem, 'pem2');
  t.equal(store.getCertificateByFingerprint('fp01')!.status, 'superseded');
  t.equal(store.latestCertificate('alice')!.serialHex, '02');
  t.equal(store.countCertificates(), 2);
  t.same(
    store.listCertificates({ status: 'active' }).map((c) => c.serialHex),
    ['02'],
  );
  t.same(
    store.listCertificates({ name: 'alice' }).map((c) => c.serialHex),
    ['01', '02'],
  );
});

t.test('a reopened store sees every acknowledged revocation and the CRL state', async (t) => {
  const dir = tempDir(t);
  const store = openStore(dir);
  for (let i = 1; i <= 20; i++) issue(store, i.toString(16).padStart(2, '0'), `n${i}`);
  for (let i = 1; i <= 20; i += 2) {
    const serial = i.toString(16).padStart(2, '0');
    store.transaction(() => {
      store.insertRevocation({ serialHex: serial, revokedAt: 5_000 + i, reason: 'keyCompromise' });
      store.setCertificateStatus(serial, 'revoked');
      store.saveCrlState({
        crlNumber: i + 1,
        pem: `crl${i}`,
        thisUpdate: i,
        nextUpdate: i + 7,
        lastRevocationId: store.lastRevocationId(),
      });
    });
  }
  t.throws(
    () => store.insertRevocation({ serialHex: '01', revokedAt: 1, reason: 'unspecified' }),
    { code: 'store_error' },
    'one revocation row per serial',
  );
  t.throws(
    () => store.insertRevocation({ serialHex: 'ff', revokedAt: 1, reason: 'unspecified' }),
    { code: 'store_error' },
    'a revocation must name an issued certificate (foreign key)',
  );
  store.close();

  const again = openStore(dir);
  t.teardown(() => again.close());
  t.equal(again.countRevocations(), 10);
  t.equal(again.lastRevocationId(), 10);
  t.same(again.getRevocation('13'), { id: 10, serialHex: '13', revokedAt: 5_019, reason: 'keyCompromise' });
  t.equal(again.getCertificate('13')!.status, 'revoked');
  t.equal(again.getCertificate('14')!.status, 'active');
  t.same(
    again.listRevocations(8).map((r) => r.serialHex),
    ['11', '13'],
  );
  t.same(again.getCrlState(), {
    crlNumber: 20,
    pem: 'crl19',
    thisUpdate: 19,
    nextUpdate: 26,
    lastRevocationId: 10,
  });
});

t.test('a failed transaction leaves nothing behind', async (t) => {
  const store = openStore(tempDir(t));
  t.teardown(() => store.close());
  issue(store, 'aa');
  t.throws(
    () =>
      store.transaction(() => {
        store.insertRevocation({ serialHex: 'aa', revokedAt: 1, reason: 'keyCompromise' });
        store.setCertificateStatus('aa', 'revoked');
        throw new Error('boom');
      }),
    /boom/,
  );
  t.equal(store.countRevocations(), 0);
  t.equal(store.getCertificate('aa')!.status, 'active');
});

t.test('audit log: appended in order, append-only, no secrets', async (t) => {
  const dir = tempDir(t);
  const store = openStore(dir);
  t.teardown(() => store.close());
  const a = store.appendAudit({
    at: 1,
    actor: 'cli:root',
    action: 'ca.init',
    subject: 'root-ca',
    detail: { bits: 3072 },
  });
  const b = store.appendAudit({ at: 2, actor: 'cli:root', action: 'cert.issue', subject: 'alice' });
  t.ok(b > a);
  const listed = store.listAudit();
  t.same(
    listed.map(({ prevHash: _p, hash: _h, ...content }) => content),
    [
      { id: a, at: 1, actor: 'cli:root', action: 'ca.init', subject: 'root-ca', detail: { bits: 3072 } },
      { id: b, at: 2, actor: 'cli:root', action: 'cert.issue', subject: 'alice', detail: {} },
    ],
  );
  // Chained: the first commits to the genesis hash, the second to the first's hash.
  t.equal(listed[0]!.prevHash, '0'.repeat(64));
  t.equal(listed[1]!.prevHash, listed[0]!.hash);
  t.match(listed[1]!.hash, /^[0-9a-f]{64}$/);
  t.same(
    store.listAudit({ action: 'cert.issue' }).map((r) => r.id),
    [b],
  );
  t.same(
    store.listAudit({ afterId: a, limit: 1 }).map((r) => r.id),
    [b],
  );
  t.throws(
    () => store.appendAudit({ at: 3, actor: 'x', action: 'y', detail: { passphrase: 'p' } }),
    /secret/,
  );
  t.throws(
    () => store.appendAudit({ at: 3, actor: 'x', action: 'y', detail: { privateKeyPem: 'p' } }),
    /secret/,
  );
  t.equal(store.countAudit(), 2);
  const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(store));
  t.ok(methods.includes('appendAudit'));
  t.notOk(
    methods.some((k) => /audit/i.test(k) && /update|delete|remove|clear/i.test(k)),
    'no mutation API',
  );
  issue(store, '0a');
  store.insertRevocation({ serialHex: '0a', revokedAt: 1, reason: 'keyCompromise' });
  const raw = new Database(join(dir, 'kds.sqlite'));
  t.teardown(() => raw.close());
  t.throws(() => raw.prepare(`UPDATE audit_log SET actor = 'mallory'`).run(), /append-only/);
  t.throws(() => raw.prepare('DELETE FROM audit_log').run(), /append-only/);
  t.throws(() => raw.prepare('DELETE FROM revocations').run(), /permanent/);
  t.throws(() => raw.prepare(`UPDATE revocations SET reason = 'unspecified'`).run(), /permanent/);
});

t.test('enrollment token: consumed exactly once, bound to its name, expires', async (t) => {
  const store = openStore(tempDir(t));
  t.teardown(() => store.close());
  const base = { createdAt: 100, expiresAt: 1_000, createdBy: 'admin' };
  store.insertEnrollmentToken({ tokenHash: 'h1', name: 'alice', ...base });
  store.insertEnrollmentToken({ tokenHash: 'h2', name: 'bob', ...base });
  t.equal(store.consumeEnrollmentToken('h1', 'bob', 500, 'a1'), undefined, 'wrong name');
  t.equal(store.consumeEnrollmentToken('nope', 'alice', 500, 'a1'), undefined, 'unknown token');
  const used = store.consumeEnrollmentToken('h1', 'alice', 500, 'a1');
  t.match(used, { tokenHash: 'h1', name: 'alice', usedAt: 500, createdBy: 'admin', certSerial: 'a1' });
  t.equal(store.consumeEnrollmentToken('h1', 'alice', 501, 'a2'), undefined, 'second use refused');
  t.equal(store.getEnrollmentToken('h1')?.certSerial, 'a1', 'a refused second use leaves the serial');
  t.equal(store.consumeEnrollmentToken('h2', 'bob', 1_000, 'b1'), undefined, 'expired at expires_at');
  t.equal(store.getEnrollmentToken('h2')?.certSerial, null, 'an unused token has no serial');
  t.same(
    store.listEnrollmentTokens().map((r) => [r.name, r.usedAt]),
    [
      ['alice', 500],
      ['bob', null],
    ],
  );
  t.throws(() => store.insertEnrollmentToken({ tokenHash: 'h1', name: 'carol', ...base }), {
    code: 'store_error',
  });
});

t.test('settings round-trip; changeCounter moves only on other connections', async (t) => {
  const dir = tempDir(t);
  const a = openStore(dir);
  const b = openStore(dir);
  t.teardown(() => {
    a.close();
    b.close();
  });
  a.setSetting('ca', { crlHost: 'h', crlPort: 1 });
  t.same(b.getSetting('ca'), { crlHost: 'h', crlPort: 1 });
  t.equal(b.getSetting('missing'), undefined);
  const before = a.changeCounter();
  a.setSetting('x', 1);
  t.equal(a.changeCounter(), before, 'own writes do not count');
  b.setSetting('x', 2);
  t.not(a.changeCounter(), before, 'another connection committed');
});

t.test('the last signed audit entry is read from its index, not from every head', async (t) => {
  const db = new Database(':memory:');
  migrate(db);
  const plan = (
    db.prepare('EXPLAIN QUERY PLAN SELECT max(entry_id) AS n FROM audit_heads').all() as {
      detail: string;
    }[]
  ).map((r) => r.detail);
  t.ok(
    plan.some((d) => /audit_heads USING COVERING INDEX audit_heads_by_entry/.test(d)),
    `by the index (${plan.join('; ')})`,
  );
});

t.test("the KDC's newest keys (admin listing, console) are read from an index, not sorted", async (t) => {
  const db = new Database(':memory:');
  migrate(db);
  const plan = (
    db.prepare(`EXPLAIN QUERY PLAN ${NEWEST_KEYS_SQL}`).all(null, null, 0, 201) as { detail: string }[]
  ).map((r) => r.detail);
  t.ok(
    plan.some((d) => /SCAN sym_keys USING INDEX sym_keys_by_created/.test(d)),
    `read backwards through sym_keys_by_created (${plan.join('; ')})`,
  );
  t.notOk(
    plan.some((d) => /TEMP B-TREE FOR ORDER BY/.test(d)),
    'no sort of the table (1.7 s per console refresh at 1,000,000 keys)',
  );
});

t.test("the console's certificates: the newest read backwards, the counts from an index", async (t) => {
  // Re-read on every refresh of the console's state panel; certificates are never deleted and every
  // renewal adds one: reading them all (PEM included) cost ~1 s per refresh at 50,000.
  const db = new Database(':memory:');
  migrate(db);
  const plan = (sql: string, ...args: unknown[]): string[] =>
    (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail);
  const newest = plan(newestCertificatesSql('?'), 201);
  t.ok(
    newest.some((d) => /^SCAN certificates$/.test(d)),
    `the table's primary key, read backwards (${newest.join('; ')})`,
  );
  t.notOk(
    newest.some((d) => /TEMP B-TREE/.test(d)),
    'no sort',
  );
  const counts = plan(CERTIFICATE_STATUS_COUNTS_SQL);
  t.ok(
    counts.some((d) => /SCAN certificates USING COVERING INDEX certificates_by_status/.test(d)),
    `counted from the status index, no row read (${counts.join('; ')})`,
  );
  t.notOk(
    counts.some((d) => /TEMP B-TREE/.test(d)),
    'grouped in index order',
  );
  // The serials of one status (the superseded ones, at every open of a CA with its key).
  const serials = plan(CERTIFICATE_SERIALS_SQL, 'superseded');
  t.ok(
    serials.some((d) => /SEARCH certificates USING INDEX certificates_by_status \(status=\?\)/.test(d)),
    `searched in the status index (${serials.join('; ')})`,
  );
  t.notOk(
    serials.some((d) => /TEMP B-TREE/.test(d)),
    'in rowid order, no sort',
  );
});

t.test('deleting expired keys searches the state index, never the whole table', async (t) => {
  // The retention sweep runs on a table any client can grow (short-lived keys, 1 a second each).
  const db = new Database(':memory:');
  migrate(db);
  const plan = (
    db.prepare(`EXPLAIN QUERY PLAN ${deleteExpiredKeysSql('?', '?')}`).all(1_000, 500) as { detail: string }[]
  ).map((r) => r.detail);
  t.ok(
    plan.some((d) =>
      /SEARCH sym_keys USING (COVERING )?INDEX sym_keys_by_state \(state=\? AND expires_at<\?\)/.test(d),
    ),
    `by state and expiry (${plan.join('; ')})`,
  );
  t.notOk(
    plan.some((d) => /^SCAN sym_keys/.test(d)),
    'no scan of the table',
  );
});

t.test("a client's key listing reads its keys through indexes, never the whole table", async (t) => {
  // The listing a client asks for (key.list) once read every key of the KDC on the event loop: with
  // 200,000 keys, 32 listings in flight held an honest client's ping for seconds. Its plan must search
  // sym_keys_by_owner and sym_keys_by_peer, each read in order (no sort of the table's rows).
  const db = new Database(':memory:');
  migrate(db);
  const plan = (
    db
      .prepare(`EXPLAIN QUERY PLAN ${NEWEST_KEYS_OF_PARTY_SQL}`)
      .all('alice', null, null, 0, 1001, 'alice', 'alice', null, null, 0, 1001, 1001) as { detail: string }[]
  ).map((r) => r.detail);
  t.ok(
    plan.some((d) => /SEARCH sym_keys USING INDEX sym_keys_by_owner \(owner=\?\)/.test(d)),
    'as owner',
  );
  t.ok(
    plan.some((d) => /SEARCH sym_keys USING INDEX sym_keys_by_peer \(peer=\?\)/.test(d)),
    'as peer',
  );
  t.notOk(
    plan.some((d) => /^SCAN sym_keys/.test(d)),
    `no scan of the table (${plan.join('; ')})`,
  );
  // A sort may only ever be of a subquery's rows (at most LIMIT of them), never of sym_keys itself:
  // between each SEARCH and the scan of its subquery's result there is no temporary B-tree (without
  // the owner index, SQLite sorts the owner's rows there: every key the client ever had).
  for (let i = 0; i < plan.length; i++) {
    if (!/^SEARCH sym_keys/.test(plan[i]!)) continue;
    const end = plan.findIndex((d, k) => k > i && /^SCAN \(subquery/.test(d));
    t.notOk(
      plan.slice(i, end < 0 ? undefined : end).some((d) => /TEMP B-TREE/.test(d)),
      `the index gives the order: ${plan[i]}`,
    );
  }
  db.close();
});
