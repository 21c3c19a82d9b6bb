// X.509 v3 certificates (RFC 5280 section 4): building kds's four certificate profiles and parsing
// certificates into plain data. The ONLY module that uses node-forge (eslint enforces it).
//
// Building: node-forge encodes the TBSCertificate (forge.pki.createCertificate + getTBSCertificate), the
// Signer callback produces the sha256WithRSAEncryption signature with node:crypto (forge's own RSA is
// ~50x slower, DEVELOPERS.md), and we assemble Certificate ::= SEQUENCE { tbsCertificate,
// signatureAlgorithm, signatureValue } ourselves. Two fields of forge's TBS are swapped for exact bytes:
// the issuer Name (copied byte for byte from the issuer certificate's subject, so name chaining never
// depends on forge re-encoding strings) and the SubjectPublicKeyInfo (node:crypto's export of the key).
//
// Parsing: node:crypto's X509Certificate validates the structure and gives the public key and the
// CA flag; the DER reader in asn1.ts gives exact names, validity, and the extensions node cannot.
import { createHash, createPublicKey, KeyObject, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { InputError, KdsError } from '../errors.js';
import {
  contextTag,
  derBitString,
  derNull,
  derOid,
  derSequence,
  derUnsignedInteger,
  readIntegerBytes,
  readOid,
  readOne,
  readSmallInt,
  readTime,
  sequenceOf,
  type Tlv,
} from './asn1.js';
import { attributeValues, commonNameOf, decodeName, nameToString } from './dn.js';
import {
  computeKeyIdentifier,
  decodeExtensions,
  type DecodedExtensions,
  type ExtensionInfo,
} from './extensions.js';
import { assertValidName } from './names.js';
import { OID } from './oids.js';
import { derToPem, pemToDer } from './pem.js';
import { importRsaSpki, rsaSpkiDer, rsaSpkiPem } from './spki.js';
import { normalizeSerialHex, serialHexFromBytes } from './serial.js';

export { derToPem, pemToDer } from './pem.js';

/** Produces the sha256WithRSAEncryption (RSASSA-PKCS1-v1_5, SHA-256) signature of the DER bytes given. */
export type Signer = (tbsDer: Buffer) => Promise<Buffer>;

export type Profile = 'root-ca' | 'server' | 'client' | 'admin';

export interface CertificateSpec {
  serialHex: string;
  subjectCN: string;
  subjectOU?: string;
  issuer: { certPem: string } | 'self'; // 'self' for the root
  publicKeyPem: string; // SPKI PEM of the subject key
  notBefore: number;
  notAfter: number;
  profile: Profile;
  sans?: { dns?: string[]; ip?: string[] };
  crlUrl?: string; // CRL distribution point
}

export interface ParsedCertificate {
  pem: string;
  der: Buffer;
  fingerprint256: string; // hex sha256 of DER, lowercase, no colons
  serialHex: string;
  subjectCN: string;
  subjectOU?: string;
  issuerCN: string;
  notBefore: number;
  notAfter: number;
  isCA: boolean;
  keyUsage: string[];
  extKeyUsage: string[];
  sans: { dns: string[]; ip: string[] };
  publicKeyPem: string;
  keyType: 'rsa' | string;
  keyBits: number;
  skiHex?: string;
  akiHex?: string;
  crlUrls: string[];
  // Beyond the architecture.md contract (additive):
  version: number; // 1..3
  subjectDer: Buffer; // exact DER of the subject Name (CRL issuer field, name chaining)
  issuerDer: Buffer;
  subject: string; // one-line form for humans, e.g. "OU=kds-admin, CN=admin"
  issuer: string;
  signatureAlgorithm: string; // OID, e.g. 1.2.840.113549.1.1.11
  pathLen?: number;
  extensions: ExtensionInfo[];
  otherSans: string[]; // SANs that are neither dNSName nor iPAddress (email:, uri:, tag[n])
  unknownCriticalExtensions: string[];
}

/** The admin profile's subject OU: the marker the server's role check reads. */
export const ADMIN_OU = 'kds-admin';

const MAX_CN_LENGTH = 64; // ub-common-name, RFC 5280 Appendix A.1

const PROFILES: Record<Profile, true> = { 'root-ca': true, server: true, client: true, admin: true };

// ---------------------------------------------------------------------------------------------------
// Building

interface ForgePkiInternals {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
  getCertificationRequestInfo(csr: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
}
const forgePki = forge.pki as unknown as ForgePkiInternals;

function bad(message: string): InputError {
  return new InputError('bad_request', message);
}

function toBinary(buf: Buffer): string {
  return buf.toString('binary');
}

function asn1ToDer(obj: forge.asn1.Asn1): Buffer {
  return Buffer.from(forge.asn1.toDer(obj).getBytes(), 'binary');
}

/** Import an SPKI PEM with node:crypto; only RSA (rsaEncryption) keys are certified by kds. */
function importSubjectKey(publicKeyPem: string): { key: KeyObject; spkiDer: Buffer } {
  // Fast path for what kds issues from (an RSA "PUBLIC KEY" PEM, e.g. parseCsr's): our strict SPKI
  // reader and a JWK import, ~10x cheaper than OpenSSL's PEM decoder and DER encoder (spki.ts). Anything
  // else (other PEM types, non-canonical DER, other algorithms) takes the general path below, with its
  // own checks and messages.
  try {
    const key = importRsaSpki(pemToDer(publicKeyPem, 'PUBLIC KEY'));
    return { key, spkiDer: rsaSpkiDer(key) };
  } catch {
    // fall through
  }
  let key: KeyObject;
  try {
    key = createPublicKey(publicKeyPem);
  } catch {
    throw new InputError('malformed_pem', 'invalid subject public key');
  }
  if (key.type !== 'public') throw bad('expected the subject PUBLIC key');
  if (key.asymmetricKeyType !== 'rsa') {
    throw new InputError('unsupported_key', `expected an RSA key, got ${String(key.asymmetricKeyType)}`);
  }
  return { key, spkiDer: key.export({ type: 'spki', format: 'der' }) };
}

function checkSpec(spec: CertificateSpec): void {
  if (spec === null || typeof spec !== 'object') throw bad('expected a certificate spec');
  if (!PROFILES[spec.profile]) throw bad(`unknown certificate profile ${JSON.stringify(spec.profile)}`);
  if (spec.profile === 'client' || spec.profile === 'admin') {
    assertValidName(spec.subjectCN, 'subject name');
  } else if (
    typeof spec.subjectCN !== 'string' ||
    spec.subjectCN.length === 0 ||
    spec.subjectCN.length > MAX_CN_LENGTH ||
    /\p{Cc}/u.test(spec.subjectCN) // no control characters
  ) {
    throw bad(`subject CN must be 1..${MAX_CN_LENGTH} printable characters`);
  }
  if (spec.subjectOU !== undefined) {
    if (
      typeof spec.subjectOU !== 'string' ||
      spec.subjectOU.length === 0 ||
      spec.subjectOU.length > 64 ||
      /\p{Cc}/u.test(spec.subjectOU)
    ) {
      throw bad('subject OU must be 1..64 printable characters');
    }
    // The admin OU is a role marker: only the admin profile may carry it.
    if (spec.subjectOU === ADMIN_OU && spec.profile !== 'admin')
      throw bad(`OU=${ADMIN_OU} is reserved for admin`);
    if (spec.profile === 'admin' && spec.subjectOU !== ADMIN_OU)
      throw bad(`admin certificates carry OU=${ADMIN_OU}`);
  }
  if (
    !Number.isFinite(spec.notBefore) ||
    !Number.isFinite(spec.notAfter) ||
    spec.notAfter <= spec.notBefore
  ) {
    throw bad('validity: notAfter must be after notBefore');
  }
  if ((spec.issuer === 'self') !== (spec.profile === 'root-ca')) {
    throw bad('only the root-ca profile is self-signed, and it always is');
  }
  if (spec.crlUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(spec.crlUrl);
    } catch {
      throw bad('crlUrl is not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('crlUrl must be http(s)');
  }
}

function subjectAltNames(spec: CertificateSpec): { dns: string[]; ip: string[] } {
  const dns = spec.sans?.dns ?? [];
  const ip = spec.sans?.ip ?? [];
  if (spec.profile === 'client' || spec.profile === 'admin') {
    // The identity profiles name exactly one principal: SAN dNSName = the name (issue 2 part 4).
    if (ip.length > 0 || dns.some((d) => d !== spec.subjectCN))
      throw bad('client SAN must be the subject name');
    return { dns: [spec.subjectCN], ip: [] };
  }
  for (const d of dns) {
    if (
      typeof d !== 'string' ||
      !/^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*$/.test(d)
    ) {
      throw bad(`invalid DNS SAN ${JSON.stringify(String(d).slice(0, 80))}`);
    }
  }
  for (const a of ip) {
    if (typeof a !== 'string' || isIP(a) === 0)
      throw bad(`invalid IP SAN ${JSON.stringify(String(a).slice(0, 80))}`);
  }
  if (spec.profile === 'server' && dns.length + ip.length === 0) return { dns: [spec.subjectCN], ip: [] };
  return { dns: [...dns], ip: [...ip] };
}

/** The extensions of each profile (issue 2 parts 3 and 4); SKI/AKI values are computed by the caller. */
function profileExtensions(
  spec: CertificateSpec,
  ski: Buffer,
  aki: Buffer | undefined,
  sans: { dns: string[]; ip: string[] },
): object[] {
  const exts: object[] = [];
  if (spec.profile === 'root-ca') {
    // pathLenConstraint 0: this CA signs end-entity certificates only, never an intermediate CA.
    exts.push({ name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true });
    exts.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true });
    exts.push({ name: 'subjectKeyIdentifier', value: octetString(ski) });
    // RFC 5280 4.2.1.1: authorityKeyIdentifier "MAY be omitted" in self-signed certificates: omitted.
    return exts;
  }
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
    altNames: [...sans.dns.map((value) => ({ type: 2, value })), ...sans.ip.map((ip) => ({ type: 7, ip }))],
  });
  exts.push({ name: 'subjectKeyIdentifier', value: octetString(ski) });
  if (aki) exts.push({ name: 'authorityKeyIdentifier', keyIdentifier: toBinary(aki) });
  if (spec.crlUrl !== undefined) {
    exts.push({ name: 'cRLDistributionPoints', altNames: [{ type: 6, value: spec.crlUrl }] });
  }
  return exts;
}

