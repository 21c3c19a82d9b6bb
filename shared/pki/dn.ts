// Distinguished names (RFC 5280 4.1.2.4): decoding the Name structure of certificates, CSRs and CRLs.
//
//   Name ::= RDNSequence;  RDNSequence ::= SEQUENCE OF RelativeDistinguishedName
//   RelativeDistinguishedName ::= SET SIZE (1..MAX) OF AttributeTypeAndValue
//   AttributeTypeAndValue ::= SEQUENCE { type AttributeType, value AttributeValue }
import { readOid, readString, sequenceOf, TAG, type Tlv } from './asn1.js';
import { OID } from './oids.js';

export interface NameAttribute {
  oid: string;
  value: string;
}

export interface DecodedName {
  der: Buffer; // exact bytes, for byte-wise comparison and for copying into issued objects
  attributes: NameAttribute[];
}

const SHORT: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '1.2.840.113549.1.9.1': 'emailAddress',
};

export function decodeName(tlv: Tlv): DecodedName {
  const attributes: NameAttribute[] = [];
  for (const rdn of sequenceOf(tlv)) {
    for (const atv of sequenceOf(rdn, TAG.SET)) {
      const [type, value] = sequenceOf(atv);
      if (!type || !value) throw new TypeError('unreachable');
      const oid = readOid(type);
      let text: string;
      try {
        text = readString(value);
      } catch {
        text = `#${value.bytes.toString('hex')}`; // RFC 4514 2.4 form for non-string values
      }
      attributes.push({ oid, value: text });
    }
  }
  return { der: tlv.bytes, attributes };
}

/** Every value of one attribute type, in order. */
export function attributeValues(name: DecodedName, oid: string): string[] {
  return name.attributes.filter((a) => a.oid === oid).map((a) => a.value);
}

/** The single CN ('' when absent; the last one when several, as OpenSSL reports). */
export function commonNameOf(name: DecodedName): string {
  const cns = attributeValues(name, OID.commonName);
  return cns.length === 0 ? '' : cns[cns.length - 1]!;
}

/** RFC 4514-ish one-line form for humans: `OU=kds-admin, CN=admin`. */
export function nameToString(name: DecodedName): string {
  return name.attributes.map((a) => `${SHORT[a.oid] ?? a.oid}=${a.value}`).join(', ');
}
