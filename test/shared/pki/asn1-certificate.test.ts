// shared/pki/asn1-certificate.ts: the hand-written TBSCertificate encoder produces, for every spec, the
// same bytes node-forge produced for kds before it (the reference encoder below is the code x509.ts used,
// kept here only as the yardstick); the self-check after signing catches bad signatures; IP SAN bytes.
import t from 'tap';
import fc from 'fast-check';
import { constants, createPrivateKey, sign as cryptoSign } from 'node:crypto';
import forge from 'node-forge';
import { pooledKeyPair } from '../../helpers/template.js';
import {
  ipAddressBytes,
  keyUsageValue,
  encodeName,
  encodeTbsCertificate,
} from '../../../shared/pki/asn1-certificate.js';
import { derSequence, readOne, sequenceOf } from '../../../shared/pki/asn1.js';
import { computeKeyIdentifier, formatIp } from '../../../shared/pki/extensions.js';
import { OID } from '../../../shared/pki/oids.js';
import {
  buildParsedCertificate,
  parseCertificate,
  pemToDer,
  type CertificateSpec,
  type Signer,
} from '../../../shared/pki/x509.js';
import { DAY, makeCa } from './pki-fixtures.js';
import { asCertificateSigner } from '../../../shared/crypto/signer.js';

const ca = await makeCa('kds reference root');
const caKey = createPrivateKey(ca.keys.privateKeyPem);
const root = parseCertificate(ca.certPem);
// The run's pooled leaf key (slot 17, test/helpers/template.ts): RSA keygen is slow.
const subject = await pooledKeyPair(17);
const subjectSpki = pemToDer(subject.publicKeyPem, 'PUBLIC KEY');

// Synchronous signing is fine in a test (and keeps fast-check's runs simple).
const caSign: Signer = asCertificateSigner(async (tbs) =>
  cryptoSign('sha256', tbs, { key: caKey, padding: constants.RSA_PKCS1_PADDING }),
);
const selfSign: Signer = asCertificateSigner(async (tbs) =>
  cryptoSign('sha256', tbs, { key: subject.privateKeyPem, padding: constants.RSA_PKCS1_PADDING }),
);

// ---- the forge encoder x509.ts used before asn1-certificate.ts (buildParsedCertificate, unchanged in substance) ----

function forgeName(cn: string, ou: string | undefined): forge.pki.CertificateField[] {
  const utf8 = forge.asn1.Type.UTF8;
  const attrs: forge.pki.CertificateField[] = [];
  if (ou !== undefined)
    attrs.push({ type: OID.organizationalUnitName, value: ou, valueTagClass: utf8 } as never);
  attrs.push({ type: OID.commonName, value: cn, valueTagClass: utf8 } as never);
  return attrs;
}

function forgeTbs(spec: CertificateSpec, serialContentHex: string): Buffer {
  const octet = (b: Buffer) =>
    forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.OCTETSTRING, false, b.toString('binary'));
  const ou = spec.profile === 'admin' ? 'kds-admin' : spec.subjectOU;
  const ski = computeKeyIdentifier(subjectSpki);
  const aki = spec.issuer === 'self' ? undefined : Buffer.from(root.skiHex!, 'hex');
  let dns = spec.sans?.dns ?? [];
  const ip = spec.sans?.ip ?? [];
  if (spec.profile === 'client' || spec.profile === 'admin') dns = [spec.subjectCN];
  else if (spec.profile === 'server' && dns.length + ip.length === 0) dns = [spec.subjectCN];
  const exts: object[] = [];
  if (spec.profile === 'root-ca') {
    exts.push({ name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true });
    exts.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true });
    exts.push({ name: 'subjectKeyIdentifier', value: octet(ski) });
  } else {
    exts.push({ name: 'basicConstraints', cA: false, critical: true });
    if (spec.profile === 'server') {
      exts.push({ name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true });
      exts.push({ name: 'extKeyUsage', serverAuth: true });
    } else {
      exts.push({ name: 'keyUsage', digitalSignature: true, critical: true });
      exts.push({ name: 'extKeyUsage', clientAuth: true });
    }
    exts.push({
      name: 'subjectAltName',
      altNames: [...dns.map((value) => ({ type: 2, value })), ...ip.map((a) => ({ type: 7, ip: a }))],
    });
    exts.push({ name: 'subjectKeyIdentifier', value: octet(ski) });
    if (aki) exts.push({ name: 'authorityKeyIdentifier', keyIdentifier: aki.toString('binary') });
    if (spec.crlUrl !== undefined)
      exts.push({ name: 'cRLDistributionPoints', altNames: [{ type: 6, value: spec.crlUrl }] });
  }
  const cert = forge.pki.createCertificate();
  cert.serialNumber = serialContentHex;
  cert.validity.notBefore = new Date(spec.notBefore);
  cert.validity.notAfter = new Date(spec.notAfter);
  cert.setSubject(forgeName(spec.subjectCN, ou));
  cert.setIssuer(forgeName(spec.subjectCN, ou));
  cert.publicKey = forge.pki.publicKeyFromPem(subject.publicKeyPem);
  cert.setExtensions(exts);
  (cert as unknown as { siginfo: { algorithmOid: string } }).siginfo.algorithmOid =
    OID.sha256WithRSAEncryption;
  const internals = forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 };
  const der = Buffer.from(forge.asn1.toDer(internals.getTBSCertificate(cert)).getBytes(), 'binary');
  const fields = sequenceOf(readOne(der)).map((f) => f.bytes);
  if (spec.issuer !== 'self') fields[3] = root.subjectDer;
  fields[6] = subjectSpki;
  return derSequence(fields);
}

