// Decoding the X.509 v3 extensions kds issues and checks (RFC 5280 section 4.2), shared by certificates
// (tbsCertificate.extensions) and CSRs (the PKCS#9 extensionRequest attribute), and the key identifier
// computation of RFC 5280 4.2.1.2.
import { createHash } from 'node:crypto';
import {
  contextTag,
  expectTagOf,
  readBitString,
  readBoolean,
  readNamedBits,
  readOid,
  readOne,
  readSmallInt,
  sequenceOf,
  TAG,
  childrenOf,
  type Tlv,
} from './asn1.js';
import { InputError } from '../errors.js';
import { EKU_NAMES, EXTENSION_NAMES, KEY_USAGE_BITS, OID } from './oids.js';

export interface ExtensionInfo {
  oid: string;
  name: string; // RFC 5280 name, or the dotted OID when kds does not know it
  critical: boolean;
}

export interface DecodedExtensions {
  list: ExtensionInfo[];
  basicConstraints?: { ca: boolean; pathLen?: number; critical: boolean };
  keyUsage?: string[];
  extKeyUsage?: string[];
  sans: { dns: string[]; ip: string[]; other: string[] };
  skiHex?: string;
  akiHex?: string;
  crlUrls: string[];
  /** Critical extensions kds does not understand: RFC 5280 4.2 says such a certificate MUST be rejected. */
  unknownCritical: string[];
}

const KNOWN = new Set(Object.keys(EXTENSION_NAMES));

function malformed(what: string): InputError {
  return new InputError('malformed', `malformed extension: ${what}`);
}

/** Decode `Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension`. */
export function decodeExtensions(seq: Tlv): DecodedExtensions {
  const out: DecodedExtensions = {
    list: [],
    sans: { dns: [], ip: [], other: [] },
    crlUrls: [],
    unknownCritical: [],
  };
  const seen = new Set<string>();
  for (const ext of sequenceOf(seq)) {
    const parts = sequenceOf(ext);
    if (parts.length < 2 || parts.length > 3) throw malformed('Extension shape');
    const oid = readOid(parts[0]!);
    const critical = parts.length === 3 ? readBoolean(parts[1]!) : false;
    const valueTlv = expectTagOf(parts[parts.length - 1]!, TAG.OCTET_STRING);
    // RFC 5280 4.2: "A certificate MUST NOT include more than one instance of a particular extension."
    if (seen.has(oid)) throw malformed(`duplicate extension ${oid}`);
    seen.add(oid);
    out.list.push({ oid, name: EXTENSION_NAMES[oid] ?? oid, critical });
    if (critical && !KNOWN.has(oid)) out.unknownCritical.push(oid);
    const value = valueTlv.content;
    switch (oid) {
      case OID.basicConstraints:
        out.basicConstraints = { ...decodeBasicConstraints(value), critical };
        break;
      case OID.keyUsage:
        out.keyUsage = readNamedBits(readOne(value, TAG.BIT_STRING)).map(
          (b) => KEY_USAGE_BITS[b] ?? `bit${b}`,
        );
        break;
      case OID.extKeyUsage:
        out.extKeyUsage = sequenceOf(readOne(value)).map((o) => {
          const id = readOid(o);
          return EKU_NAMES[id] ?? id;
        });
        break;
      case OID.subjectAltName:
        decodeGeneralNames(readOne(value), out.sans);
        break;
      case OID.subjectKeyIdentifier:
        out.skiHex = readOne(value, TAG.OCTET_STRING).content.toString('hex');
        break;
      case OID.authorityKeyIdentifier:
        for (const field of sequenceOf(readOne(value))) {
          // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] KeyIdentifier OPTIONAL, ... }
          if (field.tag === contextTag(0, false)) out.akiHex = field.content.toString('hex');
        }
        break;
      case OID.cRLDistributionPoints:
        out.crlUrls = decodeCrlDistributionPoints(readOne(value));
        break;
      default:
        break;
    }
  }
  return out;
}

function decodeBasicConstraints(value: Buffer): { ca: boolean; pathLen?: number } {
  // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL }
  const fields = sequenceOf(readOne(value));
  let ca = false;
  let pathLen: number | undefined;
  for (const f of fields) {
    if (f.tag === TAG.BOOLEAN) ca = readBoolean(f);
    else if (f.tag === TAG.INTEGER) pathLen = readSmallInt(f);
    else throw malformed('basicConstraints field');
  }
  return pathLen === undefined ? { ca } : { ca, pathLen };
}

/** GeneralNames into dns / ip / other (other = `email:`, `uri:`, or `tag[n]` for the rest). */
function decodeGeneralNames(seq: Tlv, into: { dns: string[]; ip: string[]; other: string[] }): void {
  for (const gn of sequenceOf(seq)) {
    switch (gn.tag) {
      case contextTag(2, false): // dNSName [2] IA5String
        into.dns.push(gn.content.toString('latin1'));
        break;
      case contextTag(7, false): // iPAddress [7] OCTET STRING
        into.ip.push(formatIp(gn.content));
        break;
      case contextTag(1, false): // rfc822Name [1] IA5String
        into.other.push(`email:${gn.content.toString('latin1')}`);
        break;
      case contextTag(6, false): // uniformResourceIdentifier [6] IA5String
        into.other.push(`uri:${gn.content.toString('latin1')}`);
        break;
      default:
        into.other.push(`tag[${gn.tag & 0x1f}]`);
    }
  }
}

function decodeCrlDistributionPoints(seq: Tlv): string[] {
  // CRLDistributionPoints ::= SEQUENCE OF DistributionPoint
  // DistributionPoint ::= SEQUENCE { distributionPoint [0] DistributionPointName OPTIONAL, ... }
  // DistributionPointName ::= CHOICE { fullName [0] GeneralNames, ... }
  const urls: string[] = [];
  for (const dp of sequenceOf(seq)) {
    for (const field of sequenceOf(dp)) {
      if (field.tag !== contextTag(0, true)) continue;
      for (const dpn of childrenOf(field)) {
        if (dpn.tag !== contextTag(0, true)) continue;
        const names = { dns: [] as string[], ip: [] as string[], other: [] as string[] };
        // fullName is IMPLICIT GeneralNames: its content is the SEQUENCE's content.
        decodeGeneralNames({ ...dpn, tag: TAG.SEQUENCE }, names);
        for (const o of names.other) if (o.startsWith('uri:')) urls.push(o.slice(4));
      }
    }
  }
  return urls;
}

/** RFC 5952 text form for IPv6 (lowercase, longest zero run compressed); dotted quad for IPv4. */
export function formatIp(bytes: Buffer): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) return `#${bytes.toString('hex')}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/**
 * Key identifier, RFC 5280 4.2.1.2 method (1): "the 160-bit SHA-1 hash of the value of the BIT STRING
 * subjectPublicKey (excluding the tag, length, and number of unused bits)". SHA-1 is fine here: it is an
 * identifier, not a security mechanism.
 */
export function computeKeyIdentifier(spkiDer: Buffer): Buffer {
  const [, subjectPublicKey] = sequenceOf(readOne(spkiDer));
  if (!subjectPublicKey) throw malformed('SubjectPublicKeyInfo');
  const { bytes } = readBitString(subjectPublicKey);
  return createHash('sha1').update(bytes).digest();
}
