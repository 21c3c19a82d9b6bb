// shared/pki/crl.ts: CRL v2 built by CrlBuilder, checked by openssl (text, signature, revocation in
// `openssl verify -crl_check`) and by parseCrl; a 100k-entry list.
import t from 'tap';
import { sign as cryptoSign } from 'node:crypto';
import { pooledKeyPair } from '../../helpers/template.js';
import { CrlBuilder, encodeCrlEntry, parseCrl, type CrlEntry } from '../../../shared/pki/crl.js';
import { derToPem, pemToDer } from '../../../shared/pki/pem.js';
import { newSerialHex } from '../../../shared/pki/serial.js';
import { parseCertificate } from '../../../shared/pki/x509.js';
import { tempDir } from '../../helpers/tmp.js';
import { DAY, issue, makeCa, openssl, signerFor, writeFiles } from './pki-fixtures.js';
import { asSyncCertificateSigner } from '../../../shared/crypto/signer.js';

const ca = await makeCa('kds crl root');
const otherCa = await makeCa('kds crl root'); // same name, different key
// The run's pooled leaf key (slot 17, test/helpers/template.ts): RSA keygen is slow.
const leafKeys = await pooledKeyPair(17);
const root = parseCertificate(ca.certPem);
const now = Date.UTC(2030, 0, 15, 10, 30, 0);

function spec(crlNumber: bigint | number = 1) {
  return { issuerCertPem: ca.certPem, crlNumber, thisUpdate: now, nextUpdate: now + 7 * DAY };
}

t.test('openssl reads our CRL: serials, reasons, number, AKI, signature', async (t) => {
  const entries: CrlEntry[] = [
    { serialHex: newSerialHex(), revokedAt: now - 3000, reason: 'keyCompromise' },
    { serialHex: newSerialHex(), revokedAt: now - 2000, reason: 'unspecified' },
    { serialHex: '0a0b', revokedAt: now - 1000, reason: 'superseded' },
  ];
  const pem = await CrlBuilder.from(spec(7), entries).build(ca.sign);
  const dir = tempDir(t);
  writeFiles(dir, { 'crl.pem': pem, 'root.pem': ca.certPem, 'other.pem': otherCa.certPem });
  const text = await openssl(['crl', '-in', 'crl.pem', '-noout', '-text'], dir);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /Version 2 \(0x1\)/);
  t.match(text.stdout, /Signature Algorithm: sha256WithRSAEncryption/);
  t.match(text.stdout, /Issuer: CN = kds crl root/);
  t.match(text.stdout, /Last Update: Jan 15 10:30:00 2030 GMT/);
  t.match(text.stdout, /Next Update: Jan 22 10:30:00 2030 GMT/);
  t.match(text.stdout, /X509v3 CRL Number:\s*\n\s+7\n/);
  const aki = root.skiHex!.toUpperCase().replace(/(..)(?!$)/g, '$1:');
  t.match(text.stdout, new RegExp(`X509v3 Authority Key Identifier:\\s*\\n\\s+${aki}`));
  const serials = [...text.stdout.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase());
  t.same(
    serials,
    entries.map((e) => e.serialHex),
    'every serial, in order',
  );
  const reasons = [...text.stdout.matchAll(/X509v3 CRL Reason Code:\s*\n\s+(.+)\n/g)].map((m) => m[1]);
  t.same(reasons, ['Key Compromise', 'Superseded'], 'reasonCode present except for unspecified');

  const verified = await openssl(['crl', '-in', 'crl.pem', '-noout', '-CAfile', 'root.pem'], dir);
  t.equal(verified.code, 0);
  t.match(verified.stderr + verified.stdout, /verify OK/);
  const wrong = await openssl(['crl', '-in', 'crl.pem', '-noout', '-CAfile', 'other.pem'], dir);
  t.notMatch(wrong.stderr + wrong.stdout, /verify OK/, 'another key with the same name does not verify it');

  const number = await openssl(['crl', '-in', 'crl.pem', '-noout', '-crlnumber'], dir);
  t.equal(number.stdout.trim(), 'crlNumber=0x07');
});

t.test('openssl verify -crl_check rejects a revoked certificate', async (t) => {
  const revokedPem = await issue(ca, 'client', 'alice', leafKeys.publicKeyPem);
  const goodPem = await issue(ca, 'client', 'bob', leafKeys.publicKeyPem);
  const revoked = parseCertificate(revokedPem);
  const b = new CrlBuilder({
    issuerCertPem: ca.certPem,
    crlNumber: 2,
    thisUpdate: Date.now() - 1000,
    nextUpdate: Date.now() + DAY,
  });
  b.add({ serialHex: revoked.serialHex, revokedAt: Date.now() - 1000, reason: 'keyCompromise' });
  const dir = tempDir(t);
  writeFiles(dir, {
    'root.pem': ca.certPem,
    'crl.pem': await b.build(ca.sign),
    'alice.pem': revokedPem,
    'bob.pem': goodPem,
  });
  const bad = await openssl(
    ['verify', '-crl_check', '-CAfile', 'root.pem', '-CRLfile', 'crl.pem', 'alice.pem'],
    dir,
  );
  t.not(bad.code, 0);
  t.match(bad.stdout + bad.stderr, /certificate revoked/);
  const good = await openssl(
    ['verify', '-crl_check', '-CAfile', 'root.pem', '-CRLfile', 'crl.pem', 'bob.pem'],
    dir,
  );
  t.equal(good.code, 0, good.stderr);
});

