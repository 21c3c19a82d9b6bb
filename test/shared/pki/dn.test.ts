// shared/pki/dn.ts: Names decode attribute by attribute (multi-valued RDNs included), keep their exact
// bytes, show non-string values in the RFC 4514 `#hex` form, and the CN is the last one (as OpenSSL).
import t from 'tap';
import { derOid, derSequence, derSet, derTlv, readOne, TAG } from '../../../shared/pki/asn1.js';
import { attributeValues, commonNameOf, decodeName, nameToString } from '../../../shared/pki/dn.js';
import { OID } from '../../../shared/pki/oids.js';
import { parseCertificate } from '../../../shared/pki/x509.js';
import { makeCa } from './pki-fixtures.js';

const atv = (oid: string, value: Buffer): Buffer => derSequence([derOid(oid), value]);
const utf8 = (s: string): Buffer => derTlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
const printable = (s: string): Buffer => derTlv(TAG.PRINTABLE_STRING, Buffer.from(s, 'latin1'));

t.test('attributes in order, a multi-valued RDN, exact bytes', async (t) => {
  const der = derSequence([
    derSet([atv('2.5.4.6', printable('DE'))]),
    derSet([atv(OID.organizationalUnitName, utf8('kds-admin')), atv(OID.commonName, utf8('first'))]),
    derSet([atv(OID.commonName, utf8('zoë'))]),
  ]);
  const name = decodeName(readOne(der));
  t.ok(name.der.equals(der), 'the exact bytes are kept');
  t.same(name.attributes, [
    { oid: '2.5.4.6', value: 'DE' },
    { oid: OID.organizationalUnitName, value: 'kds-admin' },
    { oid: OID.commonName, value: 'first' },
    { oid: OID.commonName, value: 'zoë' },
  ]);
  t.same(attributeValues(name, OID.commonName), ['first', 'zoë']);
  t.equal(commonNameOf(name), 'zoë', 'the last CN, as OpenSSL reports');
  t.equal(nameToString(name), 'C=DE, OU=kds-admin, CN=first, CN=zoë');
});

t.test('a value that is no string is shown as #hex; an unknown type by its OID', async (t) => {
  const integer = derTlv(TAG.INTEGER, Buffer.from([0x05]));
  const name = decodeName(readOne(derSequence([derSet([atv('1.2.3.4', integer)])])));
  t.same(name.attributes, [{ oid: '1.2.3.4', value: '#020105' }]);
  t.equal(commonNameOf(name), '', 'no CN');
  t.equal(nameToString(name), '1.2.3.4=#020105');
});

t.test("a certificate's subject", async (t) => {
  const ca = await makeCa('kds dn root');
  const cert = parseCertificate(ca.certPem);
  const subject = decodeName(readOne(cert.subjectDer));
  t.equal(commonNameOf(subject), 'kds dn root');
  t.equal(nameToString(subject), 'CN=kds dn root');
});
