// PKCS#10 certification requests (RFC 2986): parsing with proof-of-possession check, and creating one.
//
//   CertificationRequest ::= SEQUENCE {
//        certificationRequestInfo CertificationRequestInfo,
//        signatureAlgorithm AlgorithmIdentifier{{ SignatureAlgorithms }},
//        signature          BIT STRING }
//   CertificationRequestInfo ::= SEQUENCE {
//        version       INTEGER { v1(0) } (v1,...),
//        subject       Name,
//        subjectPKInfo SubjectPublicKeyInfo{{ PKInfoAlgorithms }},
//        attributes    [0] Attributes{{ CRIAttributes }} }
//
// Order of checks (shape before crypto, data used only after its signature verified): PEM and DER shape
// and the subject Name (decodeCsr: no key import, no crypto) -> key type allowlist (RSA) and public
// exponent (65537 only) -> signature algorithm allowlist -> signature over the exact DER of
// certificationRequestInfo (verifyCsr: on the thread pool) -> decode the requested extensions.
// The subject is decoded before the signature is checked for one use only: enrollment compares its CN
// with the name the token is bound to, and refuses a mismatch before spending an RSA verification on an
// anonymous peer (server/ca/authority.ts). Issuance policy (sizes, names, forbidden extensions) is a
// separate step: policy.ts.
import { createPublicKey, KeyObject, verify as cryptoVerify } from 'node:crypto';
import { KdsError, InputError, AuthError, StateError } from '../errors.js';
import {
  assertRsaPublicExponent,
  RSA_EXPONENT_REFUSED,
  signPkcs1Sha256,
  verifyPkcs1Async,
  verifyPkcs1Sha256,
} from '../crypto/rsa.js';
import {
  contextTag,
  derBitString,
  derSequence,
  expectTagOf,
  readBitString,
  readOid,
  readOne,
  readSmallInt,
  sequenceOf,
  TAG,
  type Tlv,
} from './asn1.js';
import { attributeValues, commonNameOf, decodeName } from './dn.js';
import { decodeExtensions } from './extensions.js';
import { assertValidName } from './names.js';
import { OID } from './oids.js';
import { derToPem, pemToDer } from './pem.js';
import { importRsaSpki, rsaSpkiPem } from './spki.js';
import { buildCertificationRequestInfo, sha256WithRsaAlgorithm } from './x509.js';

export interface RequestedExtension {
  name: string; // RFC 5280 name or dotted OID
  critical?: boolean;
  ca?: boolean; // basicConstraints cA
  keyCertSign?: boolean; // keyUsage keyCertSign
  cRLSign?: boolean; // keyUsage cRLSign
}

export interface ParsedCsr {
  subjectCN: string;
  sans: { dns: string[]; ip: string[] };
  publicKeyPem: string;
  keyType: string;
  keyBits: number;
  requestedExtensions: RequestedExtension[];
  // Beyond the architecture.md contract (additive):
  der: Buffer;
  subjectCNs: string[]; // every CN attribute (policy requires exactly one)
  otherSans: string[]; // SANs that are neither dNSName nor iPAddress (email:, uri:, tag[n])
  signatureAlgorithm: string; // OID
  /** The subject key, imported once (issuance passes it on instead of importing publicKeyPem again). */
  publicKey: KeyObject;
}

/**
 * A CSR whose shape is valid but whose signature is NOT verified yet (decodeCsr): what it claims, to be
 * compared and refused, never acted on. verifyCsr turns it into a ParsedCsr.
 */
export interface CsrRequest {
  readonly der: Buffer;
  /** The subject's CN (the last one), as requested: unverified. */
  readonly subjectCN: string;
  /** Every CN attribute of the subject, as requested: unverified. */
  readonly subjectCNs: readonly string[];
  readonly criTlv: Tlv;
  readonly spkiTlv: Tlv;
  readonly sigAlgTlv: Tlv;
  readonly sigTlv: Tlv;
  readonly attributesTlv: Tlv;
}

/** PEM labels of a CSR: RFC 7468 section 7 ("NEW CERTIFICATE REQUEST" is the legacy OpenSSL label). */
const CSR_PEM_LABELS = ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'] as const;

/** Hashes accepted on a CSR's PKCS#1 v1.5 self-signature. SHA-1 and MD5 are refused. */
const SIGNATURE_HASHES: Record<string, 'sha256' | 'sha384' | 'sha512'> = {
  [OID.sha256WithRSAEncryption]: 'sha256',
  [OID.sha384WithRSAEncryption]: 'sha384',
  [OID.sha512WithRSAEncryption]: 'sha512',
};