function octetString(bytes: Buffer): forge.asn1.Asn1 {
  return forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.OCTETSTRING, false, toBinary(bytes));
}

function forgeName(cn: string, ou: string | undefined): forge.pki.CertificateField[] {
  // UTF8String (RFC 5280 4.1.2.4: "CAs conforming to this profile MUST use either the PrintableString
  // or UTF8String encoding of DirectoryString"): PrintableString cannot hold '_', which names may.
  const utf8 = forge.asn1.Type.UTF8;
  const attrs: forge.pki.CertificateField[] = [];
  if (ou !== undefined)
    attrs.push({ type: OID.organizationalUnitName, value: ou, valueTagClass: utf8 } as never);
  attrs.push({ type: OID.commonName, value: cn, valueTagClass: utf8 } as never);
  return attrs;
}

const SHA256_WITH_RSA = derSequence([derOid(OID.sha256WithRSAEncryption), derNull()]);

/** AlgorithmIdentifier for sha256WithRSAEncryption (RFC 4055 section 5: parameters NULL). */
export function sha256WithRsaAlgorithm(): Buffer {
  return SHA256_WITH_RSA;
}

/** Build, sign and self-check a certificate; returns PEM. */
export async function buildCertificate(spec: CertificateSpec, sign: Signer): Promise<string> {
  return (await buildParsedCertificate(spec, sign)).pem;
}

