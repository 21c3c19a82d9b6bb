// X.509 v3 certificates (RFC 5280 section 4): building kds's four certificate profiles and parsing
// certificates into plain data. The ONLY module that uses node-forge (eslint enforces it).
//
// Building: asn1-certificate.ts encodes the TBSCertificate (byte for byte what node-forge encoded for
// kds until bench/issue.ts showed forge's encoder to be a tenth of an issuance; the test of that file
// compares the two), the Signer callback produces the sha256WithRSAEncryption signature with node:crypto
// (forge's own RSA is ~50x slower, DEVELOPERS.md), and we assemble Certificate ::= SEQUENCE {
// tbsCertificate, signatureAlgorithm, signatureValue } ourselves. The issuer Name is copied byte for
// byte from the issuer certificate's subject (name chaining never depends on re-encoding strings) and the
// SubjectPublicKeyInfo is the canonical export of the key (spki.ts). forge still encodes the version and
// the extensionRequest attribute of the CertificationRequestInfo of the CSRs clients make (createCsr in
// csr.ts); the subject and the key in it are ours, as in a certificate.
//
// Parsing: node:crypto's X509Certificate validates the structure and gives the public key and the
// CA flag; the DER reader in asn1.ts gives exact names, validity, and the extensions node cannot.
import {
  constants,
  createHash,
  createPublicKey,
  KeyObject,
  verify as cryptoVerify,
  X509Certificate,
} from 'node:crypto';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import type forge from 'node-forge';
import { assertRsaPublicExponent } from '../crypto/rsa.js';
import { InputError, KdsError, InternalError } from '../errors.js';
import {
  contextTag,
  derBitString,
  derNull,
  derOid,
  derSequence,
  readIntegerBytes,
  readOid,
  readOne,
  readSmallInt,
  readTime,
  sequenceOf,
  type Tlv,
} from './asn1.js';
import {
  authorityKeyIdentifierValue,
  basicConstraintsValue,
  crlDistributionPointsValue,
  encodeExtension,
  encodeName,
  encodeTbsCertificate,
  extKeyUsageValue,
  keyUsageValue,
  subjectAltNameValue,
  subjectKeyIdentifierValue,
} from './asn1-certificate.js';
import { attributeValues, commonNameOf, decodeName, nameToString } from './dn.js';
import {
  computeKeyIdentifier,
  decodeExtensions,
  type DecodedExtensions,
  type ExtensionInfo,
} from './extensions.js';
import { assertValidName } from './names.js';
import { OID } from './oids.js';
import { PKCS1_SHA256, requireScheme, type CertificateSigner } from '../crypto/signer.js';
import { derToPem, pemToDer } from './pem.js';
import { importRsaSpki, rsaSpkiDer, rsaSpkiPem } from './spki.js';
import { normalizeSerialHex, serialHexFromBytes } from './serial.js';

export { derToPem, pemToDer } from './pem.js';

/** Produces the sha256WithRSAEncryption (RSASSA-PKCS1-v1_5, SHA-256) signature of the DER bytes given. */
export type Signer = CertificateSigner;

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
  /**
   * The key of publicKeyPem, already imported (ParsedCsr.publicKey): used instead of importing the PEM
   * again when it is that key (checked byte for byte against the PEM's DER; otherwise ignored).
   */
  publicKey?: KeyObject;
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
const ADMIN_OU = 'kds-admin';

const MAX_CN_LENGTH = 64; // ub-common-name, RFC 5280 Appendix A.1

const MIN_TIME = Date.UTC(1000, 0, 1);
const MAX_TIME = Date.UTC(10000, 0, 1);

const PROFILES: Record<Profile, true> = { 'root-ca': true, server: true, client: true, admin: true };

// ---------------------------------------------------------------------------------------------------
// Building

function bad(message: string): InputError {
  return new InputError('bad_request', message);
}

// node-forge is loaded on the first CSR, not with this module: only enrollment and renewal make CSRs,
// and loading forge costs ~40-70 ms of CPU, which every other kds process (the KDC, each client command,
// `kds cert list`...) would pay at start for nothing. A require, not an import(), so that
// buildCertificationRequestInfo stays synchronous.
let forgeModule: typeof forge | undefined;
function loadForge(): typeof forge {
  forgeModule ??= createRequire(import.meta.url)('node-forge') as typeof forge;
  return forgeModule;
}

