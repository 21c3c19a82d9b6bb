// The caller's certificate re-checked inside the transaction of every write (server/kdc/caller-status.ts):
// the rule itself on a store, and the two writes outside the key service (admin.token, cert.revoke) on a
// live KDC whose revocation list has not caught up with a `kds cert revoke` run by another process.
import t from 'tap';
import { openSession } from '../../../client/session.js';
import { loadAdminCredentials } from '../../../client/admin.js';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { assertCallerCurrent } from '../../../server/kdc/caller-status.js';
import { SqliteStore } from '../../../server/store/sqlite-store.js';
import { asyncSqliteStore } from '../../../server/store/sqlite-async-store.js';
import { tempDir } from '../../helpers/tmp.js';
import { TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { issueTestClient, sessionFor, startTestKdc } from '../../helpers/kdc-in-process.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

t.setTimeout(120_000);

t.test('assertCallerCurrent: active and unexpired, at the second resolution of RFC 5280', async (t) => {
  const store = SqliteStore.open(tempDir(t));
  const asyncStore = asyncSqliteStore(store);
  t.teardown(() => asyncStore.close());
  const notAfter = 1_700_000_000_000;
  const insert = (serialHex: string, name: string) =>
    store.insertIssuedCertificate({
      serialHex,
      name,
      role: 'client',
      notBefore: notAfter - 86_400_000,
      notAfter,
      issuedAt: notAfter - 86_400_000,
      pem: 'x',
      fingerprint256: serialHex,
    });
  insert('0a', 'alice');
  insert('0b', 'bob');
  insert('0c', 'carol');
  await t.resolves(
    assertCallerCurrent(asyncStore, '0a', notAfter + 999),
    'the whole notAfter second is valid',
  );
  await t.rejects(assertCallerCurrent(asyncStore, '0a', notAfter + 1000), {
    code: 'cert_expired',
    message: 'certificate expired',
  });
  store.insertRevocation({ serialHex: '0b', revokedAt: notAfter - 1, reason: 'keyCompromise' });
  store.setCertificateStatus('0b', 'revoked');
  await t.rejects(assertCallerCurrent(asyncStore, '0b', notAfter - 10_000), {
    code: 'cert_revoked',
    message: 'certificate revoked',
  });
  store.setCertificateStatus('0c', 'superseded');
  await t.rejects(assertCallerCurrent(asyncStore, '0c', notAfter - 10_000), {
    code: 'cert_revoked',
    message: 'certificate superseded',
  });
  await t.rejects(assertCallerCurrent(asyncStore, '0d', notAfter - 10_000), { code: 'cert_unknown_issuer' });
});

/** `kds cert revoke` from a shell: its own CA object and store connection, not the KDC's. */
async function revokeOffline(dataDir: string, by: { serialHex: string } | { name: string }): Promise<void> {
  const offline = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  try {
    await offline.revoke(by, 'keyCompromise', 'test');
  } finally {
    await offline.close();
  }
}

t.test('admin.token and cert.revoke on a session whose certificate was just revoked elsewhere', async (t) => {
  const { kdc, dataDir } = await startTestKdc(t, { rateLimit: false });
  const bob = await issueTestClient(kdc.ca, 'bob');
  const admin = loadAdminCredentials(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  const adminSession = await openSession({
    server: kdc.url,
    mode: 'auth',
    credentials: { privateKey: admin.privateKey, certPem: admin.certPem },
    caCertPem: kdc.ca.caCertPem,
  });
  t.teardown(() => adminSession.close().catch(() => undefined));
  t.ok(await adminSession.request('admin.token', { name: 'dave' }), 'before: a token');
  const tokensBefore = sqliteOf(kdc.services.store).listEnrollmentTokens().length;
  await revokeOffline(dataDir, { serialHex: adminSession.facts.identity.serialHex });
  await t.rejects(adminSession.request('admin.token', { name: 'erin' }), { code: 'cert_revoked' });
  t.equal(sqliteOf(kdc.services.store).listEnrollmentTokens().length, tokensBefore, 'no token stored');
  await t.rejects(
    adminSession.request('cert.revoke', { serial: bob.cert.serialHex, reason: 'keyCompromise' }),
    { code: 'cert_revoked' },
  );
  t.equal(
    sqliteOf(kdc.services.store).getCertificate(bob.cert.serialHex)!.status,
    'active',
    'bob was not revoked',
  );

  // A client whose certificate another process revoked, revoking it itself: told so, then closed.
  const carol = await issueTestClient(kdc.ca, 'carol');
  const carolSession = await sessionFor(kdc, carol);
  await revokeOffline(dataDir, { name: 'carol' });
  await t.rejects(carolSession.request('cert.revoke', { reason: 'keyCompromise' }), { code: 'cert_revoked' });
  await t.rejects(carolSession.request('ping', {}), 'the session is closed after that reply');
});
