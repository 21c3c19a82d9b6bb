// server/ca/issue.ts on PostgreSQL, two CA handles (two nodes) on one store: races for a name or a
// token issue one certificate (the same request on both nodes: the second answer replays the first's), the loser leaves no row, no audit entry and (for a name race) an unspent
// token; the audit chain stays one unbroken sequence; an enrollment holds the write lock for three
// round trips (the token, the certificate with its audit entries in one statement, COMMIT).
import t from 'tap';
import pg from 'pg';
import { generateRsaKeyPair } from '../../../shared/crypto/rsa.js';
import { pooledKeyPair } from '../../helpers/template.js';
import { createCsr } from '../../../shared/pki/csr.js';
import { verifyAuditChain } from '../../../shared/audit/chain.js';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { initCa } from '../../../server/ca/init.js';
import { hashToken } from '../../../server/ca/tokens.js';
import { tempDir } from '../../helpers/tmp.js';
import { pgTestSchema } from '../../helpers/pg.js';
import { PASSPHRASE } from './fixture.js';

const handles: CertificateAuthority[] = [];
const { url } = pgTestSchema(t, async () => {
  for (const h of handles) await h.close();
});
const dirs = [tempDir(t), tempDir(t)];
await initCa({ dataDir: dirs[0]!, caKeyBits: 2048, passphrase: PASSPHRASE, storeUrl: url });
const node1 = await CertificateAuthority.open(dirs[0]!, { passphrase: PASSPHRASE, storeUrl: url });
handles.push(node1);
// A second node: its own data directory, the CA material from the store.
const node2 = await CertificateAuthority.open(dirs[1]!, { passphrase: PASSPHRASE, storeUrl: url });
handles.push(node2);
// The run's pooled leaf key (slot 17, test/helpers/template.ts): RSA keygen is slow.
const pair = await pooledKeyPair(17);

t.test('two nodes, one name, two tokens: one certificate, the loser spends nothing', async (t) => {
  const a = await node1.createEnrollmentToken({ name: 'racer', actor: 'test' });
  const b = await node2.createEnrollmentToken({ name: 'racer', actor: 'test' });
  const csr = await createCsr('racer', pair.privateKeyPem, pair.publicKeyPem);
  const auditBefore = await node1.store.countAudit();
  const results = await Promise.allSettled([
    node1.enroll({ token: a.token, csrPem: csr }),
    node2.enroll({ token: b.token, csrPem: csr }),
  ]);
  t.same(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  const lost = results.findIndex((r) => r.status === 'rejected');
  t.equal(((results[lost] as PromiseRejectedResult).reason as { code: string }).code, 'already_active');
  t.equal((await node1.store.listCertificates({ name: 'racer' })).length, 1, 'one row for the name');
  const loserToken = await node1.store.getEnrollmentToken(hashToken([a, b][lost]!.token));
  t.equal(loserToken?.usedAt, null, "the loser's token is not spent");
  const actions = (await node1.store.listAudit({ afterId: 0 })).slice(auditBefore).map((e) => e.action);
  t.same(actions, ['token.consume', 'cert.issue'], "the winner's two entries only");
});

t.test('two nodes, one token, one CSR: one certificate, the other answer a replay of it', async (t) => {
  const { token } = await node1.createEnrollmentToken({ name: 'twice', actor: 'test' });
  const csr = await createCsr('twice', pair.privateKeyPem, pair.publicKeyPem);
  const results = await Promise.all([
    node1.enroll({ token, csrPem: csr }),
    node2.enroll({ token, csrPem: csr }),
  ]);
  t.equal(results[0].cert.serialHex, results[1].cert.serialHex, 'the same certificate');
  t.equal(results.filter((r) => r.replayed === true).length, 1, 'one issued, one replayed');
  t.equal((await node1.store.listCertificates({ name: 'twice' })).length, 1);
});

t.test('two nodes, one token, two keys: one certificate', async (t) => {
  const { token } = await node1.createEnrollmentToken({ name: 'thrice', actor: 'test' });
  const otherPair = await generateRsaKeyPair(2048);
  const results = await Promise.allSettled([
    node1.enroll({ token, csrPem: await createCsr('thrice', pair.privateKeyPem, pair.publicKeyPem) }),
    node2.enroll({
      token,
      csrPem: await createCsr('thrice', otherPair.privateKeyPem, otherPair.publicKeyPem),
    }),
  ]);
  t.same(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  t.match((refused.reason as { code: string }).code, /^(token_invalid|already_active)$/);
  t.equal((await node1.store.listCertificates({ name: 'thrice' })).length, 1);
});

t.test('enrollments spread over both nodes: unique serials, one unbroken audit chain', async (t) => {
  const names = Array.from({ length: 24 }, (_, i) => `burst-${i}`);
  const tokens: string[] = [];
  for (const name of names) tokens.push((await node1.createEnrollmentToken({ name, actor: 'test' })).token);
  const csrs = await Promise.all(names.map((n) => createCsr(n, pair.privateKeyPem, pair.publicKeyPem)));
  const issued = await Promise.all(
    names.map((_, i) => (i % 2 === 0 ? node1 : node2).enroll({ token: tokens[i]!, csrPem: csrs[i]! })),
  );
  t.equal(new Set(issued.map((r) => r.cert.serialHex)).size, names.length, 'unique serials');
  const entries = await node1.store.listAudit();
  t.same(
    entries.map((e) => e.id),
    entries.map((_, i) => i + 1),
    'consecutive ids',
  );
  t.match(
    verifyAuditChain(entries, [], () => true),
    { ok: true },
  );
});

t.test('an enrollment holds the write lock for three round trips', async (t) => {
  const { token } = await node1.createEnrollmentToken({ name: 'counted', actor: 'test' });
  const csr = await createCsr('counted', pair.privateKeyPem, pair.publicKeyPem);
  const sent: string[] = [];
  const original = pg.Client.prototype.query;
  // Every statement this process sends while the enrollment runs (no other work is running).
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const q = args[0] as string | { text: string };
    sent.push(typeof q === 'string' ? q : q.text);
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  try {
    await node1.enroll({ token, csrPem: csr });
  } finally {
    pg.Client.prototype.query = original;
  }
  const begin = sent.findIndex((s) => s.includes('pg_advisory_xact_lock'));
  t.ok(begin >= 0, 'the write lock was taken');
  const underLock = sent.slice(begin + 1);
  t.equal(underLock.length, 3, underLock.map((s) => s.replace(/\s+/g, ' ').slice(0, 60)).join(' | '));
  t.match(underLock[0], /^UPDATE enrollment_tokens/);
  t.match(underLock[1], /INSERT INTO certificates[\s\S]*INSERT INTO audit_log/);
  t.equal(underLock[2], 'COMMIT');
});