function asn1ToDer(obj: forge.asn1.Asn1): Buffer {
  return Buffer.from(loadForge().asn1.toDer(obj).getBytes(), 'binary');
}

/**
 * Import an SPKI PEM with node:crypto; only RSA (rsaEncryption) keys with the public exponent 65537 are
 * certified by kds.
 */
function importSubjectKey(publicKeyPem: string, imported?: KeyObject): { key: KeyObject; spkiDer: Buffer } {
  // The caller's KeyObject when it is exactly the PEM's key: the PEM stays the truth.
  if (imported instanceof KeyObject && imported.type === 'public' && imported.asymmetricKeyType === 'rsa') {
    try {
      const der = pemToDer(publicKeyPem, 'PUBLIC KEY');
      if (der.equals(rsaSpkiDer(imported))) return { key: assertRsaPublicExponent(imported), spkiDer: der };
    } catch {
      // fall through: the general path reports what is wrong with the PEM
    }
  }
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
  assertRsaPublicExponent(key);
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
    /[\p{Cc}\p{Cs}]/u.test(spec.subjectCN) // no control characters, no lone surrogates
  ) {
    throw bad(`subject CN must be 1..${MAX_CN_LENGTH} printable characters`);
  }
  if (spec.subjectOU !== undefined) {
    if (
      typeof spec.subjectOU !== 'string' ||
      spec.subjectOU.length === 0 ||
      spec.subjectOU.length > 64 ||
      /[\p{Cc}\p{Cs}]/u.test(spec.subjectOU)
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
  // The Time encodings (RFC 5280 4.1.2.5) hold four-digit years.
  if (spec.notBefore < MIN_TIME || spec.notAfter >= MAX_TIME) throw bad('validity: years 1000..9999 only');
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
    // The identity profiles name exactly one principal: SAN dNSName = the name, so a certificate cannot speak for anyone else.
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

// Most extensions are the same bytes for every certificate of a profile and issuer (basic constraints,
// key usages, the AKI and CRL distribution point of one CA): encoded once and reused. A few keys per
// process (profiles, CAs, CRL URLs), bounded anyway.
const fixedExtensions = new Map<string, Buffer>();
function fixed(key: string, make: () => Buffer): Buffer {
  let der = fixedExtensions.get(key);
  if (der === undefined) {
    if (fixedExtensions.size >= 64) fixedExtensions.clear();
    der = make();
    fixedExtensions.set(key, der);
  }
  return der;
}

/** The extensions of each profile (docs/architecture.md "shared/pki"), DER; SKI/AKI values are computed by the caller. */
function profileExtensions(
  spec: CertificateSpec,
  ski: Buffer,
  aki: Buffer | undefined,
  sans: { dns: string[]; ip: string[] },
): Buffer[] {
  const exts: Buffer[] = [];
  if (spec.profile === 'root-ca') {
    // pathLenConstraint 0: this CA signs end-entity certificates only, never an intermediate CA.
    exts.push(
      fixed('bc:ca', () => encodeExtension(OID.basicConstraints, true, basicConstraintsValue(true, 0))),
    );
    exts.push(
      fixed('ku:ca', () => encodeExtension(OID.keyUsage, true, keyUsageValue(['keyCertSign', 'cRLSign']))),
    );
    exts.push(encodeExtension(OID.subjectKeyIdentifier, false, subjectKeyIdentifierValue(ski)));
    // RFC 5280 4.2.1.1: authorityKeyIdentifier "MAY be omitted" in self-signed certificates: omitted.
    return exts;
  }
  exts.push(
    fixed('bc:leaf', () => encodeExtension(OID.basicConstraints, true, basicConstraintsValue(false))),
  );
  if (spec.profile === 'server') {
    exts.push(
      fixed('ku:server', () =>
        encodeExtension(OID.keyUsage, true, keyUsageValue(['digitalSignature', 'keyEncipherment'])),
      ),
    );
    exts.push(
      fixed('eku:server', () => encodeExtension(OID.extKeyUsage, false, extKeyUsageValue([OID.serverAuth]))),
    );
  } else {
    exts.push(
      fixed('ku:client', () => encodeExtension(OID.keyUsage, true, keyUsageValue(['digitalSignature']))),
    );
    exts.push(
      fixed('eku:client', () => encodeExtension(OID.extKeyUsage, false, extKeyUsageValue([OID.clientAuth]))),
    );
  }
  exts.push(encodeExtension(OID.subjectAltName, false, subjectAltNameValue(sans.dns, sans.ip)));
  exts.push(encodeExtension(OID.subjectKeyIdentifier, false, subjectKeyIdentifierValue(ski)));
  if (aki) {
    exts.push(
      fixed(`aki:${aki.toString('hex')}`, () =>
        encodeExtension(OID.authorityKeyIdentifier, false, authorityKeyIdentifierValue(aki)),
      ),
    );
  }
  if (spec.crlUrl !== undefined) {
    const url = spec.crlUrl;
    exts.push(
      fixed(`crl:${url}`, () =>
        encodeExtension(OID.cRLDistributionPoints, false, crlDistributionPointsValue(url)),
      ),
    );
  }
  return exts;
}

/** The subject Name of kds certificates: [OU=ou,] CN=cn, each a UTF8String (asn1-certificate.ts). */
function subjectName(cn: string, ou: string | undefined): Buffer {
  const attrs: { oid: string; value: string }[] = [{ oid: OID.commonName, value: cn }];
  if (ou !== undefined) attrs.unshift({ oid: OID.organizationalUnitName, value: ou });
  return encodeName(attrs);
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

/** buildCertificate, returning the parsed certificate (no second parse of the result). */
export async function buildParsedCertificate(
  spec: CertificateSpec,
  sign: Signer,
): Promise<ParsedCertificate> {
  checkSpec(spec);
  const serialHex = normalizeSerialHex(spec.serialHex);
  const subject = importSubjectKey(spec.publicKeyPem, spec.publicKey);
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

  const name = subjectName(spec.subjectCN, ou);
  const tbs = encodeTbsCertificate({
    serial: Buffer.from(serialHex, 'hex'),
    // The issuer Name is the issuer certificate's subject byte for byte (RFC 5280 4.1.2.4: name
    // chaining compares them), never a re-encoding; the root is its own issuer.
    issuerName: issuer ? issuer.subjectDer : name,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    subjectName: name,
    spki: subject.spkiDer,
    extensions: profileExtensions(spec, ski, aki, sans),
  });

  requireScheme(sign, PKCS1_SHA256, 'a certificate');
  const signature = await sign(tbs);
  const der = derSequence([tbs, SHA256_WITH_RSA, derBitString(signature)]);

  // Self-check before anything leaves this function: a Signer holding the wrong key, or returning
  // anything but a valid signature of these exact TBS bytes, must fail here, not in a client months
  // later. The check is the signature verification itself, over the bytes just encoded (RFC 5280
  // 4.1.1.3: "the CA certifies the binding ... by the digital signature over the tbsCertificate"):
  // ~0.1 ms, where parsing the whole certificate back with X509Certificate cost ~1 ms (bench/issue.ts).
  let verified = false;
  try {
    verified = cryptoVerify(
      'sha256',
      tbs,
      { key: issuerKey, padding: constants.RSA_PKCS1_PADDING },
      signature,
    );
  } catch {
    verified = false;
  }
  if (!verified)
    throw new InternalError('internal', 'issued certificate does not verify with the issuer key');
  return decodeCertificate(der, {
    key: subject.key,
    pem: derToPem(subject.spkiDer, 'PUBLIC KEY'),
  });
}

function issuerKeyId(issuer: ParsedCertificate): Buffer {
  return computeKeyIdentifier(createPublicKey(issuer.publicKeyPem).export({ type: 'spki', format: 'der' }));
}

/**
 * The CertificationRequestInfo (RFC 2986 section 4.1) for `createCsr` in csr.ts:
 * version 0, subject CN=name (UTF8String), the SPKI given, and an extensionRequest attribute
 * (RFC 2985 5.4.2) asking for subjectAltName dNSName=name. Returns DER.
 */
export function buildCertificationRequestInfo(name: string, publicKeyPem: string): Buffer {
  const subject = importSubjectKey(publicKeyPem);
  const { pki } = loadForge();
  const csr = pki.createCertificationRequest();
  csr.publicKey = pki.publicKeyFromPem(publicKeyPem);
  csr.setAttributes([
    {
      name: 'extensionRequest',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: name }] }],
    },
  ]);
  // Declared in node-forge-csr.d.ts (public in forge, missing from its type declarations).
  const cri = asn1ToDer(pki.getCertificationRequestInfo(csr));
  // CertificationRequestInfo fields: version, subject, subjectPKInfo, [0] attributes. The subject is
  // encoded as a certificate's (UTF8String CN, subjectName) and the key as its canonical SPKI; forge
  // encodes the version and the extensionRequest attribute.
  const fields = sequenceOf(readOne(cri)).map((f) => f.bytes);
  fields[1] = subjectName(name, undefined);
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
 * another PEM type (a CSR, a key); `unsupported_key` for an RSA key whose public exponent is not 65537
 * (crypto/rsa.ts RSA_PUBLIC_EXPONENT: every signature verified with such a key would cost more).
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
    const publicKey = x509.publicKey;
    if (publicKey.asymmetricKeyType === 'rsa') assertRsaPublicExponent(publicKey);
    parsed = decodeCertificate(der, {
      key: publicKey,
      pem:
        publicKey.asymmetricKeyType === 'rsa'
          ? rsaSpkiPem(publicKey) // identical bytes, without OpenSSL's slow encoder (spki.ts)
          : publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    });
  } catch (err) {
    if (err instanceof KdsError && err.code === 'malformed')
      throw malformedPem(`not a valid X.509 certificate (${err.message})`, err);
    throw err;
  }
  x509Cache.set(parsed, x509);
  return parsed;
}

