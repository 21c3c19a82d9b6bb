// One conformance suite for the asynchronous Store contract (server/store/async-store.ts), run against
// BOTH engines: SQLite (a temp directory) and PostgreSQL (a schema of its own in the test database,
// dropped at the end; the test fails, never skips, when PostgreSQL is not running).
import t from 'tap';
import type * as Tap from 'tap';
import { tempDir } from '../../helpers/tmp.js';
import { pgGrantRunTime, pgTestRole, pgTestSchema } from '../../helpers/pg.js';
import type { AsyncStore } from '../../../server/store/async-store.js';
import { openSqliteAsyncStore } from '../../../server/store/sqlite-async-store.js';
import { PgStore } from '../../../server/store/pg-store.js';
import { MIGRATIONS } from '../../../server/store/migrations.js';
import type { NewCertificate, NewPrekey, NewSymKey } from '../../../server/store/store.js';
import { KdsError, PolicyError } from '../../../shared/errors.js';
import { auditEntryHash, GENESIS_HASH, verifyAuditChain } from '../../../shared/audit/chain.js';

const DAY = 86_400_000;

interface Engine {
  name: string;
  /** A fresh empty store, closed (and dropped) when the test ends; `again()` opens a second handle on it. */
  open(t: Tap.Test): Promise<{ store: AsyncStore; again: () => Promise<AsyncStore> }>;
}

const ENGINES: Engine[] = [
  {
    name: 'sqlite',
    async open(t) {
      const dir = tempDir(t);
      const handles: AsyncStore[] = [];
      t.teardown(async () => {
        for (const h of handles) await h.close();
      });
      const again = (): Promise<AsyncStore> => {
        const h = openSqliteAsyncStore(dir);
        handles.push(h);
        return Promise.resolve(h);
      };
      return { store: await again(), again };
    },
  },
  {
    name: 'postgres',
    async open(t) {
      const handles: AsyncStore[] = [];
      const { url } = pgTestSchema(t, async () => {
        for (const h of handles) await h.close();
      });
      const again = async (): Promise<AsyncStore> => {
        const h = await PgStore.open(url);
        handles.push(h);
        return h;
      };
      return { store: await again(), again };
    },
  },
  {
    // A node under a least-privilege role (docs/deployment.md "Database roles"): the owner creates and
    // migrates the store, every handle the suite uses connects with the run-time grants only.
    name: 'postgres-run-time-role',
    async open(t) {
      const handles: AsyncStore[] = [];
      const close = async (): Promise<void> => {
        for (const h of handles) await h.close();
      };
      const { url, schema } = pgTestSchema(t, close);
      const role = await pgTestRole(t, close);
      handles.push(await PgStore.open(url));
      await pgGrantRunTime(role.role, schema);
      const again = async (): Promise<AsyncStore> => {
        const h = await PgStore.open(role.url(schema));
        handles.push(h);
        return h;
      };
      return { store: await again(), again };
    },
  },
];

function cert(serialHex: string, name = 'alice'): NewCertificate & { pem: string; fingerprint256: string } {
  return {
    serialHex,
    name,
    role: 'client',
    notBefore: 1_000,
    notAfter: 1_000 + 30 * DAY,
    issuedAt: 1_000,
    pem: `-----BEGIN CERTIFICATE-----\n${serialHex}\n`,
    fingerprint256: `fp${serialHex}`,
  };
}

function symKey(serial: string, over: Partial<NewSymKey> = {}): NewSymKey {
  return {
    serial,
    mode: 'kdc',
    owner: 'alice',
    ownerCert: 'a1',
    peer: 'bob',
    peerCert: 'b1',
    createdAt: 10_000,
    expiresAt: 10_000 + DAY,
    state: 'active',
    digest: Buffer.alloc(32, 1),
    wrappedKey: Buffer.from('wrapped'),
    kekVersion: 1,
    ...over,
  };
}

const serial32 = (n: number): string => n.toString(16).padStart(32, '0');
const prekey = (id: string): NewPrekey => ({
  prekeyId: id,
  publicKey: Buffer.alloc(32, id.charCodeAt(0)),
  signature: Buffer.from(`sig-${id}`),
});

async function rejectsWithCode(t: Tap.Test, p: Promise<unknown>, code: string, msg: string): Promise<void> {
  try {
    await p;
    t.fail(`${msg}: expected ${code}, resolved`);
  } catch (err) {
    t.ok(err instanceof KdsError, `${msg}: a KdsError`);
    t.equal((err as KdsError).code, code, msg);
  }
}

