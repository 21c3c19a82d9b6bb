// Delta CRLs (RFC 5280 5.2.4 / 5.2.6) in both regimes, with openssl as the
// independent verifier: below crlSyncFullMax every revocation re-issues the complete CRL (and an empty
// delta with the same number); from it on a revocation publishes only the delta, and the complete CRL is
// re-issued on the schedule (delta size, interval, KDC start/stop), never on the revocation's path.
// The thresholds are lowered through the CA settings so a handful of certificates cross them.
import t from 'tap';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { CA_SETTINGS_KEY, DEFAULT_CA_SETTINGS, type CaSettings } from '../../../io/ca-files.js';
import { parseCrl } from '../../../shared/pki/crl.js';
import type { ParsedCertificate } from '../../../shared/pki/x509.js';
import { freshCa, openssl, opensslCsr, PASSPHRASE } from './fixture.js';
import { tempDir } from '../../helpers/tmp.js';

t.setTimeout(240_000);

const { dir } = await freshCa(t, { hosts: ['kdc.example.org'], port: 9443 });
const work = tempDir(t);
const rootCa = join(dir, 'root_ca.pem');
const fullFile = join(dir, 'root_crl.pem');
const deltaFile = join(dir, 'root_delta_crl.pem');

/** Lower the regime thresholds in the store's CA settings, then (re)open the CA with them. */
async function openWith(settings: Partial<CaSettings>): Promise<CertificateAuthority> {
  const setup = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
  const current = (await setup.store.getSetting<CaSettings>(CA_SETTINGS_KEY)) ?? DEFAULT_CA_SETTINGS;
  await setup.store.setSetting(CA_SETTINGS_KEY, { ...current, ...settings });
  await setup.close();
  return CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
}

let ca = await openWith({ crlSyncFullMax: 3, crlDeltaMaxEntries: 3, crlFullIntervalMs: 86_400_000 });
t.teardown(() => ca.close());

const certs = new Map<string, ParsedCertificate>();
async function issue(name: string): Promise<ParsedCertificate> {
  const csr = await opensslCsr(work, `${name}.csr`, { cn: name });
  const cert = await ca.issueFromCsr(csr, { name, actor: 'test' });
  writeFileSync(join(work, `${name}.pem`), cert.pem);
  certs.set(name, cert);
  return cert;
}

/**
 * openssl verify -crl_check [-use_deltas -extended_crl] with the published files: "OK" or the error
 * text. `-extended_crl` is needed with deltas: without it OpenSSL 3.0 also scores a delta CRL as a
 * candidate BASE CRL and takes the newest, so once the delta is a second newer than the complete CRL a
 * certificate listed only on the complete CRL verifies OK (crl-delta-openssl.test.ts shows it).
 */
async function opensslVerdict(name: string, withDelta: boolean): Promise<string> {
  const args = ['verify', '-crl_check', '-CAfile', rootCa, '-CRLfile', fullFile];
  if (withDelta) args.push('-use_deltas', '-extended_crl', '-CRLfile', deltaFile);
  const r = await openssl([...args, join(work, `${name}.pem`)]);
  return r.code === 0 && /: OK/.test(r.stdout) ? 'OK' : `${r.stdout}${r.stderr}`;
}

/** The newest CRL number after each step: the one sequence complete and delta CRLs share. */
const numbers: number[] = [];
const pairs: [number, number][] = [];
function recordNumbers(): void {
  const full = ca.currentCrl().crlNumber;
  const delta = ca.currentDeltaCrl()!;
  pairs.push([full, delta.crlNumber]);
  if (numbers.at(-1) !== delta.crlNumber) numbers.push(delta.crlNumber);
}

