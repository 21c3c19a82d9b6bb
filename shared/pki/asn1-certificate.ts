// DER encoding of an X.509 v3 TBSCertificate (RFC 5280 section 4.1) and of the extensions kds's profiles
// use (RFC 5280 section 4.2), written directly with the DER writer of asn1.ts.
//
// Why not node-forge, which encoded these before: forge builds a tree of objects with binary strings and
// then serializes it, ~0.3-0.5 ms per certificate on the benchmark machine, a tenth of an issuance's
// main-thread CPU (bench/issue.ts). The output here is byte for byte what forge produced for the same
// inputs (test/shared/pki/asn1-certificate.test.ts builds both and compares them, over generated specs),
// so certificates did not change; forge remains the reference in that test only.
//
//   TBSCertificate ::= SEQUENCE {
//        version         [0]  EXPLICIT Version DEFAULT v1,
//        serialNumber         CertificateSerialNumber,
//        signature            AlgorithmIdentifier,
//        issuer               Name,
//        validity             Validity,
//        subject              Name,
//        subjectPublicKeyInfo SubjectPublicKeyInfo,
//        extensions      [3]  EXPLICIT Extensions OPTIONAL }
//   Extension ::= SEQUENCE { extnID OBJECT IDENTIFIER, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
import { isIPv4, isIPv6 } from 'node:net';
import { InputError } from '../errors.js';
import {
  contextTag,
  derBoolean,
  derNull,
  derOctetString,
  derOid,
  derSequence,
  derSet,
  derTime,
  derTlv,
  derUnsignedInteger,
  TAG,
} from './asn1.js';
import { OID } from './oids.js';

/** The fields of a TBSCertificate, each already in its final form. */
export interface TbsCertificateFields {
  /** Serial number magnitude (big-endian, positive). */
  serial: Buffer;
  /** DER of the issuer Name (copied from the issuer certificate's subject, or the subject for the root). */
  issuerName: Buffer;
  notBefore: number;
  notAfter: number;
  /** DER of the subject Name. */
  subjectName: Buffer;
  /** DER of the SubjectPublicKeyInfo. */
  spki: Buffer;
  /** DER of each Extension, in order; none: the extensions field is omitted. */
  extensions: readonly Buffer[];
}

// version [0] EXPLICIT INTEGER 2 (v3): RFC 5280 4.1.2.1 "When extensions are used, as required by this
// profile, version MUST be 3 (value is 2)."
const VERSION_3 = derTlv(contextTag(0, true), derUnsignedInteger(2));
// RFC 4055 section 5: sha256WithRSAEncryption "parameters MUST be present and MUST be NULL".
const SHA256_WITH_RSA = derSequence([derOid(OID.sha256WithRSAEncryption), derNull()]);

export function encodeTbsCertificate(f: TbsCertificateFields): Buffer {
  const fields = [
    VERSION_3,
    // RFC 5280 4.1.2.2: "The serial number MUST be a positive integer".
    derUnsignedInteger(f.serial),
    // RFC 5280 4.1.2.3: the signature field "MUST contain the same algorithm identifier as the
    // signatureAlgorithm field in the sequence Certificate".
    SHA256_WITH_RSA,
    f.issuerName,
    derSequence([derTime(f.notBefore), derTime(f.notAfter)]),
    f.subjectName,
    f.spki,
  ];
  if (f.extensions.length > 0) fields.push(derTlv(contextTag(3, true), derSequence(f.extensions)));
  return derSequence(fields);
}

/**
 * A Name of one attribute per RDN, in the order given, each value a UTF8String. RFC 5280 4.1.2.4: "CAs
 * conforming to this profile MUST use either the PrintableString or UTF8String encoding of
 * DirectoryString" (PrintableString cannot hold '_', which kds names may).
 */
export function encodeName(attributes: readonly { oid: string; value: string }[]): Buffer {
  return derSequence(
    attributes.map((a) =>
      derSet([derSequence([derOid(a.oid), derTlv(TAG.UTF8_STRING, Buffer.from(a.value, 'utf8'))])]),
    ),
  );
}

/** Extension ::= SEQUENCE { extnID, critical (only when TRUE: DER omits a DEFAULT value), extnValue }. */
export function encodeExtension(oid: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? derSequence([derOid(oid), derBoolean(true), derOctetString(value)])
    : derSequence([derOid(oid), derOctetString(value)]);
}

/** BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }. */
export function basicConstraintsValue(ca: boolean, pathLen?: number): Buffer {
  const parts: Buffer[] = [];
  if (ca) parts.push(derBoolean(true));
  if (pathLen !== undefined) parts.push(derUnsignedInteger(pathLen));
  return derSequence(parts);
}

