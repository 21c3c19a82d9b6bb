// shared/pki/fingerprint.ts: a certificate's fingerprint is what `openssl x509 -fingerprint -sha256`
// prints (without colons), pasted forms normalize to it, and a pin matches only its certificate.
import t from 'tap';
import { fingerprint, fingerprintMatches, normalizeFingerprint } from '../../../shared/pki/fingerprint.js';
import { pemToDer } from '../../../shared/pki/pem.js';
import { tempDir } from '../../helpers/tmp.js';
import { makeCa, openssl, writeFiles } from './pki-fixtures.js';

const ca = await makeCa('kds fingerprint root');
const other = await makeCa('kds fingerprint root');
const der = pemToDer(ca.certPem, 'CERTIFICATE');

t.test('the same value as openssl', async (t) => {
  const dir = tempDir(t);
  writeFiles(dir, { 'ca.pem': ca.certPem });
  const r = await openssl(['x509', '-in', 'ca.pem', '-noout', '-fingerprint', '-sha256'], dir);
  t.equal(r.code, 0, r.stderr);
  const printed = /Fingerprint=([0-9A-F:]+)/i.exec(r.stdout)?.[1];
  t.ok(printed !== undefined, r.stdout);
  t.equal(fingerprint(der), (printed ?? '').replace(/:/g, '').toLowerCase());
  t.equal(normalizeFingerprint(r.stdout.trim()), fingerprint(der), "openssl's whole line is accepted");
});

t.test('what people paste normalizes to 64 lowercase hex digits', async (t) => {
  const hex = fingerprint(der);
  const colons = hex.toUpperCase().replace(/(..)(?!$)/g, '$1:');
  for (const input of [
    hex,
    hex.toUpperCase(),
    colons,
    `sha256:${hex}`,
    `SHA-256:${colons}`,
    `  ${colons}  `,
  ]) {
    t.equal(normalizeFingerprint(input), hex, input);
  }
  for (const input of ['', hex.slice(1), `${hex}0`, hex.replace(/.$/, 'g'), `md5:${hex}`]) {
    t.throws(() => normalizeFingerprint(input), { code: 'bad_request' }, JSON.stringify(input));
  }
});

t.test('a pin matches its certificate only', async (t) => {
  const pin = fingerprint(der);
  t.ok(fingerprintMatches(der, pin));
  t.ok(fingerprintMatches(der, pin.toUpperCase().replace(/(..)(?!$)/g, '$1:')), 'any pasted form');
  t.notOk(fingerprintMatches(pemToDer(other.certPem, 'CERTIFICATE'), pin), 'same name, other key');
  t.throws(() => fingerprintMatches(der, 'not a fingerprint'), { code: 'bad_request' });
});
