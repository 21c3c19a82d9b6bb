// Replay, against a live server process: a request captured on the wire (its exact record bytes, and
// the handshake that carried it) is never accepted again, whether replayed in the same session, in a
// new session, or after a server restart. The request is `admin.token`, whose effect is countable
// (one enrollment-token row per accepted request), so "never accepted" is checked in the store, not
// only on the wire. Why it holds (docs/protocol.md): records have implicit sequence numbers and
// per-session keys (a replayed record fails AES-GCM: record_auth, close 4005), and a replayed
// handshake meets a fresh server nonce and DH share, so the old client_finish's signature and MAC no
// longer verify (bad_signature / bad_mac).
// Then idempotence under concurrency: 20 parallel copies of one certificate revocation, and of one key
// revocation, give exactly one `revoked` and nineteen `already_revoked`, one revocation row, one CRL
// entry, one revocation notice per party.
import t from 'tap';
import type * as Tap from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAdminCredentials } from '../../client/admin.js';
import { openSession, type ClientSession } from '../../client/session.js';
import { CertificateAuthority } from '../../server/ca/authority.js';
import { openStore, type Store } from '../../server/store/store.js';
import { parseCrl } from '../../shared/pki/crl.js';
import { issueTestClient, type TestClient } from '../helpers/kdc-in-process.js';
import { initDataDir, startServer, TEST_CA_PASSPHRASE, type ServerProcess } from '../helpers/kds-process.js';
import { rawConnect, rawHandshake, type RawSession } from '../helpers/raw-client.js';

/**
 * The server's answer to a replayed record: nothing but the close (docs/protocol.md "Transport": a
 * record that fails authentication is never answered), whose reason names the code.
 */
async function answerToReplay(s: RawSession): Promise<{ code: string; close: number }> {
  const reply = await s.read();
  if (reply === 'hang') throw new Error('the replay was neither answered nor closed');
  if (reply !== undefined) throw new Error(`replay answered with ${JSON.stringify(reply)}`);
  const closed = await s.conn.closed;
  return { code: closed.reason, close: closed.code };
}