/** One fixed message for every failed proof of possession (errors.ts: auth failures leak nothing). */
const CSR_SIGNATURE_FAILED = 'CSR signature verification failed';

function malformed(what: string, cause?: unknown): InputError {
  return new InputError(
    'malformed_pem',
    `not a valid certificate request (${what})`,
    undefined,
    cause === undefined ? undefined : { cause },
  );
}

/** `malformed` from the DER reader becomes the CSR's `malformed_pem`; every other error passes. */
function asCsrError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof KdsError && err.code === 'malformed') throw malformed(err.message, err);
    throw err;
  }
}

/**
 * The shape of a CSR and the name it asks for, without importing its key or checking its signature
 * (cheap: a PEM decode and a DER walk). Throws `malformed_pem`.
 */
export function decodeCsr(pem: string): CsrRequest {
  const der = pemToDer(pem, CSR_PEM_LABELS);
  return asCsrError(() => {
    const top = sequenceOf(readOne(der));
    if (top.length !== 3) throw malformed('CertificationRequest has 3 fields');
    const [criTlv, sigAlgTlv, sigTlv] = top as [Tlv, Tlv, Tlv];
    const cri = sequenceOf(criTlv);
    if (cri.length !== 4) throw malformed('CertificationRequestInfo has 4 fields');
    const [versionTlv, subjectTlv, spkiTlv, attributesTlv] = cri as [Tlv, Tlv, Tlv, Tlv];
    if (readSmallInt(versionTlv) !== 0) throw malformed('version must be v1(0)');
    expectTagOf(attributesTlv, contextTag(0, true));
    const subject = decodeName(subjectTlv);
    return {
      der,
      subjectCN: commonNameOf(subject),
      subjectCNs: attributeValues(subject, OID.commonName),
      criTlv,
      spkiTlv,
      sigAlgTlv,
      sigTlv,
      attributesTlv,
    };
  });
}

