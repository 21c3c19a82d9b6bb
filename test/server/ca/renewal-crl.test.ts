// A certificate superseded by a renewal goes on the CRL with reasonCode superseded (RFC 5280 5.3.1), so
// openssl (reading only the published CRLs, fetched from the KDC's HTTP endpoints) refuses it as the KDC
// does; and the renewal is NOT a revocation for the KDC: no onRevoked announcement, the holder's keys
// stay active and sessions with the new certificate stay open, whether the renewal happened in the
// KDC's process or in another one sharing the data directory (like `kds cert issue --renew`).
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { createCsr } from '../../../shared/pki/csr.js';
import { parseCrl } from '../../../shared/pki/crl.js';
import { TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { issueTestClient, sessionFor, startTestKdc, testKeyPair } from '../../helpers/kdc-in-process.js';
import { tempDir } from '../../helpers/tmp.js';
import { openssl } from './fixture.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

t.setTimeout(180_000);

const { kdc, dataDir } = await startTestKdc(t);
const work = tempDir(t);
const announced: string[] = [];
kdc.ca.onRevoked((serialHex) => {
  announced.push(serialHex);
});

async function renewCsr(name: string): Promise<string> {
  const pair = await testKeyPair();
  return createCsr(name, pair.privateKeyPem, pair.publicKeyPem);
}

async function fetchText(path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${kdc.httpUrl}${path}`);
  return { status: res.status, body: await res.text() };
}

/**
 * openssl verify -crl_check -use_deltas -extended_crl against the CRLs the KDC serves right now (why
 * -extended_crl: crl-delta-openssl.test.ts).
 */
async function opensslVerdict(pem: string, label: string): Promise<string> {
  const full = await fetchText('/crl.pem');
  const delta = await fetchText('/delta-crl.pem');
  const files = ['crl', 'delta', 'cert'].map((k) => join(work, `${label}-${k}.pem`)) as [
    string,
    string,
    string,
  ];
  writeFileSync(files[0], full.body);
  writeFileSync(files[1], delta.body);
  writeFileSync(files[2], pem);
  const ca = join(dataDir, 'root_ca.pem');
  const r = await openssl([
    'verify',
    '-crl_check',
    '-use_deltas',
    '-extended_crl',
    '-CAfile',
    ca,
    '-CRLfile',
    files[0],
    '-CRLfile',
    files[1],
    files[2],
  ]);
  return r.code === 0 && /: OK/.test(r.stdout) ? 'OK' : `${r.stdout}${r.stderr}`;
}

const alice = await issueTestClient(kdc.ca, 'alice');
const bob = await issueTestClient(kdc.ca, 'bob');
const service = kdc.services.keys;
const caller = (c: { name: string; cert: { serialHex: string } }) => ({
  name: c.name,
  serialHex: c.cert.serialHex,
  role: 'client',
});

t.test('the KDC serves the delta CRL next to the complete CRL', async (t) => {
  const delta = await fetchText('/delta-crl.pem');
  t.equal(delta.status, 200);
  t.equal(delta.body, kdc.ca.currentDeltaCrlPem());
  const parsed = parseCrl(delta.body);
  t.equal(parsed.baseCrlNumber, BigInt(kdc.ca.currentCrl().crlNumber));
  const head = await fetch(`${kdc.httpUrl}/delta-crl.pem`, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal((await fetchText('/crl.pem')).body, kdc.ca.currentCrlPem(), '/crl.pem kept');
});

t.test('renewal in the KDC process: old certificate on the CRL, keys and new sessions kept', async (t) => {
  const key = await service.create(caller(alice), { peer: 'bob' });
  const renewed = await kdc.ca.issue(await renewCsr('alice'), { name: 'alice', renew: true, actor: 'test' });
  t.equal(renewed.supersededSerialHex, alice.cert.serialHex);

  t.match(kdc.ca.crlStatusOf(alice.cert.serialHex), { reason: 'superseded' });
  t.equal(kdc.ca.revocationOf(alice.cert.serialHex), undefined, 'not a revocation for the KDC');
  t.same(announced, [], 'no onRevoked announcement');
  t.equal(kdc.ca.verifyCertificateFile(alice.cert.pem).code, 'revoked', 'kds cert verify: on the CRL');
  t.equal(kdc.ca.verifyCertificateFile(renewed.cert.pem).code, 'ok');

  // Keys made with the old certificate survive: list() re-checks both parties' certificates.
  await service.list(caller({ name: 'alice', cert: renewed.cert }));
  t.equal(sqliteOf(kdc.ca.store).getSymKey(key.serial)!.state, 'active', 'the key survives the renewal');

  const crl = parseCrl(kdc.ca.currentCrlPem());
  t.match(
    crl.entries.find((e) => e.serialHex === alice.cert.serialHex),
    { reason: 'superseded' },
  );
  t.match(await opensslVerdict(alice.cert.pem, 'alice-old'), /certificate revoked/);
  t.equal(await opensslVerdict(renewed.cert.pem, 'alice-new'), 'OK');
  const text = (await openssl(['crl', '-in', join(work, 'alice-old-crl.pem'), '-noout', '-text'])).stdout;
  t.match(
    text,
    new RegExp(
      `Serial Number: ${alice.cert.serialHex.toUpperCase()}\\s+Revocation Date: [^\\n]+\\n\\s+CRL entry extensions:\\s+X509v3 CRL Reason Code:\\s+Superseded`,
    ),
  );

  // The handshake with the old certificate is refused, the new one works.
  await t.rejects(sessionFor(kdc, { privateKey: alice.privateKey, certPem: alice.certPem }), {
    code: 'cert_revoked',
  });
  const session = await sessionFor(kdc, { privateKey: alice.privateKey, certPem: renewed.cert.pem });
  t.teardown(() => session.close());
  await kdc.ca.syncRevocations();
  t.ok(session.isOpen);
  t.same(await session.request('ping', {}), { pong: true });
});

t.test('renewal by another process: picked up without a cascade', async (t) => {
  const key = await service.create(caller(bob), { peer: 'alice' });
  const bobSession = await sessionFor(kdc, bob);
  t.teardown(() => bobSession.close());
  const other = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  const renewed = await other.issue(await renewCsr('bob'), { name: 'bob', renew: true, actor: 'test' });
  await other.close();
  t.equal(await kdc.ca.syncRevocations(), 0, 'nothing announced');
  t.same(announced, []);
  t.match(kdc.ca.crlStatusOf(bob.cert.serialHex), { reason: 'superseded' });
  await service.list(caller({ name: 'bob', cert: renewed.cert }));
  await service.sweep();
  t.equal(sqliteOf(kdc.ca.store).getSymKey(key.serial)!.state, 'active', 'the key survives');
  const fresh = await sessionFor(kdc, { privateKey: bob.privateKey, certPem: renewed.cert.pem });
  t.teardown(() => fresh.close());
  t.same(await fresh.request('ping', {}), { pong: true });
  t.match(await opensslVerdict(bob.cert.pem, 'bob-old'), /certificate revoked/);
  t.equal(await opensslVerdict(renewed.cert.pem, 'bob-new'), 'OK');

  // A real revocation still cascades (the contrast): the new certificate's key is revoked.
  const key2 = await service.create(caller({ name: 'bob', cert: renewed.cert }), { peer: 'alice' });
  await kdc.ca.revoke({ serialHex: renewed.cert.serialHex }, 'keyCompromise', 'test');
  t.same(announced, [renewed.cert.serialHex]);
  t.equal(sqliteOf(kdc.ca.store).getSymKey(key2.serial)!.state, 'revoked');
});

t.test(
  'a superseded certificate missing from the CRL (crash between commits) is added at open',
  async (t) => {
    const carol = await issueTestClient(kdc.ca, 'carol');
    // What a crash right after the renewal's commit leaves: status superseded, no CRL entry.
    sqliteOf(kdc.ca.store).setCertificateStatus(carol.cert.serialHex, 'superseded');
    t.equal(kdc.ca.crlStatusOf(carol.cert.serialHex), undefined);
    const reopened = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
    t.teardown(() => reopened.close());
    t.match(reopened.crlStatusOf(carol.cert.serialHex), { reason: 'superseded' });
    t.ok(parseCrl(reopened.currentCrlPem()).entries.some((e) => e.serialHex === carol.cert.serialHex));
    await kdc.ca.syncRevocations();
    t.same(announced.length, 1, 'still only the one real revocation announced');
  },
);
