// Authenticated sessions against an in-process KDC: what `ready` says, the certificate checks of every
// handshake (expired, revoked, unknown issuer, not the store's certificate, wrong server name), role
// checks on requests, request-level errors that keep the session open, and cert.status.
import t from 'tap';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSession } from '../../../client/session.js';
import { openAdminSession } from '../../../client/admin.js';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { encryptPrivateKey } from '../../../server/ca/credentials.js';
import { initCa } from '../../../server/ca/init.js';
import { createCsr } from '../../../shared/pki/csr.js';
import { defineAppType, type RequestType } from '../../../shared/protocol/catalog.js';
import { s } from '../../../shared/protocol/schema.js';
import { tempDir } from '../../helpers/tmp.js';
import { TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { issueTestClient, sessionFor, startTestKdc, testKeyPair } from '../../helpers/kdc-in-process.js';

t.setTimeout(180_000);

// A type the catalog knows but no KDC handler serves (registered in this process only).
defineAppType('test.unserved', { request: s.map({}), response: s.map({}) });

const { kdc, dataDir } = await startTestKdc(t);
const alice = await issueTestClient(kdc.ca, 'alice');

t.test('ready: session facts for a client', async (t) => {
  const session = await sessionFor(kdc, alice);
  const f = session.facts;
  t.equal(f.mode, 'auth');
  t.equal(f.group, 'x25519');
  t.equal(f.cipher, 'AES-256-GCM');
  t.match(f.sessionId, /^[0-9a-f]{32}$/);
  t.same(f.identity, {
    name: 'alice',
    serialHex: alice.cert.serialHex,
    role: 'client',
    expiresAt: alice.cert.notAfter,
  });
  t.equal(f.serverCertificate.subjectCN, 'kdc');
  t.equal(f.clientCertificate?.serialHex, alice.cert.serialHex);
  await session.close();
  t.notOk(session.isOpen);
  await t.rejects(session.request('ping', {}), { code: 'session_closed' });
});

t.test('ffdhe2048 sessions work, and a server restricted to one group refuses the other', async (t) => {
  const session = await sessionFor(kdc, alice, { dh: 'ffdhe2048' });
  t.equal(session.facts.group, 'ffdhe2048');
  t.same(await session.request('ping', {}), { pong: true });
  await session.close();
  const { kdc: onlyFfdhe } = await startTestKdc(t, { dh: 'ffdhe2048' });
  const local = await issueTestClient(onlyFfdhe.ca, 'alice');
  await t.rejects(sessionFor(onlyFfdhe, local, { dh: 'x25519' }), { code: 'no_common_group' });
});

t.test('admin credential gets the admin role; a client certificate cannot run admin requests', async (t) => {
  const admin = await openAdminSession({ dataDir, server: kdc.url, passphrase: TEST_CA_PASSPHRASE });
  t.equal(admin.facts.identity.role, 'admin');
  t.equal(admin.facts.identity.name, 'admin');
  const token = await admin.request('admin.token', { name: 'carol', ttl: 60_000 });
  t.match(token, { token: /^[A-Za-z0-9_-]{40,}$/, expiresAt: Number });
  await admin.close();

  const session = await sessionFor(kdc, alice);
  await t.rejects(session.request('admin.token', { name: 'mallory' }), { code: 'forbidden' });
  t.ok(session.isOpen, 'a refused request does not end the session');
  await t.rejects(session.request('cert.revoke', { name: 'admin', reason: 'keyCompromise' }), {
    code: 'forbidden',
  });
  t.same(await session.request('ping', {}), { pong: true });
  await session.close();
});

t.test('unknown request type -> unknown_type error, session stays usable', async (t) => {
  const session = await sessionFor(kdc, alice);
  // A type of the catalog the KDC has no handler for: the client's types know only the served ones.
  await t.rejects(session.request('test.unserved' as RequestType, {}), { code: 'unknown_type' });
  t.same(await session.request('ping', {}), { pong: true });
  await session.close();
});

t.test('an anonymous (enroll-mode) session can only enroll', async (t) => {
  const session = await openSession({ server: kdc.url, mode: 'enroll', caCertPem: kdc.ca.caCertPem });
  t.equal(session.facts.identity.role, 'anonymous');
  t.equal(session.facts.identity.name, '');
  await t.rejects(session.request('cert.status', { serial: alice.cert.serialHex }), {
    code: 'not_authenticated',
  });
  await t.rejects(session.request('admin.token', { name: 'x' }), { code: 'not_authenticated' });
  await session.close();
});

t.test('insecure mode is refused unless the server allows it', async (t) => {
  await t.rejects(openSession({ server: kdc.url, mode: 'insecure', insecureName: 'alice' }), {
    code: 'insecure_refused',
  });
});

t.test('cert.status: good, revoked (reason, time), unknown', async (t) => {
  const victim = await issueTestClient(kdc.ca, 'status-victim');
  const session = await sessionFor(kdc, alice);
  t.same(await session.request('cert.status', { serial: alice.cert.serialHex }), { status: 'good' });
  t.same(await session.request('cert.status', { serial: 'abcdef' }), { status: 'unknown' });
  const outcome = await kdc.ca.revoke({ serialHex: victim.cert.serialHex }, 'affiliationChanged', 'test');
  t.same(await session.request('cert.status', { serial: victim.cert.serialHex }), {
    status: 'revoked',
    reason: 'affiliationChanged',
    revokedAt: outcome.revokedAt,
  });
  // docs/protocol.md "Serials": a serial in a request is read as the INTEGER value, so zero octets
  // in front (or one zero digit missing in front) name the same certificate.
  t.same(await session.request('cert.status', { serial: `00${alice.cert.serialHex}` }), { status: 'good' });
  t.same(await session.request('cert.status', { serial: `0000${victim.cert.serialHex}` }), {
    status: 'revoked',
    reason: 'affiliationChanged',
    revokedAt: outcome.revokedAt,
  });
  await t.rejects(
    session.request('cert.status', { serial: '0' }),
    { code: 'bad_request' },
    'zero is no serial',
  );
  await session.close();
});

t.test('cert.revoke: a client names its own certificate by the INTEGER value of its serial', async (t) => {
  const carol = await issueTestClient(kdc.ca, 'serial-carol');
  const session = await sessionFor(kdc, carol);
  const reply = await session.request('cert.revoke', {
    serial: `00${carol.cert.serialHex}`,
    reason: 'superseded',
  });
  t.match(reply, { status: 'revoked', serial: carol.cert.serialHex });
  const closed = await session.closed;
  t.equal(closed.error?.code, 'cert_revoked', 'its own session ends after the reply');
});

t.test('expired certificate -> cert_expired', async (t) => {
  const now = Date.now();
  const old = await issueTestClient(kdc.ca, 'expired-one', {
    validity: { notBefore: now - 2 * 3_600_000, notAfter: now - 3_600_000 },
  });
  await t.rejects(sessionFor(kdc, old), { code: 'cert_expired' });
});

t.test('revoked certificate -> cert_revoked', async (t) => {
  const revoked = await issueTestClient(kdc.ca, 'revoked-one');
  await kdc.ca.revoke({ serialHex: revoked.cert.serialHex }, 'keyCompromise', 'test');
  await t.rejects(sessionFor(kdc, revoked), { code: 'cert_revoked' });
});

t.test('a certificate from another CA -> cert_unknown_issuer', async (t) => {
  const otherDir = join(tempDir(t), 'other');
  await initCa({ dataDir: otherDir, caKeyBits: 2048, passphrase: 'other-ca-passphrase', actor: 'test' });
  const other = await CertificateAuthority.open(otherDir, { passphrase: 'other-ca-passphrase' });
  t.teardown(() => other.close());
  const foreign = await issueTestClient(other, 'alice');
  await t.rejects(sessionFor(kdc, foreign), { code: 'cert_unknown_issuer' });
});

t.test('a certificate our key signed but our store does not know -> cert_unknown_issuer', async (t) => {
  // A copy of the data directory shares the CA key but not the store: its certificates are not ours.
  const forkDir = join(tempDir(t), 'fork');
  cpSync(dataDir, forkDir, { recursive: true });
  const fork = await CertificateAuthority.open(forkDir, { passphrase: TEST_CA_PASSPHRASE });
  t.teardown(() => fork.close());
  const stray = await issueTestClient(fork, 'stray');
  await t.rejects(sessionFor(kdc, stray), { code: 'cert_unknown_issuer' });
});

t.test('a KDC presenting a CA-signed certificate for another name -> cert_wrong_name', async (t) => {
  const evilDir = join(tempDir(t), 'evil');
  cpSync(dataDir, evilDir, { recursive: true });
  const ca = await CertificateAuthority.open(evilDir, { passphrase: TEST_CA_PASSPHRASE });
  const pair = await testKeyPair();
  const cert = await ca.issueFromCsr(await createCsr('evil', pair.privateKeyPem, pair.publicKeyPem), {
    name: 'evil',
    role: 'server',
    actor: 'test',
  });
  await ca.close();
  writeFileSync(join(evilDir, 'server', 'cert.pem'), cert.pem);
  writeFileSync(
    join(evilDir, 'server', 'key.pem'),
    encryptPrivateKey(pair.privateKeyPem, TEST_CA_PASSPHRASE),
  );
  const { kdc: evil } = await startTestKdc(t, { dataDir: evilDir });
  const local = await issueTestClient(evil.ca, 'dave');
  await t.rejects(sessionFor(evil, local), { code: 'cert_wrong_name' });
  // The same client accepts it only if told to expect that name (the check is the name, nothing else).
  const ok = await openSession({
    server: evil.url,
    credentials: { privateKey: local.privateKey, certPem: local.certPem },
    caCertPem: evil.ca.caCertPem,
    expectServerName: 'evil',
  });
  t.equal(ok.facts.serverCertificate.subjectCN, 'evil');
  await ok.close();
});

t.test('a client that pins another root refuses the KDC -> cert_unknown_issuer', async (t) => {
  const otherDir = join(tempDir(t), 'other2');
  await initCa({ dataDir: otherDir, caKeyBits: 2048, passphrase: 'x-passphrase', actor: 'test' });
  await t.rejects(
    openSession({
      server: kdc.url,
      credentials: { privateKey: alice.privateKey, certPem: alice.certPem },
      caCertPem: readFileSync(join(otherDir, 'root_ca.pem'), 'utf8'),
    }),
    { code: 'cert_unknown_issuer' },
  );
  // The client keeps parsed certificates (shared/pki/certificate-cache.ts), never verdicts: the KDC's
  // certificate, parsed by the sessions before, was refused above, and the right root accepts it again.
  const again = await sessionFor(kdc, alice);
  t.equal(again.facts.serverCertificate.subjectCN, 'kdc');
  await again.close();
});