/** Parse a CSR and verify its self-signature. Throws malformed_pem, unsupported_key or bad_csr_signature. */
export function parseCsr(pem: string): ParsedCsr {
  const request = decodeCsr(pem);
  const check = prepareSignatureCheck(request);
  let ok = false;
  if (check.signature !== undefined) {
    try {
      ok = cryptoVerify(check.hash, request.criTlv.bytes, check.key, check.signature);
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new AuthError('bad_csr_signature', CSR_SIGNATURE_FAILED);
  return asCsrError(() => readVerifiedCsr(request, check));
}

/**
 * parseCsr for a CSR that came from the network: the RSA verification runs on the libuv thread pool
 * (node:crypto's callback form), so the event loop keeps serving other sessions meanwhile.
 */
export async function verifyCsr(request: CsrRequest): Promise<ParsedCsr> {
  const check = prepareSignatureCheck(request);
  // Proof of possession, RFC 2986 section 3: the signature is over the DER encoding of
  // certificationRequestInfo: the exact bytes received, never a re-encoding.
  const ok =
    check.signature !== undefined &&
    (await verifyPkcs1Async(check.hash, request.criTlv.bytes, check.signature, check.key).catch(() => false));
  if (!ok) throw new AuthError('bad_csr_signature', CSR_SIGNATURE_FAILED);
  return asCsrError(() => readVerifiedCsr(request, check));
}

interface SignatureCheck {
  key: KeyObject;
  hash: 'sha256' | 'sha384' | 'sha512';
  signatureAlgorithm: string;
  /** undefined when the BIT STRING has unused bits (no signature can match). */
  signature: Buffer | undefined;
}

/** Key type and exponent allowlist, then the signature algorithm allowlist: everything before crypto. */
function prepareSignatureCheck(request: CsrRequest): SignatureCheck {
  return asCsrError(() => {
    // Key type allowlist before any crypto. An RSA key in canonical DER is imported through JWK (spki.ts:
    // ~7x cheaper than OpenSSL's DER decoder, and its exponent is checked before OpenSSL sees the key);
    // anything else takes OpenSSL's decoder and its messages.
    let key: KeyObject;
    try {
      key = importRsaSpki(request.spkiTlv.bytes);
    } catch (err) {
      if (err instanceof InputError && err.message === RSA_EXPONENT_REFUSED) throw err;
      try {
        key = createPublicKey({ key: request.spkiTlv.bytes, format: 'der', type: 'spki' });
      } catch (cause) {
        throw malformed('subject public key', cause);
      }
    }
    if (key.asymmetricKeyType !== 'rsa') {
      throw new InputError(
        'unsupported_key',
        `only RSA keys are certified, got ${String(key.asymmetricKeyType)}`,
      );
    }
    assertRsaPublicExponent(key); // a non-canonical encoding that took OpenSSL's decoder

    const [algOid, algParams] = sequenceOf(request.sigAlgTlv);
    if (!algOid) throw malformed('signature algorithm');
    const signatureAlgorithm = readOid(algOid);
    const hash = SIGNATURE_HASHES[signatureAlgorithm];
    // RFC 4055 section 5: for sha*WithRSAEncryption "the parameters MUST be present and MUST be NULL"
    // (absent parameters are tolerated as many encoders omit them).
    if (hash === undefined || (algParams !== undefined && algParams.tag !== TAG.NULL)) {
      throw new AuthError('bad_csr_signature', `${CSR_SIGNATURE_FAILED}: unsupported signature algorithm`, {
        algorithm: signatureAlgorithm,
      });
    }
    const { unusedBits, bytes } = readBitString(request.sigTlv);
    return { key, hash, signatureAlgorithm, signature: unusedBits === 0 ? bytes : undefined };
  });
}

/** Verified: now decode what the requester asked for. */
function readVerifiedCsr(request: CsrRequest, check: SignatureCheck): ParsedCsr {
  const { key } = check;
  const requestedExtensions: RequestedExtension[] = [];
  const sans = { dns: [] as string[], ip: [] as string[] };
  let otherSans: string[] = [];
  let seenExtensionRequest = false;
  for (const attr of sequenceOf(request.attributesTlv, contextTag(0, true))) {
    // Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET SIZE(1..MAX) OF ... }
    const [typeTlv, valuesTlv] = sequenceOf(attr);
    if (!typeTlv || !valuesTlv) throw malformed('attribute');
    if (readOid(typeTlv) !== OID.extensionRequest) continue; // e.g. challengePassword: ignored
    if (seenExtensionRequest) throw malformed('two extensionRequest attributes');
    seenExtensionRequest = true;
    const values = sequenceOf(valuesTlv, TAG.SET);
    if (values.length !== 1) throw malformed('extensionRequest must have one value');
    const ext = decodeExtensions(values[0]!);
    for (const e of ext.list) {
      const item: RequestedExtension = { name: e.name };
      if (e.critical) item.critical = true;
      if (e.name === 'basicConstraints') item.ca = ext.basicConstraints?.ca ?? false;
      if (e.name === 'keyUsage') {
        item.keyCertSign = ext.keyUsage?.includes('keyCertSign') ?? false;
        item.cRLSign = ext.keyUsage?.includes('cRLSign') ?? false;
      }
      requestedExtensions.push(item);
    }
    sans.dns.push(...ext.sans.dns);
    sans.ip.push(...ext.sans.ip);
    otherSans = ext.sans.other;
  }

  return {
    subjectCN: request.subjectCN,
    subjectCNs: [...request.subjectCNs],
    sans,
    otherSans,
    publicKeyPem: rsaSpkiPem(key), // = key.export(spki, pem), without OpenSSL's slow encoder (spki.ts)
    keyType: 'rsa',
    keyBits: key.asymmetricKeyDetails?.modulusLength ?? 0,
    requestedExtensions,
    der: request.der,
    signatureAlgorithm: check.signatureAlgorithm,
    publicKey: key,
  };
}

/**
 * A CSR for `name` (CN=name, SAN dNSName=name) signed with sha256WithRSAEncryption by node:crypto.
 * forge encodes the CertificationRequestInfo (x509.ts); the signature is checked against
 * `publicKeyPem` before returning, so a mismatched key pair fails here with `key_mismatch`.
 */
export async function createCsr(name: string, privateKeyPem: string, publicKeyPem: string): Promise<string> {
  assertValidName(name);
  const cri = buildCertificationRequestInfo(name, publicKeyPem);
  const signature = await signPkcs1Sha256(cri, privateKeyPem);
  if (!verifyPkcs1Sha256(cri, signature, publicKeyPem)) {
    throw new StateError('key_mismatch', 'the private key does not match the public key');
  }
  return derToPem(
    derSequence([cri, sha256WithRsaAlgorithm(), derBitString(signature)]),
    'CERTIFICATE REQUEST',
  );
}
