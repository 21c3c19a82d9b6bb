// A store restored from an older backup (docs/deployment.md "Backups"), on both store engines: the
// published CRLs this CA signed after the backup are never overwritten by the store's older ones (the
// read-only `kds crl show` leaves them alone and warns), and the next open with the CA key records their
// revocations again and numbers the next CRL above them (RFC 5280 5.2.3: the CRL number is "a
// monotonically increasing sequence number for a given CRL scope and CRL issuer"). A higher-numbered
// CRL file signed by another CA proves nothing and is replaced from the store, as a damaged one is.
import t from 'tap';
import type * as Tap from 'tap';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateRsaKeyPair } from '../../shared/crypto/rsa.js';
import { createCsr } from '../../shared/pki/csr.js';
import { parseCrl } from '../../shared/pki/crl.js';
import { CertificateAuthority } from '../../server/ca/authority.js';
import { initCa } from '../../server/ca/init.js';
import { caPaths, CA_SETTINGS_KEY, DEFAULT_CA_SETTINGS, type CaSettings } from '../../io/ca-files.js';
import { tempDir } from '../helpers/tmp.js';
import { PG_TEST_URL, pgRawClient, pgTestSchema } from '../helpers/pg.js';
import { runKds } from '../helpers/kds-process.js';
import { PASSPHRASE } from '../server/ca/fixture.js';

t.setTimeout(240_000);

const exec = promisify(execFile);
const pair = await generateRsaKeyPair(2048);

interface Engine {
  name: string;
  /** A fresh CA; `backup()` copies its store (CA closed), `restore()` puts that copy back. */
  setUp(t: Tap.Test): Promise<{
    dir: string;
    open(readOnly?: boolean): Promise<CertificateAuthority>;
    backup(): Promise<void>;
    restore(): Promise<void>;
    /** The `--store` arguments of a kds command on this store. */
    storeArgs: string[];
  }>;
}

const ENGINES: Engine[] = [
  {
    name: 'sqlite',
    async setUp(t) {
      const dir = tempDir(t);
      await initCa({ dataDir: dir, caKeyBits: 2048, passphrase: PASSPHRASE });
      const store = caPaths(dir).store;
      const copy = join(tempDir(t), 'backup.sqlite');
      return {
        dir,
        open: (readOnly = false) => CertificateAuthority.open(dir, { passphrase: PASSPHRASE, readOnly }),
        // With the KDC stopped (every handle closed), the file is the whole store.
        async backup() {
          t.notOk(existsSync(`${store}-wal`) && readFileSync(`${store}-wal`).length > 0, 'WAL checkpointed');
          copyFileSync(store, copy);
        },
        async restore() {
          rmSync(`${store}-wal`, { force: true });
          rmSync(`${store}-shm`, { force: true });
          copyFileSync(copy, store);
        },
        storeArgs: [],
      };
    },
  },
  {
    name: 'postgres',
    async setUp(t) {
      const { url, schema } = pgTestSchema(t);
      const dir = tempDir(t);
      await initCa({ dataDir: dir, caKeyBits: 2048, passphrase: PASSPHRASE, storeUrl: url });
      const dump = join(tempDir(t), 'backup.dump');
      const client = await pgRawClient(t, schema);
      return {
        dir,
        open: (readOnly = false) =>
          CertificateAuthority.open(dir, { passphrase: PASSPHRASE, readOnly, storeUrl: url }),
        async backup() {
          await exec('pg_dump', ['-n', schema, '-Fc', '-f', dump, PG_TEST_URL]);
        },
        async restore() {
          await client.query(`DROP SCHEMA ${schema} CASCADE`);
          await exec('pg_restore', ['-d', PG_TEST_URL, dump]);
        },
        storeArgs: ['--store', url],
      };
    },
  },
];

async function issue(ca: CertificateAuthority, name: string): Promise<string> {
  const csr = await createCsr(name, pair.privateKeyPem, pair.publicKeyPem);
  return (await ca.issueFromCsr(csr, { name, actor: 'test' })).serialHex;
}