/**
 * The parsed form of a certificate's DER. `publicKey` is its subject key, already imported (from the
 * X509Certificate that validated the DER, or the key a certificate was just built for) and as SPKI PEM.
 */
/** The TBSCertificate's fields, located (RFC 5280 4.1): what decodeCertificate and readCertificateSummary read. */
interface TbsFields {
  version: number;
  signatureAlgorithm: string;
  serialHex: string;
  notBefore: number;
  notAfter: number;
  issuerTlv: Tlv;
  subjectTlv: Tlv;
  /** The fields after subjectPublicKeyInfo (issuer/subject unique IDs, extensions). */
  rest: Tlv[];
}

function readTbsFields(der: Buffer): TbsFields {
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
  return {
    version,
    signatureAlgorithm,
    serialHex,
    notBefore: readTime(nb),
    notAfter: readTime(na),
    issuerTlv,
    subjectTlv,
    rest: tbs.slice(i + 6),
  };
}

/** What names an issued certificate in an event: its serial, subject CN and notAfter. */
export interface CertificateSummary {
  serialHex: string;
  subjectCN: string;
  notAfter: number;
}

/**
 * The serial, subject CN and notAfter of a certificate, read from its DER alone, for describing a
 * certificate this process has just issued (its own output, already self-checked when it was signed).
 * Not a validation: parseCertificate is, and costs what a report of each issuance cannot afford
 * (OpenSSL's parse of the whole certificate, the public key imported and re-encoded: ~0.3 ms of the
 * KDC's main thread and the garbage of two native objects, 10% of an issuance's CPU in bench/issue.ts).
 * The fields come out of the same reader as parseCertificate's (the same values, tested).
 */
