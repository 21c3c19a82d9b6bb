// The KDC's public base URL (docs/protocol.md "HTTP endpoints", docs/cli.md `--public-url`): what the CA
// issues from a KDC's start on names the URL that KDC really answers on, not http://127.0.0.1:8443
// whatever the port: certificates' CRL distribution point `<url>/crl.pem` and the complete CRL's
// Freshest CRL `<url>/delta-crl.pem`, read back with our parser and with openssl, and fetched.
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { CA_SETTINGS_KEY, normalizePublicUrl, type CaSettings } from '../../../io/ca-files.js';
import { startKdc } from '../../../server/kdc/kdc.js';
import { parseCrl } from '../../../shared/pki/crl.js';
import { issueTestClient, startTestKdc } from '../../helpers/kdc-in-process.js';
import { initDataDir, TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { tempDir } from '../../helpers/tmp.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

const run = promisify(execFile);

t.setTimeout(120_000);

t.test('default: the address the KDC listens on, whatever the port; both URLs answer', async (t) => {
  const { kdc, dataDir } = await startTestKdc(t); // port 0: a port that is not 8443
  t.not(kdc.port, 8443);
  t.equal(kdc.publicUrl, kdc.httpUrl, 'http://127.0.0.1:<port bound>');
  const alice = await issueTestClient(kdc.ca, 'alice');
  t.same(alice.cert.crlUrls, [`${kdc.httpUrl}/crl.pem`], 'CRL distribution point (our parser)');
  const pem = join(tempDir(t), 'alice.pem');
  writeFileSync(pem, alice.certPem);
  const text = (await run('openssl', ['x509', '-in', pem, '-noout', '-ext', 'crlDistributionPoints'])).stdout;
  t.match(text, `URI:${kdc.httpUrl}/crl.pem`, 'CRL distribution point (openssl)');

  const crl = await fetch(alice.cert.crlUrls[0]!);
  t.equal(crl.status, 200, 'the distribution point answers');
  const served = parseCrl(await crl.text());
  t.ok(served.signatureValid(kdc.ca.caCert));
  t.same(served.freshestCrlUrls, [`${kdc.httpUrl}/delta-crl.pem`], 'the complete CRL names its delta here');
  const delta = await fetch(served.freshestCrlUrls[0]!);
  t.equal(delta.status, 200, 'the Freshest CRL answers');
  t.equal(parseCrl(await delta.text()).baseCrlNumber, served.crlNumber, 'a delta of this complete CRL');

  // Stored, so what a shell's `kds cert issue` signs while this KDC runs names it too.
  const stored = sqliteOf(kdc.ca.store).getSetting<CaSettings>(CA_SETTINGS_KEY);
  t.match(stored, { publicUrl: kdc.httpUrl, publicUrlExplicit: false });
  await kdc.close();
  const offline = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  t.teardown(() => offline.close());
  t.same((await issueTestClient(offline, 'bob')).cert.crlUrls, [`${kdc.httpUrl}/crl.pem`]);
});

t.test('--public-url: used from this start on, stored, kept by a later start without it', async (t) => {
  const dataDir = await initDataDir(t);
  const url = 'https://pki.example.org/kds/';
  const first = await startTestKdc(t, { dataDir, publicUrl: url });
  t.equal(first.kdc.publicUrl, 'https://pki.example.org/kds', 'trailing slash dropped');
  const alice = await issueTestClient(first.kdc.ca, 'alice');
  t.same(alice.cert.crlUrls, ['https://pki.example.org/kds/crl.pem']);
  // The complete CRL is re-issued at once, naming the new delta URL.
  const served = parseCrl(await (await fetch(`${first.kdc.httpUrl}/crl.pem`)).text());
  t.same(served.freshestCrlUrls, ['https://pki.example.org/kds/delta-crl.pem']);
  await first.kdc.close();

  const second = await startTestKdc(t, { dataDir });
  t.equal(second.kdc.publicUrl, 'https://pki.example.org/kds', 'an explicit URL outlives a restart');
  t.same((await issueTestClient(second.kdc.ca, 'bob')).cert.crlUrls, ['https://pki.example.org/kds/crl.pem']);
  await second.kdc.close();

  const third = await startTestKdc(t, { dataDir, publicUrl: 'http://127.0.0.1:1' });
  t.same((await issueTestClient(third.kdc.ca, 'carol')).cert.crlUrls, ['http://127.0.0.1:1/crl.pem']);
});

t.test('a bad public URL is a usage error before anything listens', async (t) => {
  const dataDir = await initDataDir(t);
  for (const bad of [
    'ftp://x.example',
    'kdc.example:8443',
    'http://u:p@x.example',
    'http://x.example/?a',
    'http://x .example',
  ]) {
    await t.rejects(
      startKdc({ dataDir, port: 0, passphrase: TEST_CA_PASSPHRASE, publicUrl: bad, log: () => {} }),
      { code: 'bad_request', message: /^--public-url / },
      bad,
    );
  }
  t.equal(normalizePublicUrl('HTTP://KDC.Example:80/a/b//'), 'http://kdc.example/a/b');
  t.equal(normalizePublicUrl('http://[::1]:8443'), 'http://[::1]:8443');
});
