// How a relying party must ask openssl to use our delta CRLs (RFC 5280 5.2.4), pinned by a case that
// once made crl-delta.test.ts flaky: a certificate revoked on the COMPLETE CRL, then a later revocation
// published only in the delta CRL, signed a second or more after the complete one.
//
// OpenSSL 3.0's CRL selection (crypto/x509/x509_vfy.c get_crl_score) skips delta CRLs as candidate
// base CRLs only when extended CRL support is on; with plain `-crl_check -use_deltas` it scores the
// delta like a complete CRL and keeps the newest, so the certificate on the complete CRL alone verifies
// "OK". With `-extended_crl` it takes the complete CRL as the base and applies the delta: revoked. Our
// CRLs are the same in both runs; docs/cli.md tells users to pass -extended_crl (and `kds cert verify`
// reads both lists itself, cli/crl-status.ts).
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { CA_SETTINGS_KEY, DEFAULT_CA_SETTINGS, type CaSettings } from '../../../io/ca-files.js';
import { parseCrl } from '../../../shared/pki/crl.js';
import { freshCa, openssl, opensslCsr, PASSPHRASE } from './fixture.js';
import { tempDir } from '../../helpers/tmp.js';

t.setTimeout(120_000);

const { dir } = await freshCa(t, { hosts: ['kdc.example.org'], port: 9443 });
const work = tempDir(t);
// Lower the regime threshold so the third revocation publishes only a delta.
const setup = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
const settings = (await setup.store.getSetting<CaSettings>(CA_SETTINGS_KEY)) ?? DEFAULT_CA_SETTINGS;
await setup.store.setSetting(CA_SETTINGS_KEY, {
  ...settings,
  crlSyncFullMax: 3,
  crlDeltaMaxEntries: 3,
  crlFullIntervalMs: 86_400_000,
});
await setup.close();
const ca = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
t.teardown(() => ca.close());

for (const name of ['alice', 'bob', 'carol']) {
  const csr = await opensslCsr(work, `${name}.csr`, { cn: name });
  const cert = await ca.issueFromCsr(csr, { name, actor: 'test' });
  writeFileSync(join(work, `${name}.pem`), cert.pem);
}

t.test('a delta newer than the complete CRL: openssl needs -extended_crl', async (t) => {
  await ca.revoke({ name: 'alice' }, 'keyCompromise', 'test'); // complete CRL re-issued
  await ca.revoke({ name: 'bob' }, 'keyCompromise', 'test'); // complete CRL re-issued
  // CRL times have one-second resolution: make the delta's thisUpdate strictly later.
  await new Promise((r) => setTimeout(r, 1_100));
  t.match(await ca.revoke({ name: 'carol' }, 'keyCompromise', 'test'), { published: 'delta' });
  const full = parseCrl(readFileSync(join(dir, 'root_crl.pem'), 'utf8'));
  const delta = parseCrl(readFileSync(join(dir, 'root_delta_crl.pem'), 'utf8'));
  t.ok(delta.thisUpdate > full.thisUpdate, 'the delta is newer than the complete CRL');

  const verify = async (name: string, extended: boolean) => {
    const r = await openssl([
      'verify',
      '-crl_check',
      '-use_deltas',
      ...(extended ? ['-extended_crl'] : []),
      '-CAfile',
      join(dir, 'root_ca.pem'),
      '-CRLfile',
      join(dir, 'root_crl.pem'),
      '-CRLfile',
      join(dir, 'root_delta_crl.pem'),
      join(work, `${name}.pem`),
    ]);
    return `${r.stdout}${r.stderr}`;
  };
  t.match(await verify('alice', true), /certificate revoked/, 'on the complete CRL: revoked');
  t.match(await verify('carol', true), /certificate revoked/, 'on the delta: revoked');
  // Recorded, not asserted (a later OpenSSL may fix it): what the same check says without the flag.
  const plain = await verify('alice', false);
  t.comment(`without -extended_crl, openssl says for alice: ${plain.trim().split('\n').at(-1)}`);
});