function listed(pem: string): string[] {
  return parseCrl(pem)
    .entries.map((e) => e.serialHex)
    .sort();
}

async function inDeltaRegime(ca: CertificateAuthority): Promise<void> {
  const current = (await ca.store.getSetting<CaSettings>(CA_SETTINGS_KEY)) ?? DEFAULT_CA_SETTINGS;
  await ca.store.setSetting(CA_SETTINGS_KEY, {
    ...current,
    crlSyncFullMax: 1,
    crlDeltaMaxEntries: 1_000,
    crlFullIntervalMs: 365 * 24 * 3600_000,
  });
}

for (const engine of ENGINES) {
  t.test(`${engine.name}: a store restored from a backup taken before a revocation`, async (t) => {
    const s = await engine.setUp(t);
    const paths = caPaths(s.dir);
    let ca = await s.open();
    const alice = await issue(ca, 'alice');
    const carol = await issue(ca, 'carol');
    const dave = await issue(ca, 'dave');
    await ca.close();
    await s.backup();

    ca = await s.open();
    const revoked = await ca.revoke({ serialHex: carol }, 'keyCompromise', 'test');
    // A certificate issued and revoked after the backup: the restored store has no row of it.
    const erin = await issue(ca, 'erin');
    await ca.revoke({ serialHex: erin }, 'affiliationChanged', 'test');
    await ca.close();
    const published = readFileSync(paths.rootCrl);
    const publishedDelta = readFileSync(paths.deltaCrl);
    const publishedNumber = Number(parseCrl(published.toString()).crlNumber);
    t.same(listed(published.toString()), [carol, erin].sort());

    await s.restore();

    // Read-only (what `kds crl show` and `kds cert list` do): nothing is rewritten, a warning is given.
    const ro = await s.open(true);
    t.equal(ro.crlFileRepair, 'newer');
    t.equal(ro.revocationOf(carol), undefined, 'the store alone forgot the revocation');
    t.match(ro.crlFileWarnings().join('\n'), /NEWER than the store/);
    t.notMatch(ro.crlFileWarnings().join('\n'), /rewritten from the store/);
    await ro.close();
    const show = await runKds(['crl', 'show', '--data-dir', s.dir, ...s.storeArgs]);
    t.equal(show.code, 0, show.stderr);
    t.match(show.stderr, /published CRL is NEWER than the store/);
    t.notMatch(show.stderr, /rewritten from the store/);
    t.ok(readFileSync(paths.rootCrl).equals(published), 'crl show left root_crl.pem as it was');
    t.ok(readFileSync(paths.deltaCrl).equals(publishedDelta), 'and root_delta_crl.pem');

    // The next open with the key (the KDC's start): the revocations are back, the numbers above.
    ca = await s.open();
    const r = ca.rollbackRecovery;
    t.ok(r, 'recovered');
    t.equal(r?.publishedCrlNumber, publishedNumber);
    t.ok(r !== undefined && r.crlNumber > publishedNumber, 'the new CRL is numbered above the published one');
    t.same(
      r?.restored.map((x) => ({ serialHex: x.serialHex, reason: x.reason, revokedAt: x.revokedAt })),
      [{ serialHex: carol, reason: 'keyCompromise', revokedAt: revoked.revokedAt }],
      'the revocation with its reason and date',
    );
    t.same(
      r?.unknown.map((x) => x.serialHex),
      [erin],
    );
    t.match(ca.crlFileWarnings().join('\n'), /ROLLED BACK[^]*NOT recovered: key revocations/);
    t.same(ca.revocationOf(carol), { reason: 'keyCompromise', revokedAt: revoked.revokedAt });
    t.equal((await ca.store.getCertificate(carol))?.status, 'revoked', 'what the handshake check reads');
    t.equal((await ca.store.getCertificate(alice))?.status, 'active');
    t.same(listed(ca.currentCrlPem()), [carol, erin].sort(), 'the unknown serial stays on the CRL');
    t.same(listed(readFileSync(paths.rootCrl, 'utf8')), [carol, erin].sort());
    t.ok(Number(parseCrl(readFileSync(paths.rootCrl, 'utf8')).crlNumber) > publishedNumber);
    const audit = await ca.store.listAudit({ action: 'crl.rollback_recovered' });
    t.equal(audit.length, 1, 'audited');
    t.match(audit[0]?.detail, { publishedCrlNumber: publishedNumber, restored: 1, unknown: 1 });

    const next = await ca.revoke({ serialHex: dave }, 'superseded', 'test');
    t.ok(next.crlNumber > publishedNumber, 'the next revocation gets a CRL number never used');
    await ca.close();

    // Once: a later open finds nothing to recover, and the unknown serial stays on new complete CRLs.
    ca = await s.open();
    t.equal(ca.rollbackRecovery, undefined);
    await ca.refreshCrl(true);
    t.same(listed(ca.currentCrlPem()), [carol, dave, erin].sort());
    await ca.close();
  });

  t.test(`${engine.name}: a revocation published only on the delta CRL is recovered too`, async (t) => {
    const s = await engine.setUp(t);
    const paths = caPaths(s.dir);
    let ca = await s.open();
    await inDeltaRegime(ca);
    const carol = await issue(ca, 'carol');
    await ca.close();
    await s.backup();
    ca = await s.open();
    const revoked = await ca.revoke({ serialHex: carol }, 'keyCompromise', 'test');
    t.equal(revoked.published, 'delta');
    await ca.close();
    const deltaNumber = Number(parseCrl(readFileSync(paths.deltaCrl, 'utf8')).crlNumber);
    await s.restore();

    const ro = await s.open(true);
    t.equal(ro.deltaCrlFileRepair, 'newer');
    await ro.close();

    ca = await s.open();
    t.equal(ca.rollbackRecovery?.publishedCrlNumber, deltaNumber);
    t.ok(ca.revocationOf(carol));
    t.ok(ca.currentCrl().crlNumber > deltaNumber);
    t.same(listed(ca.currentCrlPem()), [carol]);
    await ca.close();
  });
}

