// server/kdc/cert-check.ts CertificateRecordCache: the KDC caches the store records of active client
// certificates, and a cached record must never outlive a change: a revocation or a renewal, made by this
// process (through the same Store object) or by another one (a second connection to the database, as
// `kds cert revoke` / `kds cert issue --renew` from a shell are), is seen by the very next check and the
// next handshake.
import t from 'tap';
import { createCsr } from '../../../shared/pki/csr.js';
import { CertificateRecordCache, checkClientCertificate } from '../../../server/kdc/cert-check.js';
import { openStore, type Store } from '../../../server/store/store.js';
import { issueTestClient, sessionFor, startTestKdc, testKeyPair } from '../../helpers/kdc-in-process.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

t.setTimeout(120_000);

const { kdc, dataDir } = await startTestKdc(t);
const { ca } = kdc;

/** Counts the certificate-row reads of `store` from now on. */
function countRowReads(store: Store): { readonly count: number } {
  const counter = { count: 0 };
  const read = store.getCertificate.bind(store);
  store.getCertificate = (serialHex) => {
    counter.count += 1;
    return read(serialHex);
  };
  return counter;
}

async function renew(name: string): Promise<void> {
  const pair = await testKeyPair();
  const csr = await createCsr(name, pair.privateKeyPem, pair.publicKeyPem);
  await ca.issue(csr, { name, renew: true, actor: 'test' });
}

// One cache and one row counter for the whole file (wrapping the store again per test would stack).
const records = new CertificateRecordCache(ca.store, 3);
const reads = countRowReads(sqliteOf(ca.store));

t.test('a returning certificate is checked without reading its row again', async (t) => {
  const alice = await issueTestClient(ca, 'cache-alice');
  const before = reads.count;
  const first = await checkClientCertificate(ca, alice.cert, Date.now(), records);
  t.equal(first.record.status, 'active');
  t.equal(first.record.name, 'cache-alice');
  t.equal(reads.count, before + 1, 'first check reads the row');
  const second = await checkClientCertificate(ca, alice.cert, Date.now(), records);
  t.equal(reads.count, before + 1, 'second check is served from the cache');
  t.equal(second.record.fingerprint256, alice.cert.fingerprint256);
  t.equal(second.record.role, 'client');
  t.equal(second.record.pem, null, 'the cached copy does not keep the PEM');
});

t.test('one read of the change counter per check: the revocation sync and the record share it', async (t) => {
  const erin = await issueTestClient(ca, 'cache-erin');
  await checkClientCertificate(ca, erin.cert, Date.now(), records);
  const store = ca.store;
  const read = store.changeCounter.bind(store);
  let looks = 0;
  store.changeCounter = () => {
    looks += 1;
    return read();
  };
  t.teardown(() => {
    store.changeCounter = read;
  });
  const checked = await checkClientCertificate(ca, erin.cert, Date.now(), records);
  t.equal(checked.record.name, 'cache-erin');
  t.equal(looks, 1, 'the record cache reused the counter the revocation sync read');
});

t.test('revocation in this process: the next check refuses', async (t) => {
  const bob = await issueTestClient(ca, 'cache-bob');
  await checkClientCertificate(ca, bob.cert, Date.now(), records);
  await ca.revoke({ serialHex: bob.cert.serialHex }, 'keyCompromise', 'test');
  await t.rejects(checkClientCertificate(ca, bob.cert, Date.now(), records), { code: 'cert_revoked' });
  await t.rejects(sessionFor(kdc, bob), { code: 'cert_revoked' }, 'and so does a handshake');
});

t.test('renewal in this process: the superseded certificate is refused at once', async (t) => {
  const carol = await issueTestClient(ca, 'cache-carol');
  const session = await sessionFor(kdc, carol); // the KDC's own cache now holds carol's record
  await session.close();
  await checkClientCertificate(ca, carol.cert, Date.now(), records);
  await renew('cache-carol');
  await t.rejects(checkClientCertificate(ca, carol.cert, Date.now(), records), {
    code: 'cert_revoked',
    message: 'certificate superseded',
  });
  await t.rejects(sessionFor(kdc, carol), { code: 'cert_revoked' }, 'the KDC refuses the handshake');
});

t.test('a change committed by another connection empties the cache', async (t) => {
  const dave = await issueTestClient(ca, 'cache-dave');
  const session = await sessionFor(kdc, dave);
  await session.close();
  await checkClientCertificate(ca, dave.cert, Date.now(), records);
  const other = openStore(dataDir);
  t.teardown(() => other.close());
  // A status change only (no revocation row): nothing but the store record can refuse it.
  other.setCertificateStatus(dave.cert.serialHex, 'superseded');
  t.equal(ca.revocationOf(dave.cert.serialHex), undefined, 'not a revocation');
  await t.rejects(checkClientCertificate(ca, dave.cert, Date.now(), records), {
    code: 'cert_revoked',
    message: 'certificate superseded',
  });
  await t.rejects(sessionFor(kdc, dave), { code: 'cert_revoked' }, 'the KDC refuses the handshake');
});

t.test('only active records are kept, at most `limit` of them', async (t) => {
  const unknown = await records.get('7f'.repeat(16));
  t.equal(unknown, undefined, 'an unknown serial is not found');
  const clients = [];
  for (const name of ['cache-e1', 'cache-e2', 'cache-e3', 'cache-e4']) {
    const c = await issueTestClient(ca, name);
    clients.push(c);
    await checkClientCertificate(ca, c.cert, Date.now(), records);
  }
  t.equal(records.size, 3, 'bounded by the limit');
  const before = reads.count;
  await checkClientCertificate(ca, clients[0]!.cert, Date.now(), records);
  t.equal(reads.count, before + 1, 'the oldest entry was evicted and is read again');
  await ca.revoke({ serialHex: clients[3]!.cert.serialHex }, 'superseded', 'test');
  const revoked = await records.get(clients[3]!.cert.serialHex);
  t.equal(revoked?.status, 'revoked', 'the store answers for a revoked certificate');
  const again = reads.count;
  await records.get(clients[3]!.cert.serialHex);
  t.equal(reads.count, again + 1, 'a revoked record is not cached');
});