function tbsOf(der: Buffer): Buffer {
  return sequenceOf(readOne(der))[0]!.bytes;
}

/** The INTEGER content forge was given: the minimal positive two's complement of the serial. */
function serialContentHex(serialHex: string): string {
  let hex = serialHex.replace(/^(00)+(?=..)/, '');
  if (parseInt(hex.slice(0, 2), 16) >= 0x80) hex = `00${hex}`;
  return hex;
}

// ---- generators ----

const hexByte = fc.integer({ min: 0, max: 255 }).map((b) => b.toString(16).padStart(2, '0'));
const serial = fc
  .array(hexByte, { minLength: 1, maxLength: 20 })
  .map((a) => a.join(''))
  .filter((h) => /[1-9a-f]/.test(h));
const kdsName = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/);
const printable = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 30 })
  .filter((s) => s.length <= 64 && !/[\p{Cc}\p{Cs}]/u.test(s));
// 1000..9999 as forge writes them (before 1950 and from 2050: GeneralizedTime).
const time = fc.integer({ min: Date.UTC(1000, 0, 1), max: Date.UTC(9999, 0, 1) });
const dnsLabel = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10})$/);
const dnsName = fc.array(dnsLabel, { minLength: 1, maxLength: 3 }).map((l) => l.join('.'));
const ipv4 = fc.ipV4();
// The text forms forge's IPv6 parser handled correctly. It split on '.' first (so "::ffff:1.2.3.4" was
// refused) and, for a leading "::" that stands for one group ("::0:0:0:0:0:0:0"), wrote 14 octets
// instead of 16: those certificates were invalid (RFC 5280 4.2.1.6 "exactly sixteen octets"), and the new
// encoder writes the correct octets (tested below), so they cannot be byte-identical.
const forgeIpBytes = (ip: string): Buffer | undefined => {
  const b = (forge.util as unknown as { bytesFromIP(ip: string): string | null }).bytesFromIP(ip);
  return b === null ? undefined : Buffer.from(b, 'binary');
};
const ipv6 = fc.ipV6().filter((a) => !a.includes('.') && forgeIpBytes(a)?.length === 16);
const crlUrl = fc.option(
  fc.constantFrom('http://127.0.0.1:8443/crl.pem', 'https://kdc.example.org/root_crl.pem', 'http://h:1/c'),
  { nil: undefined },
);

const leafSpec = fc.record({
  profile: fc.constantFrom('client' as const, 'admin' as const, 'server' as const),
  serialHex: serial,
  name: kdsName,
  serverCN: printable,
  ou: fc.option(
    printable.filter((s) => s !== 'kds-admin'),
    { nil: undefined },
  ),
  a: time,
  b: time,
  dns: fc.array(dnsName, { maxLength: 3 }),
  ip: fc.array(fc.oneof(ipv4, ipv6), { maxLength: 3 }),
  crlUrl,
});