// A CA issues every certificate under the same issuer PEM: parsing it (~0.3-0.8 ms) and importing its
// key on every issuance was a third of buildCertificate's CPU (bench/issue.ts). Keyed by the exact PEM
// text, a handful of entries (one per CA a process works with).
const ISSUER_CACHE_LIMIT = 8;
const issuerCache = new Map<string, { cert: ParsedCertificate; key: KeyObject }>();

function issuerOf(certPem: string): { cert: ParsedCertificate; key: KeyObject } {
  let hit = issuerCache.get(certPem);
  if (hit === undefined) {
    const cert = parseCertificate(certPem);
    hit = { cert, key: createPublicKey(cert.publicKeyPem) };
    if (issuerCache.size >= ISSUER_CACHE_LIMIT) issuerCache.delete(issuerCache.keys().next().value!);
    issuerCache.set(certPem, hit);
  }
  return hit;
}

// forge encodes the TBSCertificate from a forge public key, but the SubjectPublicKeyInfo it writes is
// then replaced by node:crypto's exact export of the subject key (below), and SKI/AKI are passed in
// explicitly, so forge's key only has to be SOME RSA key: parse one once instead of converting every
// subject key into forge's big integers (~10% of an issuance).
let forgePlaceholderKey: forge.pki.PublicKey | undefined;

