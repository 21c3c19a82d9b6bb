// Revocation ends live sessions: by an admin, by the owner over its own session, and by another
// process sharing the data directory. The revoked sessions are told (cert.revoked + session.closing)
// and closed BEFORE the revoking request is answered; a new handshake with the certificate fails.
import t from 'tap';
import { openAdminSession } from '../../../client/admin.js';
import type { ClientSession } from '../../../client/session.js';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { CLOSE } from '../../../shared/errors.js';
import { TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { issueTestClient, sessionFor, startTestKdc } from '../../helpers/kdc-in-process.js';

t.setTimeout(120_000);

const { kdc, dataDir } = await startTestKdc(t);

/** Records, in order, the pushes a session receives and its close. */
function watch(session: ClientSession, events: string[], label: string): void {
  session.onPush('*', (body, type) =>
    events.push(`${label}:push:${type}${type === 'session.closing' ? `:${String(body.code)}` : ''}`),
  );
  void session.closed.then((info) => events.push(`${label}:closed:${info.code}:${info.error?.code ?? ''}`));
}

t.test('admin revocation ends every live session of the certificate before the reply', async (t) => {
  const bob = await issueTestClient(kdc.ca, 'bob');
  const carol = await issueTestClient(kdc.ca, 'carol');
  const events: string[] = [];
  const bob1 = await sessionFor(kdc, bob);
  const bob2 = await sessionFor(kdc, bob);
  const bystander = await sessionFor(kdc, carol);
  watch(bob1, events, 'bob1');
  watch(bob2, events, 'bob2');
  t.equal(kdc.sessions.bySerial(bob.cert.serialHex).length, 2);

  const admin = await openAdminSession({ dataDir, server: kdc.url, passphrase: TEST_CA_PASSPHRASE });
  const reply = await admin.request('cert.revoke', { name: 'bob', reason: 'keyCompromise' });
  events.push('admin:reply');
  t.match(reply, { status: 'revoked', serial: bob.cert.serialHex, crlNumber: Number });

  const replyAt = events.indexOf('admin:reply');
  for (const label of ['bob1', 'bob2']) {
    const pushed = events.indexOf(`${label}:push:cert.revoked`);
    const closing = events.indexOf(`${label}:push:session.closing:cert_revoked`);
    const closed = events.indexOf(`${label}:closed:${CLOSE.revoked}:cert_revoked`);
    t.ok(
      pushed >= 0 && pushed < closing && closing < closed && closed < replyAt,
      `${label} told and closed before the reply: ${events.join(', ')}`,
    );
  }
  t.equal(
    kdc.sessions.bySerial(bob.cert.serialHex).length,
    0,
    'no session of the revoked certificate remains',
  );
  t.ok(bystander.isOpen, 'other sessions are untouched');
  t.same(await bystander.request('ping', {}), { pong: true });
  await t.rejects(sessionFor(kdc, bob), { code: 'cert_revoked' });

  const again = await admin.request('cert.revoke', { serial: bob.cert.serialHex, reason: 'keyCompromise' });
  t.match(again, { status: 'already_revoked', serial: bob.cert.serialHex });
  await t.rejects(admin.request('cert.revoke', { serial: 'abcdef0123', reason: 'keyCompromise' }), {
    code: 'unknown_serial',
  });
  await Promise.all([admin.close(), bystander.close()]);
});

t.test('a client revokes its own certificate: its reply first, then its sessions end', async (t) => {
  const dave = await issueTestClient(kdc.ca, 'dave');
  const other = await sessionFor(kdc, dave);
  const events: string[] = [];
  watch(other, events, 'other');
  const self = await sessionFor(kdc, dave);
  watch(self, events, 'self');
  const reply = await self.request('cert.revoke', { reason: 'keyCompromise' });
  events.push('self:reply');
  t.match(reply, { status: 'revoked', serial: dave.cert.serialHex });
  t.ok(
    events.indexOf(`other:closed:${CLOSE.revoked}:cert_revoked`) < events.indexOf('self:reply'),
    `the other session closed before the reply: ${events.join(', ')}`,
  );
  const info = await self.closed;
  t.equal(info.code, CLOSE.revoked);
  t.equal(info.error?.code, 'cert_revoked');
  t.same(kdc.ca.revocationOf(dave.cert.serialHex)?.reason, 'keyCompromise');
});

t.test('a client cannot revoke somebody else', async (t) => {
  const erin = await issueTestClient(kdc.ca, 'erin');
  const frank = await issueTestClient(kdc.ca, 'frank');
  const session = await sessionFor(kdc, erin);
  await t.rejects(session.request('cert.revoke', { serial: frank.cert.serialHex, reason: 'keyCompromise' }), {
    code: 'forbidden',
  });
  await t.rejects(session.request('cert.revoke', { name: 'frank', reason: 'keyCompromise' }), {
    code: 'forbidden',
  });
  t.equal(kdc.ca.revocationOf(frank.cert.serialHex), undefined, 'nothing was revoked');
  t.ok(session.isOpen);
  await session.close();
});

t.test('a revocation made by another process ends live sessions too', async (t) => {
  const gina = await issueTestClient(kdc.ca, 'gina');
  const session = await sessionFor(kdc, gina);
  // A second CertificateAuthority on the same data directory stands for `kds cert revoke` run from
  // a shell: the KDC learns of it through the store and closes the session.
  const offline = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  t.teardown(() => offline.close());
  await offline.revoke({ name: 'gina' }, 'cessationOfOperation', 'test');
  const info = await session.closed;
  t.equal(info.code, CLOSE.revoked);
  t.equal(info.error?.code, 'cert_revoked');
});