t.test('leaf certificates: the TBSCertificate is byte for byte what forge encoded', async (t) => {
  let checked = 0;
  await fc.assert(
    fc.asyncProperty(leafSpec, async (g) => {
      const [notBefore, notAfter] = g.a < g.b ? [g.a, g.b] : [g.b, g.a + 1000];
      const spec: CertificateSpec = {
        serialHex: g.serialHex,
        subjectCN: g.profile === 'server' ? g.serverCN : g.name,
        ...(g.profile === 'server' && g.ou !== undefined ? { subjectOU: g.ou } : {}),
        issuer: { certPem: ca.certPem },
        publicKeyPem: subject.publicKeyPem,
        notBefore,
        notAfter,
        profile: g.profile,
        ...(g.profile === 'server' ? { sans: { dns: g.dns, ip: g.ip } } : {}),
        ...(g.crlUrl !== undefined ? { crlUrl: g.crlUrl } : {}),
      };
      // A server certificate without SANs names its CN as dNSName, an IA5String: forge wrote a non-ASCII CN
      // there truncated to bytes (an invalid certificate); it is refused now.
      if (g.profile === 'server' && g.dns.length + g.ip.length === 0 && !/^[\x20-\x7e]+$/.test(g.serverCN)) {
        await buildParsedCertificate(spec, caSign).then(
          () => {
            throw new Error(`non-ASCII dNSName accepted: ${JSON.stringify(spec)}`);
          },
          (err: { code?: string }) => {
            if (err.code !== 'bad_request') throw err;
          },
        );
        checked++;
        return;
      }
      const built = await buildParsedCertificate(spec, caSign);
      const expected = forgeTbs(spec, serialContentHex(g.serialHex));
      if (!tbsOf(built.der).equals(expected)) {
        throw new Error(`TBS differs for ${JSON.stringify(spec)}`);
      }
      checked++;
    }),
    { numRuns: 150 },
  );
  t.equal(checked, 150, 'every generated spec compared');
});

t.test('the root profile: the TBSCertificate is byte for byte what forge encoded', async (t) => {
  await fc.assert(
    fc.asyncProperty(serial, printable, time, async (serialHex, cn, a) => {
      const spec: CertificateSpec = {
        serialHex,
        subjectCN: cn,
        issuer: 'self',
        publicKeyPem: subject.publicKeyPem,
        notBefore: a,
        notAfter: a + 3650 * DAY,
        profile: 'root-ca',
      };
      if (spec.notAfter >= Date.UTC(10000, 0, 1)) return;
      const built = await buildParsedCertificate(spec, selfSign);
      if (!tbsOf(built.der).equals(forgeTbs(spec, serialContentHex(serialHex)))) {
        throw new Error(`root TBS differs for ${JSON.stringify(spec)}`);
      }
    }),
    { numRuns: 25 },
  );
  // And the fixture's root (built through the same code) is one openssl accepted in x509.test.ts.
  t.ok(root.subjectDer.equals(root.issuerDer));
});

t.test('the self-check refuses a certificate whose signature does not verify', async (t) => {
  const now = Date.now();
  const spec: CertificateSpec = {
    serialHex: '0a1b2c',
    subjectCN: 'mallet',
    issuer: { certPem: ca.certPem },
    publicKeyPem: subject.publicKeyPem,
    notBefore: now,
    notAfter: now + DAY,
    profile: 'client',
  };
  const flipped: Signer = asCertificateSigner(async (tbs) => {
    const sig = await caSign(tbs);
    sig[sig.length >> 1]! ^= 0x01;
    return sig;
  });
  await t.rejects(
    buildParsedCertificate(spec, flipped),
    { code: 'internal' },
    'one bit of the signature flipped',
  );
  const otherTbs: Signer = asCertificateSigner(async (tbs) => caSign(Buffer.concat([tbs, Buffer.from([0])])));
  await t.rejects(buildParsedCertificate(spec, otherTbs), { code: 'internal' }, 'a signature of other bytes');
  await t.rejects(
    buildParsedCertificate(
      spec,
      asCertificateSigner(async () => Buffer.alloc(256)),
    ),
    { code: 'internal' },
    'zeros of the right length',
  );
  await t.rejects(
    buildParsedCertificate(
      spec,
      asCertificateSigner(async () => Buffer.alloc(0)),
    ),
    { code: 'internal' },
    'an empty signature',
  );
  await t.rejects(buildParsedCertificate(spec, selfSign), { code: 'internal' }, 'signed by the subject key');
  const ok = await buildParsedCertificate(spec, caSign);
  t.equal(ok.subjectCN, 'mallet', 'the honest signer passes');
  t.equal(ok.publicKeyPem, subject.publicKeyPem, 'the parsed form carries the subject key');
  t.equal(ok.keyBits, 2048);
});

