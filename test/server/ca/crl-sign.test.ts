// server/ca/crl-sign.ts: the CRL builders follow the revocation rows exactly (an entry of a rolled-back
// transaction never reaches a signed CRL), and what a transaction signed is served only once it committed.
import t from 'tap';
import { pooledKeyPair } from '../../helpers/template.js';
import { createCsr } from '../../../shared/pki/csr.js';
import { parseCrl } from '../../../shared/pki/crl.js';
import { parseCertificate } from '../../../shared/pki/x509.js';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { CrlSigner } from '../../../server/ca/crl-sign.js';
import { RevocationIndex } from '../../../server/ca/revocation-index.js';
import { decryptPrivateKey, readText } from '../../../server/ca/credentials.js';
import { syncSigner } from '../../../server/ca/signer.js';
import { openAsyncStore } from '../../../server/store/open-store.js';
import { CA_SETTINGS_KEY, caPaths, DEFAULT_CA_SETTINGS, type CaSettings } from '../../../io/ca-files.js';
import { freshCa, PASSPHRASE } from './fixture.js';

const { dir } = await freshCa(t);
const ca = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
t.teardown(() => ca.close());
const store = await openAsyncStore({ dataDir: dir, url: undefined });
t.teardown(() => store.close());
const paths = caPaths(dir);
const caCert = parseCertificate(readText(paths.rootCa));
const sign = syncSigner(decryptPrivateKey(readText(paths.rootKey), PASSPHRASE));
const settings: CaSettings = {
  ...DEFAULT_CA_SETTINGS,
  ...((await store.getSetting<CaSettings>(CA_SETTINGS_KEY)) ?? {}),
};
// The run's pooled leaf key (slot 17, test/helpers/template.ts): RSA keygen is slow.
const pair = await pooledKeyPair(17);

async function revokeInStore(name: string): Promise<string> {
  const csr = await createCsr(name, pair.privateKeyPem, pair.publicKeyPem);
  const { serialHex } = await ca.issueFromCsr(csr, { name, actor: 'test' });
  await store.transaction(async (tx) => {
    await tx.insertRevocation({ serialHex, revokedAt: 1_800_000_000_000, reason: 'keyCompromise' });
    await tx.setCertificateStatus(serialHex, 'revoked');
  });
  return serialHex;
}

const index = new RevocationIndex();
const crls = await CrlSigner.load(store, caCert, settings);
const catchUp = async (): Promise<void> => crls.catchUp(store, (await index.catchUp(store)).rows);
await catchUp();

t.test('a rolled-back entry is dropped: the next complete CRL lists exactly the rows', async (t) => {
  const first = await revokeInStore('sign-a');
  const second = await revokeInStore('sign-b');
  await catchUp();
  t.ok(crls.fullCrlDue(Date.now()), 'rows no complete CRL lists: a complete CRL is due');
  // As a revocation does inside its transaction, which then rolls back.
  crls.add(
    Number.MAX_SAFE_INTEGER,
    {
      serialHex: 'ab'.repeat(16),
      revokedAt: 1_800_000_000_000,
      reason: 'unspecified',
    },
    Number.MAX_SAFE_INTEGER,
  );
  crls.rollBack(true);
  // The builders are rebuilt from every row; the rows the index hands over again are not added twice.
  await catchUp();
  const before = crls.highestCrlNumber();
  const state = await store.transaction(async (tx) => {
    await crls.reload(tx, await store.changeCounter());
    return crls.signFull(tx, sign, Date.now());
  });
  crls.commit();
  const lastRow = await store.getRevocation(second);
  t.equal(state.lastRevocationId, lastRow?.id, 'the complete CRL lists up to the last row');
  t.same(
    parseCrl(state.pem)
      .entries.map((e) => e.serialHex)
      .sort(),
    [first, second].sort(),
    'every row once, and not the rolled-back entry',
  );
  t.equal(state.crlNumber, before + 1, 'the next number of the one sequence (RFC 5280 5.2.3)');
  const delta = crls.currentDelta();
  t.equal(delta?.crlNumber, state.crlNumber, 'the delta issued with it has the same number');
  t.equal(delta?.baseCrlNumber, state.crlNumber, '... its base is that complete CRL');
  t.equal(delta?.entries, 0, '... and it lists nothing');
  t.same(crls.currentState(), state, 'served once committed');
  t.notOk(crls.fullCrlDue(Date.now()), 'nothing is due any more');
});

t.test('what a rolled-back transaction signed is never served', async (t) => {
  await revokeInStore('sign-c');
  await catchUp();
  const committed = crls.currentState();
  const highest = crls.highestCrlNumber();
  await t.rejects(
    store.transaction(async (tx) => {
      await crls.reload(tx, await store.changeCounter());
      await crls.signFull(tx, sign, Date.now());
      t.same(crls.currentState(), committed, 'not served while the transaction is open');
      throw new Error('roll back');
    }),
    { message: 'roll back' },
  );
  crls.rollBack(false);
  t.same(crls.currentState(), committed, 'the committed CRL is still the current one');
  t.equal(crls.highestCrlNumber(), highest, 'its number was not used');
  t.same(await store.getCrlState(), committed, 'and the store agrees');
});