for (const engine of ENGINES) {
  t.test(engine.name, async (t) => {
    t.test('schema version, reopen is idempotent', async (t) => {
      const { store, again } = await engine.open(t);
      t.equal(store.engine, engine.name.replace(/-run-time-role$/, ''));
      t.equal(await store.schemaVersion(), MIGRATIONS.length);
      const second = await again();
      t.equal(await second.schemaVersion(), MIGRATIONS.length);
    });

    t.test('settings round-trip', async (t) => {
      const { store } = await engine.open(t);
      t.equal(await store.getSetting('crl'), undefined);
      await store.setSetting('crl', { host: 'h', port: 1 });
      await store.setSetting('crl', { host: 'h2', port: 2 });
      t.same(await store.getSetting('crl'), { host: 'h2', port: 2 });
    });

    t.test('certificates: unique serial, one active per name, status, listings', async (t) => {
      const { store } = await engine.open(t);
      const seen: string[] = [];
      const off = store.onCertificateStatusChange((s) => seen.push(s));
      await store.insertIssuedCertificate(cert('0a'));
      await rejectsWithCode(
        t,
        store.insertIssuedCertificate(cert('0a', 'bob')),
        'store_error',
        'serial taken',
      );
      await rejectsWithCode(t, store.insertIssuedCertificate(cert('0b')), 'already_active', 'second active');
      await store.setCertificateStatus('0a', 'superseded');
      await store.insertIssuedCertificate(cert('0b'));
      await store.insertIssuedCertificate(cert('0c', 'bob'));
      await rejectsWithCode(t, store.setCertificateStatus('ff', 'revoked'), 'store_error', 'unknown serial');
      t.same(seen, ['0a']);
      off();
      await store.setCertificateStatus('0c', 'revoked');
      t.same(seen, ['0a'], 'a removed listener is not called');

      const a = await store.getCertificate('0b');
      t.match(a, {
        serialHex: '0b',
        name: 'alice',
        role: 'client',
        status: 'active',
        notAfter: 1_000 + 30 * DAY,
      });
      t.equal(typeof a!.id, 'number');
      t.same(await store.getCertificateStanding('0c'), {
        status: 'revoked',
        notBefore: 1_000,
        notAfter: 1_000 + 30 * DAY,
      });
      t.equal(await store.getCertificateStanding('99'), undefined);
      t.equal((await store.getCertificateByFingerprint('fp0a'))?.serialHex, '0a');
      t.equal((await store.activeCertificate('alice'))?.serialHex, '0b');
      t.equal(await store.activeCertificate('bob'), undefined);
      // The summary: the active row's serial, role and validity only (alice's older 0a is superseded,
      // bob's only certificate revoked).
      t.strictSame(await store.activeCertificateSummary('alice'), {
        serialHex: '0b',
        role: 'client',
        notBefore: 1_000,
        notAfter: 1_000 + 30 * DAY,
      });
      t.equal(await store.activeCertificateSummary('bob'), undefined);
      t.equal(await store.activeCertificateSummary('nobody'), undefined);
      t.equal((await store.latestCertificate('alice'))?.serialHex, '0b');
      t.same(
        (await store.listCertificates()).map((c) => c.serialHex),
        ['0a', '0b', '0c'],
      );
      t.same(
        (await store.listCertificates({ name: 'alice' })).map((c) => c.serialHex),
        ['0a', '0b'],
      );
      t.same(
        (await store.listCertificates({ status: 'revoked' })).map((c) => c.serialHex),
        ['0c'],
      );
      t.equal(await store.countCertificates(), 3);
      // The console's panel: the newest that are not pending, oldest first, and counts per status.
      await store.insertRenewal(cert('0d'), '0b', 5_000);
      t.strictSame(await store.listNewestCertificates(2), [
        { serialHex: '0b', name: 'alice', role: 'client', status: 'active' },
        { serialHex: '0c', name: 'bob', role: 'client', status: 'revoked' },
      ]);
      t.same(
        (await store.listNewestCertificates(10)).map((c) => c.serialHex),
        ['0a', '0b', '0c'],
        'a pending renewal is not listed',
      );
      t.strictSame(await store.listCertificateSerials('superseded'), ['0a']);
      t.strictSame(await store.listCertificateSerials('pending'), ['0d']);
      t.strictSame(await store.listCertificateSerials('active'), ['0b']);
      t.strictSame(await store.countCertificatesByStatus(), {
        active: 1,
        pending: 1,
        revoked: 1,
        superseded: 1,
      });
      // The renewal rate: requests from `since` to `until`, both included; a request stamped later (a
      // clock that ran ahead) is not counted.
      await store.insertRenewal(cert('0e'), '0b', 9_000);
      t.equal(await store.countRenewalsSince('alice', 5_000, 9_000), 2);
      t.equal(await store.countRenewalsSince('alice', 5_001, 9_000), 1);
      t.equal(await store.countRenewalsSince('alice', 0, 8_999), 1, 'stamped after until: not counted');
      t.equal(await store.countRenewalsSince('bob', 0, 9_000), 0);
    });

    t.test(
      'revocations: ids increase, listed after an id, need an issued certificate; CRL state',
      async (t) => {
        const { store } = await engine.open(t);
        await store.insertIssuedCertificate(cert('0a'));
        await store.insertIssuedCertificate(cert('0b', 'bob'));
        const r1 = await store.insertRevocation({ serialHex: '0a', revokedAt: 5, reason: 'keyCompromise' });
        const r2 = await store.insertRevocation({ serialHex: '0b', revokedAt: 6, reason: 'unspecified' });
        t.ok(r2.id > r1.id);
        await rejectsWithCode(
          t,
          store.insertRevocation({ serialHex: '0a', revokedAt: 7, reason: 'unspecified' }),
          'store_error',
          'twice',
        );
        await rejectsWithCode(
          t,
          store.insertRevocation({ serialHex: 'ee', revokedAt: 7, reason: 'unspecified' }),
          'store_error',
          'not issued',
        );
        t.same(await store.getRevocation('0a'), {
          id: r1.id,
          serialHex: '0a',
          revokedAt: 5,
          reason: 'keyCompromise',
        });
        t.same(
          (await store.listRevocations(r1.id)).map((r) => r.serialHex),
          ['0b'],
        );
        t.same(
          (await store.listRevocations()).map((r) => [r.serialHex, r.certNotAfter]),
          [
            ['0a', cert('0a').notAfter],
            ['0b', cert('0b').notAfter],
          ],
          "each listed with its certificate's notAfter (when the CRL may leave it out)",
        );
        t.equal((await store.listRevocations()).length, 2);
        t.equal(await store.countRevocations(), 2);
        t.equal(await store.lastRevocationId(), r2.id);

        t.equal(await store.getCrlState(), undefined);
        const crl = { crlNumber: 1, pem: 'PEM1', thisUpdate: 1, nextUpdate: 2, lastRevocationId: r1.id };
        await store.saveCrlState(crl);
        await store.saveCrlState({ ...crl, crlNumber: 2, pem: 'PEM2', lastRevocationId: r2.id });
        t.same(await store.getCrlState(), { ...crl, crlNumber: 2, pem: 'PEM2', lastRevocationId: r2.id });
      },
    );

    t.test(
      'enrollment tokens: consumed once (also concurrently), bound to a name, expire, remember the certificate',
      async (t) => {
        const { store, again } = await engine.open(t);
        const tok = (h: string) => ({
          tokenHash: h,
          name: 'alice',
          createdAt: 1,
          expiresAt: 100,
          createdBy: 'admin',
        });
        await store.insertEnrollmentToken(tok('h1'));
        await store.insertEnrollmentToken(tok('h2'));
        await store.insertEnrollmentToken(tok('h3'));
        t.equal(await store.consumeEnrollmentToken('h1', 'bob', 50, 'a1'), undefined, 'wrong name');
        t.equal(await store.consumeEnrollmentToken('h1', 'alice', 100, 'a1'), undefined, 'expired');
        t.match(await store.consumeEnrollmentToken('h1', 'alice', 50, 'a1'), {
          tokenHash: 'h1',
          usedAt: 50,
          certSerial: 'a1',
        });
        t.equal(await store.consumeEnrollmentToken('h1', 'alice', 51, 'a2'), undefined, 'used');
        // What a replay reads back (server/ca/enroll-replay.ts), through another handle (another node).
        const other = await again();
        t.match(
          await other.getEnrollmentToken('h1'),
          { usedAt: 50, certSerial: 'a1' },
          'the first serial stays',
        );
        // Two handles (two connections; for PostgreSQL what two nodes are) redeem the same token at once.
        const results = await Promise.all([
          store.consumeEnrollmentToken('h2', 'alice', 60, 'b1'),
          other.consumeEnrollmentToken('h2', 'alice', 60, 'b2'),
          store.consumeEnrollmentToken('h2', 'alice', 60, 'b3'),
          other.consumeEnrollmentToken('h2', 'alice', 60, 'b4'),
        ]);
        const winners = results.filter((r) => r !== undefined);
        t.equal(winners.length, 1, 'exactly one redemption wins');
        t.equal(
          (await store.getEnrollmentToken('h2'))?.certSerial,
          winners[0]?.certSerial,
          "the winner's serial",
        );
        t.match(await store.getEnrollmentToken('h3'), { usedAt: null, createdBy: 'admin', certSerial: null });
        t.same(
          (await store.listEnrollmentTokens()).map((r) => [r.tokenHash, r.certSerial]),
          [
            ['h1', 'a1'],
            ['h2', winners[0]?.certSerial],
            ['h3', null],
          ],
        );
      },
    );

    t.test('audit log: in order, filtered, limited, no secrets, one hash chain across handles', async (t) => {
      const { store, again } = await engine.open(t);
      const id1 = await store.appendAudit({
        at: 1,
        actor: 'admin',
        action: 'cert.issue',
        subject: 'alice',
        detail: { serial: '0a' },
      });
      const id2 = await store.appendAudit({ at: 2, actor: 'admin', action: 'cert.revoke' });
      const id3 = await store.appendAudit({ at: 3, actor: 'bob', action: 'cert.issue', detail: { n: 2 } });
      t.ok(id1 < id2 && id2 < id3);
      await t.rejects(
        store.appendAudit({ at: 4, actor: 'x', action: 'y', detail: { passphrase: 'p' } }),
        /secret/,
      );
      t.match(await store.listAudit({ action: 'cert.issue' }), [
        { id: id1, at: 1, actor: 'admin', action: 'cert.issue', subject: 'alice', detail: { serial: '0a' } },
        { id: id3, at: 3, actor: 'bob', action: 'cert.issue', subject: null, detail: { n: 2 } },
      ]);
      t.same(
        (await store.listAudit({ afterId: id1, limit: 1 })).map((r) => r.id),
        [id2],
      );
      t.same(
        (await store.listAudit({ since: 2 })).map((r) => r.id),
        [id2, id3],
      );
      // Appends from two handles at once (two nodes on PostgreSQL) still form one chain.
      const other = await again();
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 === 0 ? store : other).appendAudit({ at: 10 + i, actor: 'n', action: 'x', detail: { i } }),
        ),
      );
      const all = await store.listAudit();
      t.equal(all.length, 13);
      t.equal(await store.countAudit(), 13);
      let prev = GENESIS_HASH;
      let linked = 0;
      for (const r of all) {
        if (r.prevHash === prev && r.hash === auditEntryHash(prev, r)) linked += 1;
        prev = r.hash ?? '';
      }
      t.equal(linked, 13, 'every entry links to the one before it and hashes its own content');
      t.same(await store.auditTail(), { id: all[12]!.id, hash: all[12]!.hash });
      t.equal(await store.lastSignedAuditEntry(), 0, 'no head signed yet');
      const hid = await store.appendAuditHead({
        entryId: all[12]!.id,
        hash: all[12]!.hash!,
        signedAt: 99,
        certSerial: '0a',
        signature: Buffer.from('sig'),
      });
      const heads = await store.listAuditHeads();
      t.match(heads, [{ id: hid, entryId: all[12]!.id, signedAt: 99, certSerial: '0a' }]);
      t.ok(heads[0]!.signature.equals(Buffer.from('sig')));
      // Another node may sign an older head after it (it had not seen the last entries yet).
      await store.appendAuditHead({
        entryId: all[5]!.id,
        hash: all[5]!.hash!,
        signedAt: 100,
        certSerial: '0b',
        signature: Buffer.from('sig'),
      });
      t.equal(await store.lastSignedAuditEntry(), all[12]!.id, 'the highest entry signed, not the last head');
    });

    t.test('audit log: appends that rolled back leave no gap in the chain', async (t) => {
      const { store, again } = await engine.open(t);
      const entry = (n: number) => ({ at: n, actor: 'admin', action: 'x', detail: { n } });
      await store.appendAudit(entry(1));
      // A savepoint that appended, then failed; its sibling after it appends.
      await store.transaction(async (tx) => {
        await tx.appendAudit(entry(2));
        await t.rejects(
          tx.transaction(async (sp) => {
            await sp.appendAudit(entry(-1));
            throw new Error('no');
          }),
        );
        await tx.appendAudit(entry(3));
      });
      // A whole transaction that appended, then failed.
      await t.rejects(
        store.transaction(async (tx) => {
          await tx.appendAudit(entry(-2));
          throw new Error('no');
        }),
      );
      // A group-commit caller alone in its transaction, refused after its append.
      await t.rejects(
        store.batch(async (tx) => {
          await tx.appendAudit(entry(-5));
          throw new Error('refused');
        }),
      );
      // Group-commit callers, the middle one refused after its append (the shape of a refused issuance).
      const results = await Promise.allSettled(
        [4, -3, 5, -4, 6].map((n) =>
          store.batch(async (tx) => {
            await tx.appendAudit(entry(n));
            if (n < 0) throw new Error('refused');
          }),
        ),
      );
      t.same(
        results.map((r) => r.status),
        ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled'],
      );
      // Another handle (another node) appends after all of it.
      await (await again()).appendAudit(entry(7));
      const all = await store.listAudit();
      t.same(
        all.map((r) => r.detail.n),
        [1, 2, 3, 4, 5, 6, 7],
        'only what committed, in order',
      );
      t.same(
        all.map((r) => r.id),
        [1, 2, 3, 4, 5, 6, 7],
        'consecutive ids: no entry looks deleted',
      );
      t.match(
        verifyAuditChain(all, [], () => true),
        { ok: true, entries: 7 },
      );
    });

    t.test('insertIssuedCertificate with audit entries: written together, or neither', async (t) => {
      const { store, again } = await engine.open(t);
      const entry = (n: number) => ({
        at: n,
        actor: 'ca',
        action: 'cert.issue',
        subject: 'alice',
        detail: { n },
      });
      await store.appendAudit(entry(1));
      // On the store itself (a transaction of its own), then inside one with an append before it.
      await store.insertIssuedCertificate(cert('0a', 'alice'), [entry(2), entry(3)]);
      await store.transaction(async (tx) => {
        await tx.appendAudit(entry(4));
        await tx.insertIssuedCertificate(cert('0b', 'bob'), [entry(5)]);
        await tx.appendAudit(entry(6));
      });
      // Refused (alice is active): no certificate and no entry, outside and inside a transaction.
      await rejectsWithCode(
        t,
        store.insertIssuedCertificate(cert('0c', 'alice'), [entry(-1)]),
        'already_active',
        'the one-active-per-name index, on the store',
      );
      await store.transaction(async (tx) => {
        await rejectsWithCode(
          t,
          tx.transaction((sp) => sp.insertIssuedCertificate(cert('0d', 'alice'), [entry(-2), entry(-3)])),
          'already_active',
          'in a savepoint',
        );
        await tx.appendAudit(entry(7));
      });
      // A secret-looking detail key refuses the whole call, the certificate included.
      await t.rejects(
        store.insertIssuedCertificate(cert('0e', 'carol'), [
          { at: 0, actor: 'x', action: 'y', detail: { privateKey: 'k' } },
        ]),
        /secret/,
      );
      t.equal(await store.activeCertificate('carol'), undefined, 'nothing written');
      await (await again()).insertIssuedCertificate(cert('0f', 'dave'), [entry(8)]);
      t.same(
        (await store.listCertificates()).map((c) => c.serialHex),
        ['0a', '0b', '0f'],
      );
      const all = await store.listAudit();
      t.same(
        all.map((r) => r.detail.n),
        [1, 2, 3, 4, 5, 6, 7, 8],
        'the entries in call order',
      );
      t.match(
        verifyAuditChain(all, [], () => true),
        { ok: true, entries: 8 },
      );
    });

    t.test(
      'audit log inside a batch: a caller rolled back leaves no entry and no break in the chain',
      async (t) => {
        const { store, again } = await engine.open(t);
        const first = await store.appendAudit({ at: 1, actor: 'kdc', action: 'start' });
        const other = await again();
        const append = (tx: { appendAudit: AsyncStore['appendAudit'] }, i: number) =>
          tx.appendAudit({
            at: 10 + i,
            actor: 'alice',
            action: 'key.create',
            subject: `k${i}`,
            detail: { i },
          });
        const results = await Promise.allSettled([
          store.batch(async (tx) => append(tx, 1)),
          store.batch(async (tx) => {
            // Two entries, then a failure: both are rolled back with the caller's savepoint.
            await append(tx, 2);
            await append(tx, 3);
            throw new PolicyError('quota_exceeded', 'refused after its audit rows');
          }),
          store.batch(async (tx) => append(tx, 4)),
          // An entry from another handle between batches, and one inside a plain transaction.
          other.appendAudit({ at: 20, actor: 'cli', action: 'cert.revoke' }),
          store.transaction(async (tx) => append(tx, 5)),
        ]);
        t.same(
          results.map((r) => r.status),
          ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'],
        );
        const all = await store.listAudit();
        t.same(all.map((r) => r.subject ?? '').sort(), ['', '', 'k1', 'k4', 'k5']);
        t.equal(all[0]!.id, first);
        let prev = GENESIS_HASH;
        let linked = 0;
        for (const r of all) {
          if (r.prevHash === prev && r.hash === auditEntryHash(prev, r)) linked += 1;
          prev = r.hash ?? '';
        }
        t.equal(linked, all.length, 'every entry links to the one before it and hashes its own content');
        const ids = all.map((r) => r.id);
        t.same(
          ids,
          [...ids].sort((a, b) => a - b),
          'ids in chain order',
        );
        t.equal(new Set(ids).size, ids.length, 'no id given twice');
      },
    );

    t.test(
      'transactions: commit, roll back, savepoints, errors unchanged, store calls outside',
      async (t) => {
        const { store } = await engine.open(t);
        const v = await store.transaction(async (tx) => {
          await tx.setSetting('a', 1);
          return 'done';
        });
        t.equal(v, 'done');
        const boom = new Error('boom');
        let outside: Promise<void> | undefined;
        await t.rejects(
          store.transaction(async (tx) => {
            await tx.setSetting('a', 2);
            await tx.insertIssuedCertificate(cert('0a'));
            // A call on the store itself is not part of the transaction: it survives the rollback.
            outside = store.setSetting('outside', true);
            throw boom;
          }),
          boom,
          'the error fn threw, unchanged',
        );
        await outside;
        t.equal(await store.getSetting('a'), 1, 'rolled back');
        t.equal(await store.countCertificates(), 0, 'rolled back');
        t.equal(await store.getSetting('outside'), true);

        await store.transaction(async (tx) => {
          await tx.setSetting('b', 1);
          await t.rejects(
            tx.transaction(async (inner) => {
              await inner.setSetting('b', 2);
              await inner.insertIssuedCertificate(cert('0a'));
              await inner.insertIssuedCertificate(cert('0b'));
            }),
            { code: 'already_active' },
          );
          t.equal(await tx.getSetting('b'), 1, 'the savepoint rolled back its own writes only');
          t.equal(await tx.countCertificates(), 0);
          await tx.transaction(async (inner) => inner.setSetting('c', 3));
        });
        t.equal(await store.getSetting('b'), 1);
        t.equal(await store.getSetting('c'), 3);

        let leaked: Parameters<Parameters<AsyncStore['transaction']>[0]>[0] | undefined;
        await store.transaction(async (tx) => {
          leaked = tx;
          return Promise.resolve();
        });
        await rejectsWithCode(
          t,
          leaked!.setSetting('late', 1),
          'internal',
          'a transaction used after it ended',
        );
      },
    );

    t.test('transactions hold the write lock: concurrent read-modify-writes all apply', async (t) => {
      const { store, again } = await engine.open(t);
      const other = await again();
      await store.setSetting('n', 0);
      const bump = (s: AsyncStore) =>
        s.transaction(async (tx) => {
          const n = (await tx.getSetting('n')) as number;
          await new Promise((r) => setImmediate(r));
          await tx.setSetting('n', n + 1);
        });
      await Promise.all(Array.from({ length: 12 }, (_, i) => bump(i % 2 === 0 ? store : other)));
      t.equal(await store.getSetting('n'), 12);
    });

    t.test('batch: each caller in its own savepoint, settled once committed', async (t) => {
      const { store } = await engine.open(t);
      const results = await Promise.allSettled([
        store.batch(async (tx) => {
          await tx.insertIssuedCertificate(cert('01', 'a'));
          return 1;
        }),
        store.batch(async (tx) => {
          await tx.insertIssuedCertificate(cert('02', 'b'));
          await tx.insertIssuedCertificate(cert('03', 'b'));
          return 2;
        }),
        store.batch(async (tx) => {
          await tx.insertIssuedCertificate(cert('04', 'c'));
          return 3;
        }),
      ]);
      t.match(results, [
        { status: 'fulfilled', value: 1 },
        { status: 'rejected', reason: { code: 'already_active' } },
        { status: 'fulfilled', value: 3 },
      ]);
      t.same(
        (await store.listCertificates()).map((c) => c.serialHex),
        ['01', '04'],
      );
    });

    t.test('the newest keys of a party (key.list): the tail of the whole listing', async (t) => {
      const { store } = await engine.open(t);
      const keys: [number, Partial<NewSymKey>][] = [
        [1, { owner: 'alice', peer: 'bob', createdAt: 100 }],
        [2, { owner: 'bob', peer: 'alice', createdAt: 200 }],
        [3, { owner: 'alice', peer: 'carol', createdAt: 200 }],
        [4, { owner: 'carol', peer: 'dave', createdAt: 300 }],
        [
          5,
          { owner: 'alice', peer: 'bob', createdAt: 400, state: 'reserved', digest: null, wrappedKey: null },
        ],
        [6, { owner: 'alice', peer: 'bob', createdAt: 50 }],
      ];
      for (const [n, over] of keys) await store.insertSymKey(symKey(serial32(n), over));
      const serials = (ks: { serial: string }[]): number[] => ks.map((k) => parseInt(k.serial, 16));
      t.same(serials(await store.listSymKeys({ party: 'alice' })), [6, 1, 2, 3], 'the whole listing');
      for (let n = 0; n <= 5; n++) {
        t.same(
          serials(await store.listSymKeys({ party: 'alice', newest: n })),
          [6, 1, 2, 3].slice(Math.max(0, 4 - n)),
          `newest ${n}: the last ${n}, oldest first (created, then inserted: 2 before 3)`,
        );
      }
      t.same(
        serials(await store.listSymKeys({ party: 'alice', newest: 3, includeReserved: true })),
        [2, 3, 5],
      );
      t.same(
        serials(await store.listSymKeys({ party: 'alice', newest: 9, states: ['active'] })),
        [6, 1, 2, 3],
      );
      t.same(serials(await store.listSymKeys({ party: 'dave', newest: 9 })), [4], 'as peer only');
      t.same(serials(await store.listSymKeys({ newest: 2 })), [3, 4], 'no party: the whole table');
      t.same(serials(await store.listSymKeys({ newest: 9, states: ['reserved'], includeReserved: true })), [
        5,
      ]);
    });

    t.test('symmetric keys: reserve, activate, state changes, listings, expiry, quotas', async (t) => {
      const { store } = await engine.open(t);
      await store.insertSymKey(symKey(serial32(1)));
      await store.insertSymKey(
        symKey(serial32(2), {
          mode: 'e2e',
          state: 'reserved',
          digest: null,
          wrappedKey: null,
          kekVersion: null,
          prekeyId: 'p1',
          prekeyPublic: Buffer.alloc(32, 9),
          createdAt: 10_000,
        }),
      );
      await store.insertSymKey(
        symKey(serial32(3), { owner: 'carol', peer: 'alice', createdAt: 20_000, expiresAt: 30_000 }),
      );
      await rejectsWithCode(t, store.insertSymKey(symKey(serial32(1))), 'store_error', 'serial taken');
      const dep = {
        ephemeral: Buffer.from('e'),
        senderSignature: Buffer.from('s'),
        ciphertext: Buffer.from('c'),
        digest: Buffer.alloc(32, 2),
      };
      t.equal(await store.activateSymKey(serial32(2), dep), true);
      t.equal(await store.activateSymKey(serial32(2), dep), false, 'only a reservation');
      const k2 = await store.getSymKey(serial32(2));
      t.match(k2, { state: 'active', mode: 'e2e', prekeyId: 'p1', peerVerifiedAt: null });
      t.ok(k2!.ciphertext!.equals(Buffer.from('c')));
      t.ok(k2!.prekeyPublic!.equals(Buffer.alloc(32, 9)));
      t.ok((await store.getSymKey(serial32(1)))!.wrappedKey!.equals(Buffer.from('wrapped')));

      t.equal(
        await store.setSymKeyState(serial32(1), ['active'], 'revoked', { at: 11, reason: 'r', by: 'alice' }),
        true,
      );
      t.equal(await store.setSymKeyState(serial32(1), ['active'], 'revoked', { at: 12 }), false, 'once');
      t.equal(await store.setSymKeyState(serial32(1), [], 'revoked', { at: 12 }), false);
      t.match(await store.getSymKey(serial32(1)), {
        state: 'revoked',
        stateChangedAt: 11,
        revokedReason: 'r',
        revokedBy: 'alice',
      });
      await store.markSymKeyPeerVerified(serial32(2), 50);
      await store.markSymKeyPeerVerified(serial32(2), 60);
      t.equal((await store.getSymKey(serial32(2)))!.peerVerifiedAt, 50, 'the first verification stays');

      await store.insertSymKey(
        symKey(serial32(4), {
          state: 'reserved',
          mode: 'e2e',
          digest: null,
          wrappedKey: null,
          kekVersion: null,
          createdAt: 5,
        }),
      );
      t.same(
        (await store.listSymKeys()).map((k) => k.serial),
        [serial32(1), serial32(2), serial32(3)],
        'reservations hidden, by creation then insertion',
      );
      t.same(
        (await store.listSymKeys({ includeReserved: true })).map((k) => k.serial),
        [serial32(4), serial32(1), serial32(2), serial32(3)],
      );
      t.same(
        (await store.listSymKeys({ party: 'carol' })).map((k) => k.serial),
        [serial32(3)],
      );
      t.same(
        (await store.listSymKeys({ party: 'alice', states: ['active'] })).map((k) => k.serial),
        [serial32(2), serial32(3)],
      );
      t.equal(await store.countActiveKeys('alice', 'bob', 10_001), 1);
      t.equal(await store.countOpenReservations('alice', 'bob', 0), 1);
      t.equal(await store.countOpenReservations('alice', 'bob', 6), 0);
      t.same(
        (await store.expireSymKeys(30_000)).map((k) => k.serial),
        [serial32(3)],
      );
      t.equal((await store.getSymKey(serial32(3)))!.state, 'expired');
      t.same(await store.countSymKeysByState(), { revoked: 1, active: 1, expired: 1, reserved: 1 });
      t.equal(await store.deleteStaleReservations(6), 1);
      t.equal(await store.getSymKey(serial32(4)), undefined);
    });

    t.test('expired keys are deleted in batches, by expiry only, never reservations', async (t) => {
      const { store } = await engine.open(t);
      // Five keys that expired at 1,000..5,000 in every state but reserved, one live, one reservation.
      const states = ['active', 'revoked', 'expired', 'superseded', 'active'] as const;
      for (const [i, state] of states.entries()) {
        await store.insertSymKey(symKey(serial32(10 + i), { createdAt: 0, expiresAt: (i + 1) * 1_000 }));
        if (state !== 'active') await store.setSymKeyState(serial32(10 + i), ['active'], state, { at: 1 });
      }
      await store.insertSymKey(symKey(serial32(20), { createdAt: 0, expiresAt: 100_000 }));
      await store.insertSymKey(
        symKey(serial32(21), {
          state: 'reserved',
          digest: null,
          wrappedKey: null,
          kekVersion: null,
          createdAt: 0,
          expiresAt: 1,
        }),
      );
      t.equal(await store.deleteExpiredSymKeys(1_000, 10), 0, 'expiry is exclusive: nothing before 1,000');
      t.equal(await store.deleteExpiredSymKeys(4_500, 3), 3, 'at most the limit');
      t.equal(await store.deleteExpiredSymKeys(4_500, 3), 1, 'the rest of those expired before 4,500');
      const left = (await store.listSymKeys({ includeReserved: true })).map((k) => k.serial).sort();
      t.same(
        left,
        [serial32(14), serial32(20), serial32(21)],
        'the later, the live key and the reservation stay',
      );
      t.equal(
        await store.deleteExpiredSymKeys(Number.MAX_SAFE_INTEGER, 100),
        2,
        'every key but the reservation',
      );
      t.ok(await store.getSymKey(serial32(21)), 'reservations have their own sweep');
    });

    t.test('prekeys: stock, claims (also concurrent), last resort, cleanup', async (t) => {
      const { store, again } = await engine.open(t);
      await store.insertPrekeys('bob', 'c1', ['a', 'b', 'c', 'd', 'e', 'f'].map(prekey), 100);
      await rejectsWithCode(
        t,
        store.insertPrekeys('bob', 'c1', [prekey('g'), prekey('a')], 101),
        'store_error',
        'duplicate id',
      );
      t.equal(await store.countPrekeys('bob', 'c1'), 6, 'all or nothing');
      const first = await store.claimPrekey('bob', 'c1');
      t.match(first, { owner: 'bob', certSerial: 'c1', prekeyId: 'a', createdAt: 100 });
      t.ok(first!.publicKey.equals(Buffer.alloc(32, 'a'.charCodeAt(0))));
      const other = await again();
      const claims = await Promise.all([
        store.claimPrekey('bob', 'c1'),
        other.claimPrekey('bob', 'c1'),
        store.claimPrekey('bob', 'c1'),
        other.claimPrekey('bob', 'c1'),
      ]);
      const ids = claims.map((c) => c?.prekeyId);
      t.equal(new Set(ids).size, 4, 'four distinct prekeys for four concurrent claims');
      t.notOk(ids.includes(undefined));
      t.equal(await store.countPrekeys('bob', 'c1'), 1);

      await store.putLastResortPrekey('bob', 'c1', prekey('L'), 100);
      await store.putLastResortPrekey('bob', 'c1', prekey('M'), 101);
      t.match(await store.getLastResortPrekey('bob', 'c1'), { prekeyId: 'M', createdAt: 101 });
      t.equal(await store.getLastResortPrekey('bob', 'c0'), undefined);
      await store.insertPrekeys('bob', 'c2', [prekey('x')], 102);
      t.equal(await store.deletePrekeys('bob', 'c2'), 1, 'the older certificate prekeys');
      t.equal(await store.getLastResortPrekey('bob', 'c1'), undefined, 'and its last-resort prekey');
      t.equal(await store.countPrekeys('bob', 'c2'), 1);
      t.equal(await store.deletePrekeys('bob'), 1);
      t.equal(await store.claimPrekey('bob', 'c2'), undefined);
    });

    t.test(
      'deliveries: queued in order, counted per sender, acknowledged by the recipient only',
      async (t) => {
        const { store } = await engine.open(t);
        const d1 = await store.enqueueDelivery({
          recipient: 'bob',
          kind: 'key.delivered',
          keySerial: serial32(1),
          sender: 'alice',
          createdAt: 1,
        });
        const d2 = await store.enqueueDelivery({
          recipient: 'bob',
          kind: 'msg',
          keySerial: serial32(1),
          payload: Buffer.from('hi'),
          sender: 'alice',
          createdAt: 2,
        });
        const d3 = await store.enqueueDelivery({
          recipient: 'bob',
          kind: 'key.revoked',
          keySerial: serial32(1),
          createdAt: 3,
        });
        const d4 = await store.enqueueDelivery({
          recipient: 'carol',
          kind: 'msg',
          keySerial: serial32(2),
          payload: Buffer.from('yo'),
          sender: 'alice',
          createdAt: 4,
        });
        t.ok(d1 < d2 && d2 < d3 && d3 < d4);
        const list = await store.listDeliveries('bob');
        t.same(
          list.map((d) => d.id),
          [d1, d2, d3],
        );
        t.match(list[0], {
          recipient: 'bob',
          kind: 'key.delivered',
          keySerial: serial32(1),
          payload: null,
          sender: 'alice',
          createdAt: 1,
        });
        t.ok(list[1]!.payload!.equals(Buffer.from('hi')));
        t.equal(list[2]!.sender, null);
        t.same(await store.getDelivery('bob', d2), list[1], 'one delivery by id, as listed');
        t.equal(await store.getDelivery('carol', d2), undefined, 'only the recipient own');
        t.equal(await store.getDelivery('bob', d4 + 1000), undefined, 'no such id');
        t.same(
          (await store.listDeliveries('bob', 2)).map((d) => d.id),
          [d1, d2],
        );
        t.same(
          (await store.listDeliveries('bob', 2, true)).map((d) => d.id),
          [d1, d3],
          'key notices only: the message in between is left out, not counted against the limit',
        );
        t.equal(await store.countDeliveries('bob'), 3);
        t.equal(await store.countDeliveries('bob', true), 2, 'key notices only');
        t.equal(await store.countQueuedFrom('bob', 'alice', 'msg'), 1);
        t.equal(await store.countQueuedFrom('bob', 'alice', 'key'), 1);
        t.equal(await store.deleteQueueOf('nobody'), 0, "a recipient's whole queue: none here");
        t.equal(await store.deleteQueuedKeyNotices('bob', serial32(1)), 2, 'key notices, not the message');
        t.equal(await store.deleteDeliveries('bob', [d4]), 0, 'one id: only the recipient own');
        t.equal(await store.deleteDeliveries('bob', [d2, d4]), 1, 'only the recipient own');
        t.equal(await store.deleteDeliveries('bob', []), 0);
        t.equal(await store.countDeliveries('bob'), 0);
        t.equal(await store.countDeliveries(), 1);
        t.equal(await store.countPendingDeliveries(), 1);
        t.equal(await store.deleteDeliveries('carol', [d4]), 1, 'one id');
        t.equal(await store.deleteDeliveries('carol', [d4]), 0, 'once');
        t.equal(await store.countPendingDeliveries(), 0);
        for (const n of [1, 2, 3]) {
          await store.enqueueDelivery({
            recipient: 'dave',
            kind: 'msg',
            keySerial: serial32(n),
            createdAt: n,
          });
        }
        await store.enqueueDelivery({
          recipient: 'erin',
          kind: 'key.revoked',
          keySerial: serial32(1),
          createdAt: 4,
        });
        t.equal(await store.deleteQueueOf('dave'), 3, "a recipient's whole queue");
        t.equal(await store.countDeliveries('erin'), 1, "and only that recipient's");
        t.equal(await store.countPendingDeliveries(), 1);
      },
    );

    t.test('heldPrekeyIds: stock, open reservations, queued e2e deliveries, last resort', async (t) => {
      const { store } = await engine.open(t);
      await store.insertPrekeys('bob', 'c1', [prekey('s1')], 1);
      await store.insertPrekeys('bob', 'c0', [prekey('old')], 1);
      await store.insertSymKey(
        symKey(serial32(1), {
          mode: 'e2e',
          state: 'reserved',
          peer: 'bob',
          digest: null,
          wrappedKey: null,
          kekVersion: null,
          prekeyId: 'r1',
          createdAt: 500,
        }),
      );
      await store.insertSymKey(
        symKey(serial32(2), {
          mode: 'e2e',
          state: 'reserved',
          peer: 'bob',
          digest: null,
          wrappedKey: null,
          kekVersion: null,
          prekeyId: 'r0',
          createdAt: 5,
        }),
      );
      await store.insertSymKey(symKey(serial32(3), { mode: 'e2e', peer: 'bob', prekeyId: 'q1' }));
      await store.enqueueDelivery({
        recipient: 'bob',
        kind: 'key.delivered',
        keySerial: serial32(3),
        createdAt: 1,
      });
      await store.putLastResortPrekey('bob', 'c1', prekey('lr'), 1);
      t.same((await store.heldPrekeyIds('bob', 'c1', 100, 10)).sort(), ['lr', 'q1', 'r1', 's1']);
      t.equal((await store.heldPrekeyIds('bob', 'c1', 100, 2)).length, 2);
    });

    t.test('notifications: delivered to every handle after COMMIT, never for what rolled back', async (t) => {
      const { store, again } = await engine.open(t);
      const other = await again();
      const heard: string[] = [];
      const waiters: (() => void)[] = [];
      const unlisten = await other.listen('revoked', {
        onNotify: (p) => {
          heard.push(p);
          for (const w of waiters.splice(0)) w();
        },
      });
      const until = async (payload: string): Promise<void> => {
        const deadline = Date.now() + 5_000;
        while (!heard.includes(payload) && Date.now() < deadline) {
          await new Promise<void>((resolve) => {
            waiters.push(resolve);
            setTimeout(resolve, 100);
          });
        }
      };
      await t.rejects(
        store.transaction(async (tx) => {
          await tx.notify('revoked', 'rolled-back');
          throw new Error('no');
        }),
      );
      await store.transaction(async (tx) => {
        await tx.notify('revoked', 'one');
        await t.rejects(
          tx.transaction(async (inner) => {
            await inner.notify('revoked', 'savepoint-rolled-back');
            throw new Error('no');
          }),
        );
        t.same(heard, [], 'nothing before COMMIT');
        await tx.notify('revoked', 'two');
      });
      // The group commit's shape: sibling savepoints, the first released, the second rolled back.
      await store.transaction(async (tx) => {
        await tx.transaction((sp) => sp.notify('revoked', 'sibling-released'));
        await t.rejects(
          tx.transaction(async (sp) => {
            await sp.notify('revoked', 'sibling-rolled-back');
            throw new Error('no');
          }),
        );
      });
      await Promise.allSettled([
        store.batch((tx) => tx.notify('revoked', 'batch-ok')),
        store.batch(async (tx) => {
          await tx.notify('revoked', 'batch-failed');
          throw new Error('no');
        }),
      ]);
      await store.transaction((tx) => tx.notify('revoked', 'marker'));
      await until('marker');
      t.same(
        heard,
        ['one', 'two', 'sibling-released', 'batch-ok', 'marker'],
        'committed ones, in commit order',
      );

      await unlisten();
      await store.transaction((tx) => tx.notify('revoked', 'after-unlisten'));
      const probe: string[] = [];
      await other.listen('revoked', { onNotify: (p) => probe.push(p) });
      await store.transaction((tx) => tx.notify('revoked', 'probe'));
      const deadline = Date.now() + 5_000;
      while (!probe.includes('probe') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      t.same(probe, ['probe']);
      t.notOk(heard.includes('after-unlisten'), 'an unlistened listener hears nothing');

      await rejectsWithCode(
        t,
        store.listen('Bad-Name', { onNotify: () => undefined }),
        'bad_request',
        'channel name',
      );
      await rejectsWithCode(
        t,
        store.transaction((tx) => tx.notify('revoked', 'x'.repeat(8_000))),
        'bad_request',
        'payload too large',
      );
    });

    t.test("databaseTime: the database server's clock on PostgreSQL, none on SQLite", async (t) => {
      const { store } = await engine.open(t);
      const before = Date.now();
      const at = await store.databaseTime();
      const after = Date.now();
      if (store.engine === 'sqlite') {
        t.equal(at, undefined, "a file on this machine: no clock but the process's");
        return;
      }
      // The test database runs on this machine: its clock is this one.
      t.ok(at! >= before - 1_000 && at! <= after + 1_000, `${at} within [${before}, ${after}] +- 1 s`);
    });

    t.test("expireSymKeys: on PostgreSQL never ahead of the database's clock", async (t) => {
      const { store } = await engine.open(t);
      const now = Date.now();
      await store.insertSymKey(symKey(serial32(1), { createdAt: now, expiresAt: now + 3_600_000 }));
      await store.insertSymKey(symKey(serial32(2), { createdAt: now - 7_200_000, expiresAt: now - 1 }));
      // A caller whose clock is two days ahead.
      const expired = (await store.expireSymKeys(now + 2 * DAY)).map((k) => k.serial);
      if (store.engine === 'sqlite') {
        // One machine, one clock: the caller's is the store's.
        t.same(expired, [serial32(1), serial32(2)]);
        return;
      }
      t.same(expired, [serial32(2)], 'only what the database clock says has expired');
      t.equal((await store.getSymKey(serial32(1)))!.state, 'active');
    });

    t.test('changeCounter moves when another handle commits', async (t) => {
      const { store, again } = await engine.open(t);
      const other = await again();
      const c0 = await store.changeCounter();
      await other.setSetting('x', 1);
      const c1 = await store.changeCounter();
      t.not(c1, c0);
    });
  });
}