t.test('IP addresses: the octets RFC 5280 4.2.1.6 requires', async (t) => {
  t.same([...ipAddressBytes('10.0.0.1')], [10, 0, 0, 1]);
  t.equal(ipAddressBytes('::1').toString('hex'), '0'.repeat(31) + '1');
  t.equal(ipAddressBytes('::').toString('hex'), '0'.repeat(32));
  t.equal(ipAddressBytes('fe80::').toString('hex'), 'fe80' + '0'.repeat(28));
  t.equal(
    ipAddressBytes('2001:db8::8:800:200c:417a').toString('hex'),
    '20010db8000000000008080020 0c417a'.replace(' ', ''),
  );
  // Forms forge could not encode (its parser split on '.' first): now right.
  t.equal(ipAddressBytes('::ffff:192.0.2.1').toString('hex'), '00000000000000000000ffffc0000201');
  t.equal(ipAddressBytes('64:ff9b::192.0.2.33').toString('hex'), '0064ff9b0000000000000000c0000221');
  t.equal(ipAddressBytes('1:2:3:4:5:6:1.2.3.4').toString('hex'), '00010002000300040005000601020304');
  t.equal(ipAddressBytes('::0:0:0:0:0:0:1').toString('hex'), '0'.repeat(31) + '1', 'forge wrote 14 octets');
  for (const bad of ['fe80::1%eth0', '1.2.3', '::g', 'localhost', '']) {
    t.throws(() => ipAddressBytes(bad), { code: 'bad_request' }, JSON.stringify(bad));
  }
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
      const bytes = ipAddressBytes(ip);
      // Round trip through the parser's formatter and back: the same octets.
      if (!ipAddressBytes(formatIp(bytes)).equals(bytes)) throw new Error(ip);
      // Wherever forge produced a valid address, the same octets.
      const viaForge = forgeIpBytes(ip);
      if (viaForge?.length === bytes.length && !viaForge.equals(bytes)) throw new Error(`forge ${ip}`);
    }),
    { numRuns: 500 },
  );
});

t.test('KeyUsage bit strings are DER named bit lists', async (t) => {
  t.equal(keyUsageValue(['digitalSignature']).toString('hex'), '03020780');
  t.equal(keyUsageValue(['digitalSignature', 'keyEncipherment']).toString('hex'), '030205a0');
  t.equal(keyUsageValue(['keyCertSign', 'cRLSign']).toString('hex'), '03020106');
  t.equal(keyUsageValue([]).toString('hex'), '030100');
});

t.test('encodeTbsCertificate: extensions omitted when there are none; names are UTF8String', async (t) => {
  const name = encodeName([{ oid: OID.commonName, value: 'é' }]);
  t.equal(name.toString('hex'), '300d310b300906035504030c02c3a9');
  const tbs = encodeTbsCertificate({
    serial: Buffer.from([1]),
    issuerName: name,
    notBefore: 0,
    notAfter: 1000,
    subjectName: name,
    spki: subjectSpki,
    extensions: [],
  });
  const fields = sequenceOf(readOne(tbs));
  t.equal(fields.length, 7, 'no [3] field');
  t.equal(fields[4]!.content.toString('latin1'), '\x17\x0d700101000000Z\x17\x0d700101000001Z');
});

t.test('specs the encoder cannot express are refused with codes', async (t) => {
  const now = Date.now();
  const base: CertificateSpec = {
    serialHex: '01',
    subjectCN: 'kdc.example',
    issuer: { certPem: ca.certPem },
    publicKeyPem: subject.publicKeyPem,
    notBefore: now,
    notAfter: now + DAY,
    profile: 'server',
  };
  const cases: [string, Partial<CertificateSpec>][] = [
    ['non-ASCII CRL URL', { crlUrl: 'http://h/é' }],
    ['year 10000', { notAfter: Date.UTC(10000, 0, 1) }],
    ['year 999', { notBefore: Date.UTC(999, 0, 1) }],
    ['lone surrogate in the CN', { subjectCN: 'a\ud800b' }],
    ['lone surrogate in the OU', { subjectOU: '\udc00' }],
    ['IPv6 zone index', { sans: { ip: ['fe80::1%eth0'] } }],
  ];
  for (const [what, change] of cases) {
    await t.rejects(buildParsedCertificate({ ...base, ...change }, caSign), { code: 'bad_request' }, what);
  }
});