/** The KeyUsage bits (RFC 5280 4.2.1.3) kds sets, by bit number. */
export const KEY_USAGE_BIT = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

/**
 * KeyUsage ::= BIT STRING of the named bits given. X.690 11.2.2: in DER a named bit list has its
 * trailing zero bits removed, so the unused-bits count is the number of zero bits after the last set one.
 */
export function keyUsageValue(bits: readonly (keyof typeof KEY_USAGE_BIT)[]): Buffer {
  const numbers = bits.map((b) => KEY_USAGE_BIT[b]);
  if (numbers.length === 0) return derTlv(TAG.BIT_STRING, Buffer.from([0]));
  const last = Math.max(...numbers);
  const bytes = Buffer.alloc((last >> 3) + 1);
  for (const n of numbers) bytes[n >> 3]! |= 0x80 >> (n & 7);
  const unused = 7 - (last & 7);
  return derTlv(TAG.BIT_STRING, [Buffer.from([unused]), bytes]);
}

/** ExtKeyUsageSyntax ::= SEQUENCE SIZE (1..MAX) OF KeyPurposeId. */
export function extKeyUsageValue(purposeOids: readonly string[]): Buffer {
  return derSequence(purposeOids.map((o) => derOid(o)));
}

/**
 * GeneralNames with dNSName [2] and iPAddress [7] entries, DNS names first. RFC 5280 4.2.1.6: dNSName is
 * an IA5String; "For IP version 4 ... the octet string MUST contain exactly four octets. For IP version 6
 * ... the octet string MUST contain exactly sixteen octets."
 */
export function subjectAltNameValue(dns: readonly string[], ip: readonly string[]): Buffer {
  return derSequence([
    ...dns.map((d) => derTlv(contextTag(2, false), ia5(d, 'dNSName'))),
    ...ip.map((a) => derTlv(contextTag(7, false), ipAddressBytes(a))),
  ]);
}

/** SubjectKeyIdentifier ::= KeyIdentifier (OCTET STRING). */
export function subjectKeyIdentifierValue(keyId: Buffer): Buffer {
  return derOctetString(keyId);
}

/** AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] KeyIdentifier OPTIONAL, ... }. */
export function authorityKeyIdentifierValue(keyId: Buffer): Buffer {
  return derSequence([derTlv(contextTag(0, false), keyId)]);
}

/**
 * CRLDistributionPoints ::= SEQUENCE OF DistributionPoint, one point whose distributionPoint [0] is a
 * fullName [0] with one uniformResourceIdentifier [6] (IA5String).
 */
export function crlDistributionPointsValue(url: string): Buffer {
  const fullName = derTlv(contextTag(0, true), derTlv(contextTag(6, false), ia5(url, 'URI')));
  return derSequence([derSequence([derTlv(contextTag(0, true), fullName)])]);
}

function ia5(text: string, what: string): Buffer {
  // IA5String is 7-bit ASCII (X.680 section 41).
  if (!/^[\x20-\x7e]*$/.test(text)) {
    throw new InputError('bad_request', `${what} must be printable ASCII (IA5String)`);
  }
  return Buffer.from(text, 'latin1');
}

/** The network-order bytes of an IPv4 (4) or IPv6 (16) address in text form. */
export function ipAddressBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map((p) => Number(p)));
  // A zone index (fe80::1%eth0) names an interface of one host: it has no place in a certificate.
  if (!isIPv6(ip) || ip.includes('%')) {
    throw new InputError('bad_request', `invalid IP address ${JSON.stringify(ip.slice(0, 80))}`);
  }
  // RFC 4291 2.2: eight 16-bit groups; "::" stands for one or more groups of zeros; the last two groups
  // may be written as a dotted IPv4 address.
  let text = ip;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const v4 = text
      .slice(lastColon + 1)
      .split('.')
      .map((p) => Number(p));
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    text = `${text.slice(0, lastColon + 1)}0`; // placeholder group, removed below
  }
  const halves = text.split('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  let groups: number[];
  if (halves.length === 2) {
    const head = parse(halves[0]!);
    const rest = parse(halves[1]!);
    if (tail.length > 0) rest.pop();
    const zeros = 8 - head.length - rest.length - tail.length;
    groups = [...head, ...new Array<number>(zeros).fill(0), ...rest, ...tail];
  } else {
    groups = parse(text);
    if (tail.length > 0) groups.pop();
    groups.push(...tail);
  }
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}
