// shared/pki/certificate-cache.ts: a certificate is parsed once per distinct DER (the same object comes
// back, by its DER or by PEM text of it, whatever the line breaks), the cache holds at most `limit`,
// the oldest leaves first, and what fails to parse is never kept.
import t from 'tap';
import { CertificateCache } from '../../../shared/pki/certificate-cache.js';
import { pemToDer } from '../../../shared/pki/pem.js';
import { makeCa } from './pki-fixtures.js';

const [a, b, c] = await Promise.all([makeCa('root a'), makeCa('root b'), makeCa('root c')]);

t.test('one parse per DER; PEM and DER of the same certificate give the same object', async (t) => {
  const cache = new CertificateCache(8);
  const byPem = cache.parsePem(a.certPem);
  t.equal(byPem.subjectCN, 'root a');
  t.equal(cache.parsePem(a.certPem), byPem, 'the same text: the same object');
  const der = pemToDer(a.certPem, 'CERTIFICATE');
  t.equal(cache.parse(der), byPem, 'its DER: the same object');
  t.equal(cache.parse(Buffer.from(der)), byPem, 'a copy of the bytes: the same object');
  const rewrapped = `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`;
  t.equal(cache.parsePem(rewrapped), byPem, 'other line breaks: found by the DER');
  t.equal(cache.size, 1);
  t.not(cache.parsePem(b.certPem), byPem, 'another certificate: its own object');
  t.equal(cache.parsePem(b.certPem).subjectCN, 'root b');
});

t.test('bounded: at the limit the oldest leaves, and is parsed again when asked for', async (t) => {
  const cache = new CertificateCache(2);
  const first = cache.parsePem(a.certPem);
  cache.parsePem(b.certPem);
  cache.parsePem(c.certPem);
  t.equal(cache.size, 2);
  const again = cache.parsePem(a.certPem);
  t.not(again, first, 'evicted: a new parse');
  t.equal(again.fingerprint256, first.fingerprint256);
  t.equal(cache.size, 2);
});

t.test('what fails to parse throws every time and is not kept', async (t) => {
  const cache = new CertificateCache(4);
  const der = pemToDer(a.certPem, 'CERTIFICATE');
  const broken = Buffer.from(der);
  broken[0] = 0x31; // a SET where the Certificate SEQUENCE must be
  t.throws(() => cache.parse(broken), { code: 'malformed' });
  t.throws(() => cache.parse(broken), { code: 'malformed' });
  t.throws(() => cache.parsePem('-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n'), {
    code: 'malformed',
  });
  t.equal(cache.size, 0);
});
