// server/ca/issue.ts: one store transaction per issuance, shared by concurrent issuances (group commit),
// and nothing reported before it is committed; a certificate that fails its self-check, or loses a race
// for its name or token, leaves no row behind and does not spend the token.
import t from 'tap';
import { generateRsaKeyPair } from '../../../shared/crypto/rsa.js';
import { pooledKeyPair } from '../../helpers/template.js';
import { createCsr } from '../../../shared/pki/csr.js';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { issueCertificate } from '../../../server/ca/issue.js';
import { openStore } from '../../../server/store/store.js';
import type { SqliteStore } from '../../../server/store/sqlite-store.js';
import { freshCa, PASSPHRASE } from './fixture.js';
import { certificateSigner } from '../../../shared/crypto/signer.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

const { dir } = await freshCa(t);
const ca = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
t.teardown(() => ca.close());
// A second connection to the same database: it sees only what was committed.
const other = openStore(dir);
t.teardown(() => other.close());
// The run's pooled leaf key (slot 17, test/helpers/template.ts): RSA keygen is slow.
const pair = await pooledKeyPair(17);

/** Count the store's commits (a group commit's callers are savepoints of one of them). */
function countCommits(store: SqliteStore): { count: () => number; restore: () => void } {
  const original = store.commit.bind(store);
  let commits = 0;
  store.commit = (): void => {
    commits++;
    original();
  };
  return { count: () => commits, restore: () => void (store.commit = original) };
}

t.test('32 concurrent enrollments share commits, and each is durable when it resolves', async (t) => {
  const names = Array.from({ length: 32 }, (_, i) => `burst-${i}`);
  const tokens: string[] = [];
  for (const name of names) tokens.push((await ca.createEnrollmentToken({ name, actor: 'test' })).token);
  const csrs = await Promise.all(names.map((n) => createCsr(n, pair.privateKeyPem, pair.publicKeyPem)));
  const commits = countCommits(sqliteOf(ca.store));
  t.teardown(commits.restore);
  const seenCommitted: boolean[] = [];
  await Promise.all(
    names.map(async (name, i) => {
      const issued = await ca.enroll({ token: tokens[i]!, csrPem: csrs[i]!, actor: name });
      // At the moment the caller learns of it, another connection already reads it as active.
      const row = other.getCertificate(issued.cert.serialHex);
      seenCommitted[i] = row?.status === 'active' && row.pem === issued.cert.pem;
    }),
  );
  commits.restore();
  t.equal(
    seenCommitted.filter(Boolean).length,
    32,
    'every certificate committed before its promise resolved',
  );
  t.ok(commits.count() < 32, `one commit per batch, not per certificate (${commits.count()} for 32)`);
  for (const name of names) t.equal(other.activeCertificate(name)?.status, 'active');
  t.equal(
    other.listEnrollmentTokens().filter((r) => names.includes(r.name) && r.usedAt !== null).length,
    32,
    'every token spent',
  );
});

t.test('a failure in a batch rolls back only its own issuance', async (t) => {
  const good = ['mix-a', 'mix-b', 'mix-c'];
  const tokens: string[] = [];
  for (const name of good) tokens.push((await ca.createEnrollmentToken({ name, actor: 'test' })).token);
  const csrs = await Promise.all(good.map((n) => createCsr(n, pair.privateKeyPem, pair.publicKeyPem)));
  // mix-b twice with the same token and two keys: one wins, the other is refused in the shared
  // transaction (the same key twice would be a replay, answered with the winner's certificate).
  const otherPair = await generateRsaKeyPair(2048);
  const otherCsr = await createCsr('mix-b', otherPair.privateKeyPem, otherPair.publicKeyPem);
  const results = await Promise.allSettled([
    ca.enroll({ token: tokens[0]!, csrPem: csrs[0]!, actor: 't' }),
    ca.enroll({ token: tokens[1]!, csrPem: csrs[1]!, actor: 't' }),
    ca.enroll({ token: tokens[1]!, csrPem: otherCsr, actor: 't' }),
    ca.enroll({ token: tokens[2]!, csrPem: csrs[2]!, actor: 't' }),
  ]);
  t.equal(results[0]!.status, 'fulfilled', 'mix-a issued');
  t.equal(results[3]!.status, 'fulfilled', 'mix-c issued');
  t.same([results[1]!.status, results[2]!.status].sort(), ['fulfilled', 'rejected'], 'one mix-b issued');
  const refused = (results[1]!.status === 'rejected' ? results[1] : results[2]) as PromiseRejectedResult;
  t.ok(
    ['token_invalid', 'already_active'].includes((refused.reason as { code: string }).code),
    `the loser is refused with a code (${(refused.reason as { code: string }).code})`,
  );
  t.equal(other.listCertificates({ name: 'mix-b' }).length, 1, 'the loser left no row');
});

t.test('a certificate that fails its self-check leaves nothing and spends nothing', async (t) => {
  const before = other.countCertificates();
  let spent = false;
  const wrong = await generateRsaKeyPair(2048);
  await t.rejects(
    issueCertificate(
      {
        store: ca.store,
        caCert: ca.caCert,
        sign: certificateSigner(wrong.privateKeyPem), // not the CA's key
        settings: ca.settings,
        crlUrl: ca.crlUrl,
        now: Date.now(),
      },
      {
        name: 'selfcheck',
        role: 'client',
        profile: 'client',
        subjectCN: 'selfcheck',
        publicKeyPem: pair.publicKeyPem,
        actor: 'test',
        beforeReserve: async () => {
          spent = true;
        },
      },
    ),
    { code: 'internal' },
  );
  t.notOk(spent, 'the token step never ran');
  t.equal(other.countCertificates(), before, 'no row, not even a pending one');
});

t.test('the name is re-checked in the transaction: a race for one name issues one certificate', async (t) => {
  const csr = await createCsr('racer', pair.privateKeyPem, pair.publicKeyPem);
  const results = await Promise.allSettled([
    ca.issueFromCsr(csr, { name: 'racer', actor: 't' }),
    ca.issueFromCsr(csr, { name: 'racer', actor: 't' }),
  ]);
  t.same(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  t.equal((refused.reason as { code: string }).code, 'already_active');
  t.equal(other.listCertificates({ name: 'racer' }).length, 1, 'one row for the name');
  // Renewal supersedes in the same transaction.
  const renewed = await ca.issue(csr, { name: 'racer', renew: true, actor: 't' });
  t.ok(renewed.supersededSerialHex);
  t.equal(other.getCertificate(renewed.supersededSerialHex!)?.status, 'superseded');
  t.equal(other.activeCertificate('racer')?.serialHex, renewed.cert.serialHex);
});