/** buildCertificate, returning the parsed certificate (no second parse of the result). */
export async function buildParsedCertificate(
  spec: CertificateSpec,
  sign: Signer,
): Promise<ParsedCertificate> {
  checkSpec(spec);
  const serialHex = normalizeSerialHex(spec.serialHex);
  const subject = importSubjectKey(spec.publicKeyPem);
  const sans = subjectAltNames(spec);
  const ou = spec.profile === 'admin' ? ADMIN_OU : spec.subjectOU;

  let issuer: ParsedCertificate | undefined;
  let issuerKey = subject.key;
  if (spec.issuer !== 'self') {
    ({ cert: issuer, key: issuerKey } = issuerOf(spec.issuer.certPem));
    if (!issuer.isCA || !issuer.keyUsage.includes('keyCertSign')) throw bad('issuer certificate is not a CA');
  }
  const ski = computeKeyIdentifier(subject.spkiDer);
  const aki = issuer ? (issuer.skiHex ? Buffer.from(issuer.skiHex, 'hex') : issuerKeyId(issuer)) : undefined;

  const cert = forge.pki.createCertificate();
  // forge writes serialNumber's bytes verbatim as the INTEGER content: give it the minimal positive
  // encoding (RFC 5280 4.1.2.2: "The serial number MUST be a positive integer").
  cert.serialNumber = readOne(derUnsignedInteger(Buffer.from(serialHex, 'hex'))).content.toString('hex');
  cert.validity.notBefore = new Date(spec.notBefore);
  cert.validity.notAfter = new Date(spec.notAfter);
  cert.setSubject(forgeName(spec.subjectCN, ou));
  cert.setIssuer(forgeName(spec.subjectCN, ou)); // placeholder: replaced by the issuer's exact bytes below
  forgePlaceholderKey ??= forge.pki.publicKeyFromPem(spec.publicKeyPem);
  cert.publicKey = forgePlaceholderKey; // replaced by subject.spkiDer below
  cert.setExtensions(profileExtensions(spec, ski, aki, sans));
  (cert as unknown as { siginfo: { algorithmOid: string } }).siginfo.algorithmOid =
    OID.sha256WithRSAEncryption;

  const forgeTbs = asn1ToDer(forgePki.getTBSCertificate(cert));
  // TBSCertificate fields: [0] version, serialNumber, signature, issuer, validity, subject, spki, [3] exts
  const fields = sequenceOf(readOne(forgeTbs)).map((f) => f.bytes);
  if (fields.length < 7) throw new KdsError('internal', 'unexpected TBSCertificate shape');
  if (issuer) fields[3] = issuer.subjectDer;
  fields[6] = subject.spkiDer;
  const tbs = derSequence(fields);

  const signature = await sign(tbs);
  const der = derSequence([tbs, SHA256_WITH_RSA, derBitString(signature)]);

  // Self-check before anything leaves this function: a Signer holding the wrong key must fail here,
  // not in a client months later.
  let verified = false;
  let x509: X509Certificate | undefined;
  try {
    x509 = new X509Certificate(der);
    verified = x509.verify(issuerKey);
  } catch {
    verified = false;
  }
  if (!verified || x509 === undefined) {
    throw new KdsError('internal', 'issued certificate does not verify with the issuer key');
  }
  const parsed = decodeCertificate(der, x509);
  x509Cache.set(parsed, x509);
  return parsed;
}