t.test('a higher-numbered CRL signed by another CA is no evidence: replaced from the store', async (t) => {
  const s = await ENGINES[0]!.setUp(t);
  const paths = caPaths(s.dir);
  const other = tempDir(t);
  await initCa({ dataDir: other, caKeyBits: 2048, passphrase: PASSPHRASE });
  const oca = await CertificateAuthority.open(other, { passphrase: PASSPHRASE });
  for (const name of ['x', 'y', 'z'])
    await oca.revoke({ serialHex: await issue(oca, name) }, 'keyCompromise', 'test');
  await oca.close();
  const foreign = readFileSync(caPaths(other).rootCrl, 'utf8');
  t.ok(parseCrl(foreign).crlNumber > 3n);
  writeFileSync(paths.rootCrl, foreign);

  const show = await runKds(['crl', 'show', '--data-dir', s.dir]);
  t.equal(show.code, 0, show.stderr);
  t.match(show.stderr, /root_crl\.pem was unreadable: rewritten from the store/);
  t.notMatch(show.stderr, /NEWER/);
  const rewritten = readFileSync(paths.rootCrl, 'utf8');
  t.not(rewritten, foreign);
  t.equal(parseCrl(rewritten).crlNumber, 1n, "the store's CRL");

  writeFileSync(paths.rootCrl, foreign);
  const ca = await s.open();
  t.equal(ca.rollbackRecovery, undefined, 'nothing recovered from it');
  t.equal(ca.crlFileRepair, 'unreadable');
  t.equal(readFileSync(paths.rootCrl, 'utf8'), ca.currentCrlPem());
  await ca.close();
});