t.test('parseCrl round trip and signature checks', async (t) => {
  const entries: CrlEntry[] = [
    { serialHex: newSerialHex(), revokedAt: now - 5500, reason: 'cACompromise' },
    { serialHex: newSerialHex(), revokedAt: now, reason: 'aACompromise' },
    { serialHex: newSerialHex(), revokedAt: now, reason: 'unspecified' },
    { serialHex: newSerialHex(), revokedAt: now, reason: 'certificateHold' },
  ];
  const big = (1n << 100n) + 5n;
  const pem = await CrlBuilder.from(spec(big), entries).build(ca.sign);
  const crl = parseCrl(pem);
  t.equal(crl.version, 2);
  t.equal(crl.crlNumber, big);
  t.equal(crl.thisUpdate, now);
  t.equal(crl.nextUpdate, now + 7 * DAY);
  t.equal(crl.issuerCN, 'kds crl root');
  t.ok(crl.issuerDer.equals(root.subjectDer), 'issuer = exact CA subject bytes');
  t.equal(crl.akiHex, root.skiHex);
  t.same(
    crl.entries,
    [{ ...entries[0]!, revokedAt: now - 6000 }, ...entries.slice(1)],
    'entries (times in whole seconds)',
  );
  t.ok(crl.signatureValid(ca.certPem));
  t.ok(crl.verifySignature(root), 'ParsedCertificate accepted too');
  t.notOk(crl.signatureValid(otherCa.certPem), 'same name, other key');
  const other = await makeCa('another root');
  t.notOk(crl.signatureValid(other.certPem), 'other issuer name');
  const der = pemToDer(pem, 'X509 CRL');
  const flipped = Buffer.from(der);
  flipped[flipped.length - 3] = flipped[flipped.length - 3]! ^ 0x40;
  t.notOk(parseCrl(derToPem(flipped, 'X509 CRL')).signatureValid(ca.certPem), 'flipped signature byte');
  t.equal(parseCrl(der).entries.length, 4, 'DER input');
});

t.test('empty CRL: revokedCertificates absent (RFC 5280 5.1.2.6)', async (t) => {
  const pem = await new CrlBuilder(spec(1)).build(ca.sign);
  const crl = parseCrl(pem);
  t.same(crl.entries, []);
  t.equal(crl.crlNumber, 1n);
  const dir = tempDir(t);
  writeFiles(dir, { 'crl.pem': pem, 'root.pem': ca.certPem });
  const text = await openssl(['crl', '-in', 'crl.pem', '-noout', '-text', '-CAfile', 'root.pem'], dir);
  t.match(text.stdout, /No Revoked Certificates\./);
  t.match(text.stderr + text.stdout, /verify OK/);
});

t.test('builder: duplicates, updates, sync signing, times after 2049', async (t) => {
  const b = new CrlBuilder(spec(1));
  const serial = newSerialHex();
  t.equal(b.add({ serialHex: serial, revokedAt: now, reason: 'superseded' }), true);
  t.equal(
    b.add({ serialHex: serial.toUpperCase(), revokedAt: now + 1, reason: 'keyCompromise' }),
    false,
    'same serial',
  );
  t.equal(b.size, 1);
  t.ok(b.has(serial));
  t.notOk(b.has(newSerialHex()));

  const later = Date.UTC(2050, 0, 1, 0, 0, 0);
  const pem = b.buildSync(
    asSyncCertificateSigner((tbs) => cryptoSign('sha256', tbs, ca.keys.privateKeyPem)),
    {
      crlNumber: 2,
      thisUpdate: later - DAY,
      nextUpdate: later,
    },
  );
  t.equal(b.crlNumber, 2n, 'update is kept');
  const crl = parseCrl(pem);
  t.equal(crl.crlNumber, 2n);
  t.equal(crl.thisUpdate, later - DAY);
  t.equal(crl.nextUpdate, later);
  t.same(crl.entries, [{ serialHex: serial, revokedAt: now, reason: 'superseded' }], 'first add wins');
  const der = pemToDer(pem, 'X509 CRL');
  const gt = der.indexOf(Buffer.from('20500101000000Z', 'latin1'));
  t.ok(gt > 0 && der[gt - 2] === 0x18, 'nextUpdate in 2050 is GeneralizedTime');
  const ut = der.indexOf(Buffer.from('491231000000Z', 'latin1'));
  t.ok(ut > 0 && der[ut - 2] === 0x17, 'thisUpdate in 2049 is UTCTime');
  const dir = tempDir(t);
  writeFiles(dir, { 'crl.pem': pem, 'root.pem': ca.certPem });
  const text = await openssl(['crl', '-in', 'crl.pem', '-noout', '-text', '-CAfile', 'root.pem'], dir);
  t.match(text.stdout, /Next Update: Jan {2}1 00:00:00 2050 GMT/);

  t.ok(
    parseCrl(await b.build(ca.sign, { crlNumber: 3, thisUpdate: now, nextUpdate: now + DAY })).signatureValid(
      root,
    ),
  );
});