function issuerKeyId(issuer: ParsedCertificate): Buffer {
  return computeKeyIdentifier(createPublicKey(issuer.publicKeyPem).export({ type: 'spki', format: 'der' }));
}

/**
 * The CertificationRequestInfo (RFC 2986 section 4.1) for `createCsr` in csr.ts, encoded by forge:
 * version 0, subject CN=name (UTF8String), the SPKI given, and an extensionRequest attribute
 * (RFC 2985 5.4.2) asking for subjectAltName dNSName=name. Returns DER.
 */
export function buildCertificationRequestInfo(name: string, publicKeyPem: string): Buffer {
  const subject = importSubjectKey(publicKeyPem);
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  csr.setSubject(forgeName(name, undefined));
  csr.setAttributes([
    {
      name: 'extensionRequest',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: name }] }],
    },
  ] as never);
  const cri = asn1ToDer(forgePki.getCertificationRequestInfo(csr));
  // CertificationRequestInfo fields: version, subject, subjectPKInfo, [0] attributes
  const fields = sequenceOf(readOne(cri)).map((f) => f.bytes);
  fields[2] = subject.spkiDer;
  return derSequence(fields);
}

// ---------------------------------------------------------------------------------------------------
// Parsing

const x509Cache = new WeakMap<ParsedCertificate, X509Certificate>();

/** node:crypto's view of a parsed certificate (cached; for verify/checkIssued). */
export function x509Of(cert: ParsedCertificate): X509Certificate {
  let x = x509Cache.get(cert);
  if (!x) {
    x = new X509Certificate(cert.der);
    x509Cache.set(cert, x);
  }
  return x;
}

function malformedPem(message: string, cause?: unknown): InputError {
  return new InputError('malformed_pem', message, undefined, cause === undefined ? undefined : { cause });
}

/**
 * Parse a certificate (PEM with label CERTIFICATE, or DER). Throws InputError `malformed_pem` for
 * anything that is not exactly one well-formed X.509 certificate: garbage, truncation, trailing bytes,
 * another PEM type (a CSR, a key).
 */
