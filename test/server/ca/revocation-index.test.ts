// server/ca/revocation-index.ts: the in-memory view of the revocation rows, caught up from the store.
// Rows are written here the way another process or node would (straight into the store), so catchUp()
// is the only way the index can learn of them.
import t from 'tap';
import { pooledKeyPair } from '../../helpers/template.js';
import { createCsr } from '../../../shared/pki/csr.js';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { RevocationIndex } from '../../../server/ca/revocation-index.js';
import { openAsyncStore } from '../../../server/store/open-store.js';
import { freshCa, PASSPHRASE } from './fixture.js';

const { dir } = await freshCa(t);
const ca = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
t.teardown(() => ca.close());
// Another connection, standing for another process sharing the data directory.
const other = await openAsyncStore({ dataDir: dir, url: undefined });
t.teardown(() => other.close());
// The run's pooled leaf key (slot 17, test/helpers/template.ts): RSA keygen is slow.
const pair = await pooledKeyPair(17);

async function issue(name: string): Promise<string> {
  const csr = await createCsr(name, pair.privateKeyPem, pair.publicKeyPem);
  return (await ca.issueFromCsr(csr, { name, actor: 'test' })).serialHex;
}

/** Commit a revocation row from the other connection; `superseded`: a renewal's entry. */
async function commitRow(
  serialHex: string,
  reason: 'keyCompromise' | 'superseded',
  status: 'revoked' | 'superseded',
) {
  return other.transaction(async (tx) => {
    const row = await tx.insertRevocation({ serialHex, revokedAt: 1_800_000_000_000, reason });
    await tx.setCertificateStatus(serialHex, status);
    return row;
  });
}

const index = new RevocationIndex();
const a = await issue('idx-a');
const b = await issue('idx-b');
const renewed = await issue('idx-renewed');
const supersededByOperator = await issue('idx-operator');
const gap = await issue('idx-gap');

t.test('a fresh CA has no revocation rows', async (t) => {
  t.same(await index.catchUp(other), { rows: [], fresh: [], superseded: [] }, 'nothing to catch up on');
  t.equal(index.crlStatusOf(a), undefined);
});

t.test('catchUp reads the rows other processes committed, once', async (t) => {
  const rowA = await commitRow(a, 'keyCompromise', 'revoked');
  t.equal(index.revocationOf(a), undefined, 'nothing is known before the catch-up');
  const first = await index.catchUp(other);
  t.same(
    first.rows.map((r) => r.id),
    [rowA.id],
    'the new row',
  );
  t.same(
    first.fresh.map((r) => r.serialHex),
    [a],
    'announced as a revocation',
  );
  t.same(index.revocationOf(a), { reason: 'keyCompromise', revokedAt: 1_800_000_000_000 });
  t.same(index.revocationOf(a.toUpperCase()), index.revocationOf(a), 'any case of the serial');
  t.equal(index.size, 1);
  t.same(
    await index.catchUp(other),
    { rows: [], fresh: [], superseded: [] },
    'read once: nothing new the second time',
  );
});

t.test("a renewal's entry is on the CRL but is no revocation", async (t) => {
  await commitRow(renewed, 'superseded', 'superseded');
  // An operator may revoke with reason superseded: the certificate's status says it is a revocation.
  await commitRow(supersededByOperator, 'superseded', 'revoked');
  const { rows, fresh, superseded } = await index.catchUp(other);
  t.same(
    rows.map((r) => r.serialHex),
    [renewed, supersededByOperator],
    'both rows are read (the CRL lists both)',
  );
  t.same(
    fresh.map((r) => r.serialHex),
    [supersededByOperator],
    "only the operator's revocation is announced",
  );
  t.same(superseded, [renewed], "the renewal's certificate is reported as superseded (its sessions end)");
  t.equal(index.revocationOf(renewed), undefined, 'revocationOf does not report the renewal');
  t.same(index.crlStatusOf(renewed), { reason: 'superseded', revokedAt: 1_800_000_000_000 });
  t.same(index.revocationOf(supersededByOperator)?.reason, 'superseded');
  t.equal(index.size, 2, 'superseded certificates are not counted');
});

t.test('record(): our own committed row is not read back nor announced again', async (t) => {
  const row = await commitRow(b, 'keyCompromise', 'revoked');
  index.record(row.id, b, { reason: 'keyCompromise', revokedAt: row.revokedAt }, 'revoke');
  t.same(index.revocationOf(b), { reason: 'keyCompromise', revokedAt: row.revokedAt });
  t.same(await index.catchUp(other), { rows: [], fresh: [], superseded: [] }, 'the cursor moved past it');
});

t.test('listSupersededGaps: superseded certificates the CRL does not list', async (t) => {
  await other.transaction(async (tx) => tx.setCertificateStatus(gap, 'superseded'));
  t.same(await index.listSupersededGaps(other), [gap], 'the one without a revocation row');
  await commitRow(gap, 'superseded', 'superseded');
  await index.catchUp(other);
  t.same(await index.listSupersededGaps(other), [], 'listed once its row is read');
});