export function readCertificateSummary(pemOrDer: string | Buffer): CertificateSummary {
  const der = typeof pemOrDer === 'string' ? pemToDer(pemOrDer, 'CERTIFICATE') : pemOrDer;
  const tbs = readTbsFields(der);
  return {
    serialHex: tbs.serialHex,
    subjectCN: commonNameOf(decodeName(tbs.subjectTlv)),
    notAfter: tbs.notAfter,
  };
}

function decodeCertificate(der: Buffer, publicKey: { key: KeyObject; pem: string }): ParsedCertificate {
  const { version, signatureAlgorithm, serialHex, notBefore, notAfter, issuerTlv, subjectTlv, rest } =
    readTbsFields(der);
  const subjectName = decodeName(subjectTlv);
  const issuerName = decodeName(issuerTlv);

  let ext: DecodedExtensions = {
    list: [],
    sans: { dns: [], ip: [], other: [] },
    crlUrls: [],
    unknownCritical: [],
  };
  for (const f of rest) {
    if (f.tag === contextTag(3, true)) {
      // RFC 5280 4.1.2.9: "This field MUST only appear if the version is 3".
      if (version !== 3) throw new InputError('malformed', 'extensions in a non-v3 certificate');
      const [seq] = sequenceOf(f, contextTag(3, true));
      if (!seq) throw new InputError('malformed', 'Extensions');
      ext = decodeExtensions(seq);
    }
  }

  const keyBits = publicKey.key.asymmetricKeyDetails?.modulusLength ?? 0;
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
    publicKeyPem: publicKey.pem,
    keyType: publicKey.key.asymmetricKeyType ?? 'unknown',
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