t.test('builder and parser refuse bad input with codes', async (t) => {
  const b = new CrlBuilder(spec(1));
  t.throws(() => b.add({ serialHex: newSerialHex(), revokedAt: now, reason: 'removeFromCRL' }), {
    code: 'bad_reason',
  });
  t.throws(() => b.add({ serialHex: newSerialHex(), revokedAt: now, reason: 'nope' as never }), {
    code: 'bad_reason',
  });
  t.throws(() => b.add({ serialHex: 'zz', revokedAt: now, reason: 'superseded' }), { code: 'bad_request' });
  t.throws(() => encodeCrlEntry({ serialHex: '01', revokedAt: Number.NaN, reason: 'superseded' }), {
    code: 'bad_request',
  });
  t.equal(b.size, 0, 'refused entries are not added');
  t.throws(
    () => b.tbsCertList({ nextUpdate: now }),
    { code: 'bad_request' },
    'nextUpdate must follow thisUpdate',
  );
  t.throws(() => b.tbsCertList({ crlNumber: -1 }), { code: 'bad_request' });
  t.throws(() => b.tbsCertList({ crlNumber: 1n << 160n }), { code: 'bad_request' }, 'more than 20 octets');
  const leaf = await issue(ca, 'client', 'carol', leafKeys.publicKeyPem);
  t.throws(
    () => new CrlBuilder({ ...spec(1), issuerCertPem: leaf }),
    { code: 'bad_request' },
    'issuer must be a CA',
  );
  t.throws(() => new CrlBuilder({ ...spec(1), issuerCertPem: 'garbage' }), { code: 'malformed_pem' });
  await t.rejects(
    new CrlBuilder(spec(1)).build(signerFor(otherCa.keys)),
    { code: 'internal' },
    'wrong signing key',
  );

  const good = pemToDer(await new CrlBuilder(spec(1)).build(ca.sign), 'X509 CRL');
  const cases: [string, string | Buffer][] = [
    ['garbage', 'garbage'],
    ['a certificate', ca.certPem],
    ['truncated', derToPem(good.subarray(0, good.length - 10), 'X509 CRL')],
    ['trailing bytes', Buffer.concat([good, Buffer.from([0])])],
  ];
  for (const [what, input] of cases) t.throws(() => parseCrl(input), { code: 'malformed_pem' }, what);
});

t.test(
  '100k entries: built from pre-encoded entries, parsed with the right count',
  { timeout: 120_000 },
  async (t) => {
    const N = 100_000;
    const entries: CrlEntry[] = [];
    for (let i = 0; i < N; i++) {
      entries.push({
        serialHex: newSerialHex(),
        revokedAt: now - i * 1000,
        reason: i % 3 === 0 ? 'unspecified' : 'keyCompromise',
      });
    }
    let t0 = performance.now();
    const b = CrlBuilder.from(spec(1), entries);
    const loadMs = performance.now() - t0;
    t.equal(b.size, N);
    t0 = performance.now();
    await b.build(ca.sign, { crlNumber: 2 });
    const firstMs = performance.now() - t0;
    // One more revocation: add + rebuild + re-sign (the path a revocation takes in the CA).
    const last = newSerialHex();
    t0 = performance.now();
    b.add({ serialHex: last, revokedAt: now, reason: 'superseded' });
    const pem = await b.build(ca.sign, { crlNumber: 3 });
    const revokeMs = performance.now() - t0;
    t0 = performance.now();
    const crl = parseCrl(pem);
    const parseMs = performance.now() - t0;
    t.equal(crl.entries.length, N + 1);
    t.equal(crl.crlNumber, 3n);
    t.same(crl.entries[N], { serialHex: last, revokedAt: now, reason: 'superseded' });
    t.equal(crl.entries[1]!.serialHex, entries[1]!.serialHex);
    t.ok(crl.signatureValid(root));
    console.log(
      `# 100k CRL: ${(pem.length / 1e6).toFixed(1)} MB PEM; load ${loadMs.toFixed(0)} ms, first build ${firstMs.toFixed(0)} ms, ` +
        `add+rebuild+sign ${revokeMs.toFixed(0)} ms, parse ${parseMs.toFixed(0)} ms`,
    );
  },
);