export function parseCertificate(pemOrDer: string | Buffer): ParsedCertificate {
  let der: Buffer;
  if (typeof pemOrDer === 'string') {
    der = pemToDer(pemOrDer, 'CERTIFICATE');
  } else if (Buffer.isBuffer(pemOrDer)) {
    der = Buffer.from(pemOrDer); // own copy: callers may reuse their buffer
  } else {
    throw malformedPem('expected a certificate as PEM text or DER bytes');
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch (err) {
    throw malformedPem('not a valid X.509 certificate', err);
  }
  let parsed: ParsedCertificate;
  try {
    parsed = decodeCertificate(der, x509);
  } catch (err) {
    if (err instanceof KdsError && err.code === 'malformed')
      throw malformedPem(`not a valid X.509 certificate (${err.message})`, err);
    throw err;
  }
  x509Cache.set(parsed, x509);
  return parsed;
}

function decodeCertificate(der: Buffer, x509: X509Certificate): ParsedCertificate {
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
  const top = sequenceOf(readOne(der));
  if (top.length !== 3) throw new InputError('malformed', 'Certificate has 3 fields');
  const [tbsTlv, sigAlgTlv] = top as [Tlv, Tlv, Tlv];
  const tbs = sequenceOf(tbsTlv);
  let i = 0;
  let version = 1;
  if (tbs[0]?.tag === contextTag(0, true)) {
    const [v] = sequenceOf(tbs[0], contextTag(0, true));
    if (!v) throw new InputError('malformed', 'version');
    version = readSmallInt(v) + 1;
    i = 1;
  }
  const serialTlv = tbs[i];
  const innerSigAlg = tbs[i + 1];
  const issuerTlv = tbs[i + 2];
  const validityTlv = tbs[i + 3];
  const subjectTlv = tbs[i + 4];
  const spkiTlv = tbs[i + 5];
  if (!serialTlv || !innerSigAlg || !issuerTlv || !validityTlv || !subjectTlv || !spkiTlv) {
    throw new InputError('malformed', 'TBSCertificate is missing fields');
  }
  // RFC 5280 4.1.1.2: signatureAlgorithm "MUST contain the same algorithm identifier as the signature
  // field in the sequence tbsCertificate".
  if (!innerSigAlg.bytes.equals(sigAlgTlv.bytes))
    throw new InputError('malformed', 'signature algorithm mismatch');
  const [sigOid] = sequenceOf(sigAlgTlv);
  if (!sigOid) throw new InputError('malformed', 'AlgorithmIdentifier');
  const signatureAlgorithm = readOid(sigOid);

  const { magnitude } = readIntegerBytes(serialTlv);
  const serialHex = serialHexFromBytes(magnitude);
  const [nb, na] = sequenceOf(validityTlv);
  if (!nb || !na) throw new InputError('malformed', 'Validity');
  const notBefore = readTime(nb);
  const notAfter = readTime(na);

  const subjectName = decodeName(subjectTlv);
  const issuerName = decodeName(issuerTlv);

  let ext: DecodedExtensions = {
    list: [],
    sans: { dns: [], ip: [], other: [] },
    crlUrls: [],
    unknownCritical: [],
  };
  for (const f of tbs.slice(i + 6)) {
    if (f.tag === contextTag(3, true)) {
      // RFC 5280 4.1.2.9: "This field MUST only appear if the version is 3".
      if (version !== 3) throw new InputError('malformed', 'extensions in a non-v3 certificate');
      const [seq] = sequenceOf(f, contextTag(3, true));
      if (!seq) throw new InputError('malformed', 'Extensions');
      ext = decodeExtensions(seq);
    }
  }

  const publicKey = x509.publicKey;
  const keyBits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
  const subjectOUs = attributeValues(subjectName, OID.organizationalUnitName);
  const parsed: ParsedCertificate = {
    pem: derToPem(der, 'CERTIFICATE'),
    der,
    fingerprint256: createHash('sha256').update(der).digest('hex'),
    serialHex,
    subjectCN: commonNameOf(subjectName),
    issuerCN: commonNameOf(issuerName),
    notBefore,
    notAfter,
    isCA: ext.basicConstraints?.ca ?? false,
    keyUsage: ext.keyUsage ?? [],
    extKeyUsage: ext.extKeyUsage ?? [],
    sans: { dns: ext.sans.dns, ip: ext.sans.ip },
    publicKeyPem:
      publicKey.asymmetricKeyType === 'rsa'
        ? rsaSpkiPem(publicKey) // identical bytes, without OpenSSL's slow encoder (spki.ts)
        : publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyType: publicKey.asymmetricKeyType ?? 'unknown',
    keyBits,
    crlUrls: ext.crlUrls,
    version,
    subjectDer: subjectName.der,
    issuerDer: issuerName.der,
    subject: nameToString(subjectName),
    issuer: nameToString(issuerName),
    signatureAlgorithm,
    extensions: ext.list,
    otherSans: ext.sans.other,
    unknownCriticalExtensions: ext.unknownCritical,
  };
  if (subjectOUs.length > 0) parsed.subjectOU = subjectOUs[subjectOUs.length - 1]!;
  if (ext.skiHex !== undefined) parsed.skiHex = ext.skiHex;
  if (ext.akiHex !== undefined) parsed.akiHex = ext.akiHex;
  if (ext.basicConstraints?.pathLen !== undefined) parsed.pathLen = ext.basicConstraints.pathLen;
  return parsed;
}