for (const name of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace']) await issue(name);

t.test('small regime: the complete CRL is re-issued on every revocation', async (t) => {
  const start = ca.currentCrl();
  t.equal(ca.currentDeltaCrl()!.baseCrlNumber, start.crlNumber, 'init: delta N completes complete CRL N');
  recordNumbers();
  const out = await ca.revoke({ name: 'alice' }, 'keyCompromise', 'test');
  t.match(out, { status: 'revoked', published: 'full', crlNumber: start.crlNumber + 1 });
  const full = parseCrl(readFileSync(fullFile, 'utf8'));
  const delta = parseCrl(readFileSync(deltaFile, 'utf8'));
  t.same(
    full.entries.map((e) => e.serialHex),
    [certs.get('alice')!.serialHex],
  );
  t.equal(full.baseCrlNumber, undefined, 'the complete CRL has no delta indicator');
  t.same(full.freshestCrlUrls, ['http://kdc.example.org:9443/delta-crl.pem'], 'Freshest CRL names the delta');
  // RFC 5280 5.2.3: issued at the same time -> the same number and the same revocation information.
  t.equal(delta.crlNumber, full.crlNumber);
  t.equal(delta.baseCrlNumber, full.crlNumber);
  t.same(delta.entries, []);
  t.ok(delta.signatureValid(ca.caCert) && full.signatureValid(ca.caCert));
  t.match(await opensslVerdict('alice', true), /certificate revoked/);
  t.equal(await opensslVerdict('bob', true), 'OK');
  recordNumbers();
});

t.test('large regime: a revocation publishes only the delta, durably, before it returns', async (t) => {
  await ca.revoke({ name: 'bob' }, 'affiliationChanged', 'test'); // 2 entries: still small
  recordNumbers();
  const fullBefore = readFileSync(fullFile, 'utf8');
  const base = ca.currentCrl();
  const out = await ca.revoke({ name: 'carol' }, 'keyCompromise', 'test'); // 3 entries: large
  recordNumbers();
  t.match(out, { status: 'revoked', published: 'delta' });
  t.equal(readFileSync(fullFile, 'utf8'), fullBefore, 'root_crl.pem untouched');
  t.equal(ca.currentCrl().crlNumber, base.crlNumber, 'no new complete CRL');
  const delta = parseCrl(readFileSync(deltaFile, 'utf8'));
  t.equal(readFileSync(deltaFile, 'utf8'), ca.currentDeltaCrlPem(), 'the file is the stored delta');
  t.equal(delta.baseCrlNumber, BigInt(base.crlNumber), 'BaseCRLNumber = the complete CRL it completes');
  t.equal(delta.crlNumber, BigInt(base.crlNumber + 1), 'the next number of the shared sequence');
  t.equal(out.crlNumber, base.crlNumber + 1);
  t.same(
    delta.entries.map((e) => [e.serialHex, e.reason]),
    [[certs.get('carol')!.serialHex, 'keyCompromise']],
    'only what changed since the base',
  );
  t.ok(delta.signatureValid(ca.caCert));

  // openssl: revoked only when the delta is consulted; the others as before.
  t.equal(await opensslVerdict('carol', false), 'OK', 'not on the complete CRL');
  t.match(await opensslVerdict('carol', true), /certificate revoked/, 'on the delta');
  t.match(await opensslVerdict('alice', true), /certificate revoked/);
  t.equal(await opensslVerdict('dave', true), 'OK');
  const deltaText = (await openssl(['crl', '-in', deltaFile, '-noout', '-text'])).stdout;
  t.match(deltaText, new RegExp(`X509v3 Delta CRL Indicator: critical\\s+${base.crlNumber}\\n`));
  const fullText = (await openssl(['crl', '-in', fullFile, '-noout', '-text'])).stdout;
  t.match(
    fullText,
    /X509v3 Freshest CRL:\s+Full Name:\s+URI:http:\/\/kdc\.example\.org:9443\/delta-crl\.pem/,
  );
  t.notMatch(fullText, /Delta CRL Indicator/);

  // Another process sees the delta through the change counter; kds cert verify's view agrees.
  const other = await CertificateAuthority.open(dir, { readOnly: true });
  t.teardown(() => other.close());
  t.equal(other.currentDeltaCrlPem(), ca.currentDeltaCrlPem());
  t.match(other.verifyCertificateFile(certs.get('carol')!.pem), { code: 'revoked', reason: 'keyCompromise' });

  const again = await ca.revoke({ name: 'dave' }, 'cessationOfOperation', 'test');
  recordNumbers();
  t.equal(again.crlNumber, out.crlNumber + 1);
  t.same(
    parseCrl(readFileSync(deltaFile, 'utf8')).entries.map((e) => e.serialHex),
    [certs.get('carol')!.serialHex, certs.get('dave')!.serialHex],
  );
  t.equal(ca.currentCrl().crlNumber, base.crlNumber, 'still no new complete CRL (2 < 3 delta entries)');
  t.equal(ca.fullCrlDue(), false);
});

t.test('the schedule: the complete CRL is re-issued after the acknowledgement', async (t) => {
  const base = ca.currentCrl();
  const out = await ca.revoke({ name: 'erin' }, 'keyCompromise', 'test'); // the delta reaches 3
  t.match(out, { published: 'delta' });
  t.equal(ca.currentCrl().crlNumber, base.crlNumber, 'not re-issued before the revocation returned');
  recordNumbers();
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  const full = ca.currentCrl();
  t.equal(full.crlNumber, out.crlNumber + 1, 'complete CRL re-issued with the next number');
  recordNumbers();
  const parsed = parseCrl(readFileSync(fullFile, 'utf8'));
  t.equal(parsed.entries.length, 5, 'it lists every revocation');
  t.equal(ca.currentDeltaCrl()!.baseCrlNumber, full.crlNumber);
  t.equal(ca.currentDeltaCrl()!.entries, 0, 'a fresh, empty delta');
  t.match(await opensslVerdict('erin', true), /certificate revoked/);
  t.match(await opensslVerdict('erin', false), /certificate revoked/);
  t.equal(await ca.maintainCrl(), undefined, 'nothing due any more');
});

t.test('KDC start/stop: publishFullCrlIfStale folds a non-empty delta in', async (t) => {
  await ca.revoke({ name: 'frank' }, 'keyCompromise', 'test');
  recordNumbers();
  const before = ca.currentCrl().crlNumber;
  t.equal(ca.fullCrlDue(), false, 'one entry: not due by the schedule');
  const state = await ca.publishFullCrlIfStale();
  recordNumbers();
  t.ok(state !== undefined && state.crlNumber > before);
  t.equal(parseCrl(readFileSync(fullFile, 'utf8')).entries.length, 6);
  t.equal(await ca.publishFullCrlIfStale(), undefined, 'not stale any more');
});

t.test('one numbering sequence, strictly increasing, for complete and delta CRLs', async (t) => {
  // The delta is always the newest CRL: numbered at or above the complete CRL it completes.
  for (const [full, delta] of pairs) t.ok(delta >= full, `delta ${delta} >= complete ${full}`);
  for (let i = 1; i < numbers.length; i++) t.ok(numbers[i]! > numbers[i - 1]!, `${numbers.join(' < ')}`);
  t.ok(numbers.length >= 8);
});

t.test('a one-shot process leaves consistent files; damaged delta files are rebuilt', async (t) => {
  // Like `kds cert revoke`: open, revoke, close at once (a scheduled re-issue would be dropped).
  await ca.close();
  ca = await openWith({ crlDeltaMaxEntries: 1 });
  const out = await ca.revoke({ name: 'grace' }, 'keyCompromise', 'test');
  t.match(out, { published: 'delta' });
  await ca.close();
  const full = parseCrl(readFileSync(fullFile, 'utf8'));
  const delta = parseCrl(readFileSync(deltaFile, 'utf8'));
  const listed = new Set([...full.entries, ...delta.entries].map((e) => e.serialHex));
  t.equal(listed.size, 7, 'complete + delta list every revocation row');
  t.ok(listed.has(certs.get('grace')!.serialHex));
  t.equal(delta.baseCrlNumber, full.crlNumber);
  t.match(await opensslVerdict('grace', true), /certificate revoked/);

  const good = readFileSync(deltaFile, 'utf8');
  for (const [what, damage, expected] of [
    ['garbage', () => writeFileSync(deltaFile, 'garbage'), 'unreadable'],
    ['missing', () => rmSync(deltaFile), 'missing'],
  ] as const) {
    damage();
    const again = await CertificateAuthority.open(dir, { readOnly: true });
    t.equal(again.deltaCrlFileRepair, expected, what);
    t.equal(readFileSync(deltaFile, 'utf8'), good, `${what}: rebuilt from the store`);
    await again.close();
  }
  // With the key, opening folds the due delta into a new complete CRL (the threshold is 1).
  ca = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
  t.equal(parseCrl(readFileSync(fullFile, 'utf8')).entries.length, 7);
  t.equal(ca.currentDeltaCrl()!.entries, 0);
});

t.test('parser: a delta indicator must be critical; delta CRLs carry no Freshest CRL', async (t) => {
  const { CrlBuilder } = await import('../../../shared/pki/crl.js');
  const spec = {
    issuerCertPem: ca.caCertPem,
    crlNumber: 5,
    thisUpdate: Date.now(),
    nextUpdate: Date.now() + 1e6,
  };
  t.throws(() => new CrlBuilder({ ...spec, deltaBase: 4, freshestCrlUrl: 'http://x/d.pem' }), {
    code: 'bad_request',
  });
  t.throws(() => new CrlBuilder({ ...spec, deltaBase: 6 }).tbsCertList(), { code: 'bad_request' });
  const delta = parseCrl(ca.currentDeltaCrlPem()!);
  // Flip the critical flag of the delta CRL indicator (BOOLEAN TRUE -> FALSE): refused as malformed.
  const der = Buffer.from(delta.der);
  const marker = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x1b, 0x01, 0x01, 0xff]);
  const at = der.indexOf(marker);
  t.ok(at > 0, 'indicator found');
  der[at + marker.length - 1] = 0x00;
  t.throws(() => parseCrl(der), { code: 'malformed_pem' });
});