t.test('replay', { timeout: 240_000 }, async (t) => {
  const top = t;
  const dataDir = await initDataDir(t);
  const ca = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  const alice = await issueTestClient(ca, 'alice');
  const bob = await issueTestClient(ca, 'bob');
  const victim = await issueTestClient(ca, 'victim');
  await ca.close();
  const admin = loadAdminCredentials(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  const caCertPem = readFileSync(join(dataDir, 'root_ca.pem'), 'utf8');
  const adminCreds = { privateKey: admin.privateKey, certPem: admin.certPem };
  const store: Store = openStore(dataDir);
  t.teardown(() => store.close());
  const tokens = (): number => store.listEnrollmentTokens().filter((r) => r.name === 'replay-target').length;
  let server: ServerProcess = await startServer(t, dataDir);

  // The captured exchange: a handshake and one admin.token request, bytes kept.
  const s1 = await rawHandshake({ url: server.url, credentials: adminCreds, caCertPem });
  const captured = s1.request('admin.token', 1, { name: 'replay-target', ttl: 60_000 });
  const first = await s1.read();
  t.match(first, { kind: 'ok', type: 'admin.token' }, 'the original request is accepted');
  t.equal(tokens(), 1, 'one token row');

  await t.test('the same record again, in the same session', async (t) => {
    s1.conn.send(captured);
    const r = await answerToReplay(s1);
    t.same(r, { code: 'record_auth', close: 4005 }, 'record_auth, close 4005: the session ends');
    t.equal(tokens(), 1, 'no second token');
  });

  const replayEverywhere = async (t: Tap.Test, label: string): Promise<void> => {
    // In a new (honest) session: other keys, sequence 0.
    const s2 = await rawHandshake({ url: server.url, credentials: adminCreds, caCertPem });
    s2.conn.send(captured);
    t.same(
      await answerToReplay(s2),
      { code: 'record_auth', close: 4005 },
      `${label}: in a new session -> record_auth`,
    );

    // The whole captured connection: client_hello, client_finish, then the record.
    const conn = await rawConnect(server.url);
    conn.send(s1.clientHello);
    const sh = await conn.next();
    t.ok(
      Buffer.isBuffer(sh) && !sh.equals(s1.serverHello),
      `${label}: the server answers the old hello with a fresh server_hello`,
    );
    conn.send(s1.clientFinish);
    conn.send(captured);
    const alert = await conn.next();
    const { decodeFrame } = await import('../../shared/protocol/messages.js');
    const frame = Buffer.isBuffer(alert) ? decodeFrame(alert) : undefined;
    t.match(
      frame,
      { t: 'alert', code: /^(bad_signature|bad_mac)$/ },
      `${label}: the old client_finish is refused`,
    );
    t.equal((await conn.closed).code, 4001, `${label}: close 4001 (authentication)`);
    t.equal(tokens(), 1, `${label}: still one token`);
  };

  await t.test('in a new session, and the whole captured connection', (t) => replayEverywhere(t, 'live'));

  await t.test('after a server restart', async (t) => {
    t.same(await server.stop('SIGTERM'), { code: 0, signal: null }, 'clean stop');
    server = await startServer(top, dataDir);
    await replayEverywhere(t, 'restarted');
  });

  await t.test('20 parallel revocations of one certificate', async (t) => {
    const sessions: ClientSession[] = await Promise.all(
      Array.from({ length: 20 }, () =>
        openSession({ server: server.url, mode: 'auth', credentials: adminCreds, caCertPem }),
      ),
    );
    const results = await Promise.all(
      sessions.map((s) =>
        s.request('cert.revoke', { serial: victim.cert.serialHex, reason: 'keyCompromise' }),
      ),
    );
    const statuses = results.map((r) => String(r.status)).sort();
    t.same(
      statuses,
      ['revoked', ...Array(19).fill('already_revoked')].sort(),
      'one revoked, nineteen already_revoked',
    );
    t.equal(
      new Set(results.map((r) => Number(r.crlNumber))).size,
      1,
      'every answer names the same CRL number',
    );
    t.equal(
      store.listRevocations().filter((r) => r.serialHex === victim.cert.serialHex).length,
      1,
      'one revocation row',
    );
    const served = parseCrl(await (await fetch(`${server.httpUrl}/crl.pem`)).text());
    t.equal(
      served.entries.filter((e) => e.serialHex === victim.cert.serialHex).length,
      1,
      'one entry in the served CRL',
    );
    t.equal(
      served.crlNumber,
      BigInt(Number(results[0]!.crlNumber)),
      'the served CRL is the one the answers named',
    );
    const onDisk = parseCrl(readFileSync(join(dataDir, 'root_crl.pem'), 'utf8'));
    t.equal(onDisk.pem, served.pem, 'root_crl.pem is the served CRL');
    await Promise.all(sessions.map((s) => s.close()));
  });

  await t.test('20 parallel revocations of one key, by both parties and the admin', async (t) => {
    const open = (c: TestClient): Promise<ClientSession> =>
      openSession({
        server: server.url,
        mode: 'auth',
        credentials: { privateKey: c.privateKey, certPem: c.certPem },
        caCertPem,
      });
    const a = await open(alice);
    const created = await a.request('key.create', { peer: 'bob' });
    const serial = String(created.serial);
    const sessions = await Promise.all([
      ...Array.from({ length: 7 }, () => open(alice)),
      ...Array.from({ length: 7 }, () => open(bob)),
      ...Array.from({ length: 6 }, () =>
        openSession({ server: server.url, mode: 'auth', credentials: adminCreds, caCertPem }),
      ),
    ]);
    const results = await Promise.all(
      sessions.map((s, i) =>
        s.request(i < 14 ? 'key.revoke' : 'admin.key.revoke', { serial, reason: 'keyCompromise' }),
      ),
    );
    const statuses = results.map((r) => String(r.status)).sort();
    t.same(
      statuses,
      ['revoked', ...Array(19).fill('already_revoked')].sort(),
      'one revoked, nineteen already_revoked',
    );
    t.equal(
      new Set(results.map((r) => Number(r.revokedAt))).size,
      1,
      'every answer names the same revocation time',
    );
    t.equal(store.getSymKey(serial)?.state, 'revoked', 'the key is revoked in the store');
    const notices = (name: string): number =>
      store.listDeliveries(name, 1_000).filter((d) => d.kind === 'key.revoked' && d.keySerial === serial)
        .length;
    // Parties online may already have taken (and not yet acknowledged) their notice: queued or not, one each.
    t.ok(notices('alice') <= 1 && notices('bob') <= 1, 'at most one revocation notice queued per party');
    t.ok(notices('alice') + notices('bob') >= 1, 'and the notice was queued for the other party');
    await Promise.all([a.close(), ...sessions.map((s) => s.close())]);
  });
  await server.stop('SIGTERM');
});
