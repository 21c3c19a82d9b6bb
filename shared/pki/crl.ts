// X.509 v2 CRLs (RFC 5280 section 5): a builder fast enough to re-sign a 100k-entry list on every
// revocation, and a parser for `kds crl show`, tests and consistency checks.
//
//   CertificateList  ::=  SEQUENCE  { tbsCertList TBSCertList, signatureAlgorithm AlgorithmIdentifier,
//                                     signatureValue BIT STRING }
//   TBSCertList  ::=  SEQUENCE  {
//        version                 Version OPTIONAL, -- if present, MUST be v2
//        signature               AlgorithmIdentifier,
//        issuer                  Name,
//        thisUpdate              Time,
//        nextUpdate              Time OPTIONAL,
//        revokedCertificates     SEQUENCE OF SEQUENCE  {
//             userCertificate         CertificateSerialNumber,
//             revocationDate          Time,
//             crlEntryExtensions      Extensions OPTIONAL } OPTIONAL,
//        crlExtensions           [0]  EXPLICIT Extensions OPTIONAL }
//
// Delta CRLs (RFC 5280 5.2.4): a CrlSpec with `deltaBase` builds a delta CRL, which carries the critical
// Delta CRL Indicator naming the complete CRL it completes and lists only what changed since; a complete
// CRL may carry a Freshest CRL extension (5.2.6) saying where its delta is published
// (server/ca/crl-sign.ts decides when each is issued).
//
// Speed (target: revoke + publish < 250 ms at 100k entries): each entry is DER-encoded ONCE, when it
// is added, and kept as a Buffer. build() writes the few header fields, one hand-written length header
// for revokedCertificates, and concatenates: no per-entry work besides a memcpy. node-forge has no CRL
// builder and re-encoding 100k forge ASN.1 objects per revocation would take seconds.
import { createPublicKey, KeyObject, verify as cryptoVerify } from 'node:crypto';
import { InputError, KdsError, InternalError } from '../errors.js';
import {
  contextTag,
  derBitString,
  derBoolean,
  derHeader,
  derOctetString,
  derOid,
  derSequence,
  derTime,
  derTlv,
  derUnsignedInteger,
  expectTagOf,
  readBigInt,
  readBitString,
  readBoolean,
  readOid,
  readOne,
  readSmallInt,
  readTime,
  readTimeAt,
  readHeader,
  sequenceOf,
  TAG,
  type Tlv,
} from './asn1.js';
import { commonNameOf, decodeName } from './dn.js';
import { computeKeyIdentifier } from './extensions.js';
import { OID } from './oids.js';
import { derToPem, pemToDer } from './pem.js';
import { reasonCode, reasonFromCode, type ReasonName } from '../revocation-reasons.js';
import { normalizeSerialHex, serialHexFromBytes } from './serial.js';
import { parseCertificate, sha256WithRsaAlgorithm, type ParsedCertificate } from './x509.js';
import {
  PKCS1_SHA256,
  requireScheme,
  type CertificateSigner,
  type SyncCertificateSigner,
} from '../crypto/signer.js';

export interface CrlEntry {
  serialHex: string;
  revokedAt: number;
  reason: ReasonName;
}

export interface CrlSpec {
  issuerCertPem: string;
  crlNumber: bigint | number;
  thisUpdate: number;
  nextUpdate: number;
  /**
   * Build a DELTA CRL completing the complete CRL with this number (RFC 5280 5.2.4 BaseCRLNumber);
   * absent for a complete CRL.
   */
  deltaBase?: bigint | number;
  /** Complete CRLs only: where the delta CRL is published (RFC 5280 5.2.6 Freshest CRL, a URI). */
  freshestCrlUrl?: string;
}

/** What changes from one CRL to the next. */
export interface CrlUpdate {
  crlNumber?: bigint | number;
  thisUpdate?: number;
  nextUpdate?: number;
}

/** RFC 5280 5.2.3: "CRL issuers conforming to this profile MUST NOT use CRLNumber values longer than 20 octets." */
const MAX_CRL_NUMBER = (1n << 159n) - 1n;

// crlEntryExtensions for each reasonCode, encoded once:
//   SEQUENCE { SEQUENCE { reasonCode OID, OCTET STRING { ENUMERATED n } } }
const REASON_EXTENSIONS = new Map<number, Buffer>();
function reasonExtensions(code: number): Buffer {
  let ext = REASON_EXTENSIONS.get(code);
  if (!ext) {
    const value = derUnsignedInteger(code, TAG.ENUMERATED);
    ext = derSequence([derSequence([derOid(OID.reasonCode), derOctetString(value)])]);
    REASON_EXTENSIONS.set(code, ext);
  }
  return ext;
}

function bad(message: string): InputError {
  return new InputError('bad_request', message);
}

/**
 * Encode one revokedCertificates element:
 *   SEQUENCE { userCertificate INTEGER, revocationDate Time, crlEntryExtensions Extensions OPTIONAL }
 * written straight into one Buffer (every part is shorter than 128 bytes, so all lengths are one octet):
 * loading 100k entries at CA start-up stays well under a second.
 */
export function encodeCrlEntry(entry: CrlEntry): Buffer {
  if (!Number.isFinite(entry.revokedAt)) throw bad('revokedAt must be a time in ms');
  const code = reasonCode(entry.reason);
  if (entry.reason === 'removeFromCRL') {
    throw new InputError('bad_reason', 'removeFromCRL is only for delta CRLs (RFC 5280 5.3.1)');
  }
  const serial = Buffer.from(normalizeSerialHex(entry.serialHex), 'hex'); // 1..20 octets, no leading 0
  const pad = serial[0]! & 0x80 ? 1 : 0; // X.690 8.3.3: keep the INTEGER positive
  // RFC 5280 5.1.2.6: revocationDate follows the Time rules of 5.1.2.4 (UTCTime through 2049).
  const time = derTime(entry.revokedAt);
  // RFC 5280 5.3.1: "the reason code CRL entry extension SHOULD be absent instead of using the
  // unspecified (0) reasonCode value."
  const ext = code === 0 ? undefined : reasonExtensions(code);
  const contentLength = 2 + pad + serial.length + time.length + (ext ? ext.length : 0);
  const out = Buffer.allocUnsafe(2 + contentLength);
  out[0] = TAG.SEQUENCE;
  out[1] = contentLength;
  out[2] = TAG.INTEGER;
  out[3] = pad + serial.length;
  let pos = 4;
  if (pad) out[pos++] = 0;
  pos += serial.copy(out, pos);
  pos += time.copy(out, pos);
  if (ext) ext.copy(out, pos);
  return out;
}

export class CrlBuilder {
  // Entries are only ever appended, so their DER lives in one growing Buffer (the "arena"): build()
  // copies it once into the TBSCertList instead of concatenating 100k small Buffers.
  readonly #serials = new Set<string>();
  #arena: Buffer = Buffer.allocUnsafe(64 * 1024);
  #arenaLength = 0;
  readonly #issuerDer: Buffer;
  readonly #akiExtension: Buffer;
  readonly #issuerKey: KeyObject;
  /** Delta CRL Indicator / Freshest CRL extensions, encoded once (empty when not used). */
  readonly #extraExtensions: Buffer[] = [];
  /** RFC 5280 5.2.4 BaseCRLNumber when this builds a delta CRL. */
  readonly deltaBase: bigint | undefined;
  crlNumber: bigint;
  thisUpdate: number;
  nextUpdate: number;

  constructor(spec: CrlSpec) {
    const ca: ParsedCertificate = parseCertificate(spec.issuerCertPem);
    // RFC 5280 4.2.1.3: "the cRLSign bit ... MUST be asserted" in the key usage of a CRL issuer.
    if (!ca.isCA || !ca.keyUsage.includes('cRLSign')) throw bad('CRL issuer must be a CA with cRLSign');
    this.#issuerDer = ca.subjectDer;
    this.#issuerKey = createPublicKey(ca.publicKeyPem);
    // RFC 5280 5.2.1: "Conforming CRL issuers MUST use the key identifier method, and MUST include this
    // extension in all CRLs issued." keyIdentifier = the CA certificate's subjectKeyIdentifier.
    const keyId = ca.skiHex
      ? Buffer.from(ca.skiHex, 'hex')
      : computeKeyIdentifier(this.#issuerKey.export({ type: 'spki', format: 'der' }));
    this.#akiExtension = derSequence([
      derOid(OID.authorityKeyIdentifier),
      derOctetString(derSequence([derTlv(contextTag(0, false), keyId)])),
    ]);
    this.crlNumber = checkCrlNumber(spec.crlNumber);
    this.thisUpdate = spec.thisUpdate;
    this.nextUpdate = spec.nextUpdate;
    if (spec.deltaBase !== undefined) {
      // RFC 5280 5.2.6: the Freshest CRL extension "MUST NOT appear in delta CRLs."
      if (spec.freshestCrlUrl !== undefined) throw bad('a delta CRL cannot carry a Freshest CRL extension');
      this.deltaBase = checkCrlNumber(spec.deltaBase);
      // RFC 5280 5.2.4: "When a conforming CRL issuer generates a delta CRL, the delta CRL MUST include
      // a critical delta CRL indicator extension."  DeltaCRLIndicator ::= BaseCRLNumber (an INTEGER).
      this.#extraExtensions.push(
        derSequence([
          derOid(OID.deltaCRLIndicator),
          derBoolean(true),
          derOctetString(derUnsignedInteger(this.deltaBase)),
        ]),
      );
    } else {
      this.deltaBase = undefined;
      if (spec.freshestCrlUrl !== undefined)
        this.#extraExtensions.push(freshestCrlExtension(spec.freshestCrlUrl));
    }
  }

  /** A builder holding `entries` (duplicates by serial are kept once). */
  static from(spec: CrlSpec, entries: Iterable<CrlEntry>): CrlBuilder {
    const b = new CrlBuilder(spec);
    for (const e of entries) b.add(e);
    return b;
  }

  /** Add a revoked certificate; false (and no change) if its serial is already listed. */
  add(entry: CrlEntry): boolean {
    const serialHex = normalizeSerialHex(entry.serialHex);
    if (this.#serials.has(serialHex)) return false;
    const der = encodeCrlEntry({ ...entry, serialHex });
    if (this.#arenaLength + der.length > this.#arena.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.#arena.length * 2, this.#arenaLength + der.length));
      this.#arena.copy(grown, 0, 0, this.#arenaLength);
      this.#arena = grown;
    }
    der.copy(this.#arena, this.#arenaLength);
    this.#arenaLength += der.length;
    this.#serials.add(serialHex);
    return true;
  }

  has(serialHex: string): boolean {
    return this.#serials.has(normalizeSerialHex(serialHex));
  }

  get size(): number {
    return this.#serials.size;
  }

  /** The DER of TBSCertList for the current (or updated) number and dates. Updates are kept. */
  tbsCertList(update: CrlUpdate = {}): Buffer {
    if (update.crlNumber !== undefined) this.crlNumber = checkCrlNumber(update.crlNumber);
    // RFC 5280 5.2.4: the delta CRL's own number follows its base's in the one shared sequence.
    if (this.deltaBase !== undefined && this.crlNumber < this.deltaBase) {
      throw bad('a delta CRL cannot be numbered below its base CRL');
    }
    if (update.thisUpdate !== undefined) this.thisUpdate = update.thisUpdate;
    if (update.nextUpdate !== undefined) this.nextUpdate = update.nextUpdate;
    if (!Number.isFinite(this.thisUpdate) || !Number.isFinite(this.nextUpdate))
      throw bad('CRL dates must be times in ms');
    // RFC 5280 5.1.2.5: "Conforming CRL issuers MUST include the nextUpdate time in all CRLs", and it
    // is "the date by which the next CRL will be issued", so it lies after thisUpdate.
    if (this.nextUpdate <= this.thisUpdate) throw bad('nextUpdate must be after thisUpdate');

    const crlExtensions = derTlv(contextTag(0, true), [
      derSequence([
        this.#akiExtension,
        // RFC 5280 5.2.3: cRLNumber "MUST include this extension in all CRLs and MUST mark this extension
        // as non-critical" (so no critical BOOLEAN: DER omits the DEFAULT FALSE).
        derSequence([derOid(OID.cRLNumber), derOctetString(derUnsignedInteger(this.crlNumber))]),
        ...this.#extraExtensions,
      ]),
    ]);
    const head = [
      derUnsignedInteger(1), // version v2 (RFC 5280 5.1.2.1: "this field MUST be present" with extensions)
      sha256WithRsaAlgorithm(),
      this.#issuerDer, // exact bytes of the CA certificate's subject (RFC 5280 5.1.2.3)
      derTime(this.thisUpdate),
      derTime(this.nextUpdate),
    ];
    const parts: Buffer[] = [...head];
    // RFC 5280 5.1.2.6: "When there are no revoked certificates, the revoked certificates list MUST be
    // absent."
    if (this.#arenaLength > 0) {
      parts.push(derHeader(TAG.SEQUENCE, this.#arenaLength), this.#arena.subarray(0, this.#arenaLength));
    }
    parts.push(crlExtensions);
    let length = 0;
    for (const p of parts) length += p.length;
    return Buffer.concat([derHeader(TAG.SEQUENCE, length), ...parts]);
  }

  /** Sign (async Signer, e.g. node:crypto callback form) and return the CRL as PEM (label X509 CRL). */
  async build(sign: CertificateSigner, update?: CrlUpdate): Promise<string> {
    requireScheme(sign, PKCS1_SHA256, 'a CRL');
    const tbs = this.tbsCertList(update);
    return this.#finish(tbs, await sign(tbs));
  }

  /** Same with a synchronous signer, for callers that must sign inside a synchronous DB transaction. */
  buildSync(sign: SyncCertificateSigner, update?: CrlUpdate): string {
    requireScheme(sign, PKCS1_SHA256, 'a CRL');
    const tbs = this.tbsCertList(update);
    return this.#finish(tbs, sign(tbs));
  }

  #finish(tbs: Buffer, signature: Buffer): string {
    // Self-check (one public-key operation plus a hash of the list, small next to the signature): a
    // signer with the wrong key must fail here, not in every relying party.
    if (!cryptoVerify('sha256', tbs, this.#issuerKey, signature)) {
      throw new InternalError('internal', 'CRL signature does not verify with the issuer key');
    }
    return derToPem(derSequence([tbs, sha256WithRsaAlgorithm(), derBitString(signature)]), 'X509 CRL');
  }
}

/**
 * RFC 5280 5.2.6: "The freshest CRL extension identifies how delta CRL information for this complete
 * CRL is obtained. Conforming CRL issuers MUST mark this extension as non-critical." Its syntax is that
 * of cRLDistributionPoints: SEQUENCE { DistributionPoint { [0] { fullName [0] { [6] URI } } } }.
 */
function freshestCrlExtension(url: string): Buffer {
  if (!/^[\x21-\x7e]+$/.test(url)) throw bad('the Freshest CRL URL must be printable ASCII');
  const uri = derTlv(contextTag(6, false), Buffer.from(url, 'ascii'));
  const point = derSequence([derTlv(contextTag(0, true), [derTlv(contextTag(0, true), [uri])])]);
  return derSequence([derOid(OID.freshestCRL), derOctetString(derSequence([point]))]);
}

function checkCrlNumber(n: bigint | number): bigint {
  let v: bigint;
  try {
    v = BigInt(n);
  } catch {
    throw bad('CRL number must be an integer');
  }
  if (v < 0n || v > MAX_CRL_NUMBER) throw bad('CRL number must be 0..2^159-1 (RFC 5280 5.2.3)');
  return v;
}

// ---------------------------------------------------------------------------------------------------
// Parsing

export interface ParsedCrl {
  pem: string;
  der: Buffer;
  version: number; // 2 for v2
  crlNumber: bigint;
  thisUpdate: number;
  nextUpdate: number;
  issuerCN: string;
  issuerDer: Buffer;
  akiHex?: string;
  signatureAlgorithm: string;
  entries: CrlEntry[];
  /** RFC 5280 5.2.4: set iff this is a delta CRL (the number of the complete CRL it completes). */
  baseCrlNumber?: bigint;
  /** RFC 5280 5.2.6 Freshest CRL URIs (complete CRLs): where the delta CRL is published. */
  freshestCrlUrls: string[];
  /** True iff the issuer Name equals the CA's subject and the signature verifies with the CA's key. */
  signatureValid(caCert: string | ParsedCertificate): boolean;
  verifySignature(caCert: string | ParsedCertificate): boolean; // alias of signatureValid
}

function malformed(what: string, cause?: unknown): InputError {
  return new InputError(
    'malformed_pem',
    `not a valid CRL (${what})`,
    undefined,
    cause === undefined ? undefined : { cause },
  );
}

/** Parse a CRL (PEM label X509 CRL, or DER). Throws InputError `malformed_pem`. */
export function parseCrl(pemOrDer: string | Buffer): ParsedCrl {
  const der = typeof pemOrDer === 'string' ? pemToDer(pemOrDer, 'X509 CRL') : Buffer.from(pemOrDer);
  try {
    return decodeCrl(der);
  } catch (err) {
    if (err instanceof KdsError && (err.code === 'malformed' || err.code === 'bad_reason'))
      throw malformed(err.message, err);
    throw err;
  }
}

function decodeCrl(der: Buffer): ParsedCrl {
  const top = sequenceOf(readOne(der));
  if (top.length !== 3) throw malformed('CertificateList has 3 fields');
  const [tbsTlv, sigAlgTlv, sigTlv] = top as [Tlv, Tlv, Tlv];
  const tbs = sequenceOf(tbsTlv);
  let i = 0;
  let version = 1;
  if (tbs[0]?.tag === TAG.INTEGER) {
    version = readSmallInt(tbs[0]) + 1;
    if (version !== 2) throw malformed('version must be v2');
    i = 1;
  }
  const innerAlg = tbs[i];
  const issuerTlv = tbs[i + 1];
  const thisUpdateTlv = tbs[i + 2];
  if (!innerAlg || !issuerTlv || !thisUpdateTlv) throw malformed('TBSCertList is missing fields');
  if (!innerAlg.bytes.equals(sigAlgTlv.bytes)) throw malformed('signature algorithm mismatch');
  const [algOid] = sequenceOf(sigAlgTlv);
  if (!algOid) throw malformed('AlgorithmIdentifier');
  const signatureAlgorithm = readOid(algOid);
  const issuer = decodeName(issuerTlv);
  const thisUpdate = readTime(thisUpdateTlv);
  let j = i + 3;
  let nextUpdate: number | undefined;
  const maybeNext = tbs[j];
  if (maybeNext && (maybeNext.tag === TAG.UTC_TIME || maybeNext.tag === TAG.GENERALIZED_TIME)) {
    nextUpdate = readTime(maybeNext);
    j++;
  }
  if (nextUpdate === undefined) throw malformed('nextUpdate is required (RFC 5280 5.1.2.5)');

  let entries: CrlEntry[] = [];
  if (tbs[j]?.tag === TAG.SEQUENCE) {
    entries = decodeEntries(tbs[j]!.content);
    j++;
  }
  let crlNumber: bigint | undefined;
  let akiHex: string | undefined;
  let baseCrlNumber: bigint | undefined;
  const freshestCrlUrls: string[] = [];
  if (tbs[j]?.tag === contextTag(0, true)) {
    const [exts] = sequenceOf(tbs[j]!, contextTag(0, true));
    if (!exts) throw malformed('crlExtensions');
    for (const ext of sequenceOf(exts)) {
      const fields = sequenceOf(ext);
      const oid = readOid(fields[0]!);
      const value = expectTagOf(fields[fields.length - 1]!, TAG.OCTET_STRING).content;
      const critical = fields.length === 3 && readBoolean(fields[1]!);
      if (oid === OID.cRLNumber) crlNumber = readBigInt(readOne(value));
      else if (oid === OID.authorityKeyIdentifier) {
        for (const f of sequenceOf(readOne(value)))
          if (f.tag === contextTag(0, false)) akiHex = f.content.toString('hex');
      } else if (oid === OID.deltaCRLIndicator) {
        // RFC 5280 5.2.4: "The delta CRL indicator is a critical CRL extension".
        if (!critical) throw malformed('the delta CRL indicator must be critical');
        baseCrlNumber = readBigInt(readOne(value));
      } else if (oid === OID.freshestCRL) {
        freshestCrlUrls.push(...distributionPointUris(readOne(value)));
      } else if (critical) {
        // RFC 5280 5.2: "If a CRL contains a critical extension that the application cannot process,
        // then the application MUST NOT use that CRL to determine the status of certificates."
        throw malformed(`unsupported critical CRL extension ${oid}`);
      }
    }
    j++;
  }
  if (j !== tbs.length) throw malformed('unexpected fields in TBSCertList');
  if (crlNumber === undefined) throw malformed('cRLNumber is required (RFC 5280 5.2.3)');
  const { unusedBits, bytes: signature } = readBitString(sigTlv);
  if (unusedBits !== 0) throw malformed('signature bit string');

  const tbsBytes = tbsTlv.bytes;
  const check = (caCert: string | ParsedCertificate): boolean => {
    const ca = typeof caCert === 'string' ? parseCertificate(caCert) : caCert;
    if (!ca.subjectDer.equals(issuer.der)) return false;
    if (signatureAlgorithm !== OID.sha256WithRSAEncryption) return false;
    try {
      return cryptoVerify('sha256', tbsBytes, createPublicKey(ca.publicKeyPem), signature);
    } catch {
      return false;
    }
  };
  let pem: string | undefined;
  const parsed: ParsedCrl = {
    // Computed on first use: re-armoring a 100k-entry CRL costs tens of milliseconds.
    get pem(): string {
      pem ??= derToPem(der, 'X509 CRL');
      return pem;
    },
    der,
    version,
    crlNumber,
    thisUpdate,
    nextUpdate,
    issuerCN: commonNameOf(issuer),
    issuerDer: issuer.der,
    signatureAlgorithm,
    entries,
    signatureValid: check,
    verifySignature: check,
    freshestCrlUrls,
  };
  if (akiHex !== undefined) parsed.akiHex = akiHex;
  if (baseCrlNumber !== undefined) {
    if (baseCrlNumber > crlNumber) throw malformed('delta CRL numbered below its base CRL');
    parsed.baseCrlNumber = baseCrlNumber;
  }
  return parsed;
}

/**
 * revokedCertificates, walked by offsets (no Tlv objects or Buffer views per entry: a 100k-entry CRL
 * parses in a fraction of a second). Our own reasonCode extensions are recognised by comparing bytes
 * with the encodings the builder writes; anything else takes the general decoder.
 */
function decodeEntries(buf: Buffer): CrlEntry[] {
  const out: CrlEntry[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const entry = readHeader(buf, pos);
    if (entry.tag !== TAG.SEQUENCE) throw malformed('revoked certificate entry');
    const serial = readHeader(buf, entry.start, entry.end);
    if (serial.tag !== TAG.INTEGER || serial.end === serial.start) throw malformed('entry serial');
    const first = buf[serial.start]!;
    if (first & 0x80) throw malformed('negative serial');
    if (serial.end - serial.start > 1 && first === 0 && buf[serial.start + 1]! < 0x80) {
      throw malformed('non-minimal INTEGER');
    }
    const time = readHeader(buf, serial.end, entry.end);
    const e: CrlEntry = {
      serialHex: serialHexFromBytes(buf.subarray(serial.start, serial.end)),
      revokedAt: readTimeAt(buf, time.start, time.end, time.tag),
      reason: 'unspecified',
    };
    if (time.end < entry.end) {
      const exts = readHeader(buf, time.end, entry.end);
      if (exts.tag !== TAG.SEQUENCE || exts.end !== entry.end) throw malformed('crlEntryExtensions');
      const last = buf[exts.end - 1]!;
      const known = last >= 1 && last <= 10 && last !== 7 ? reasonExtensions(last) : undefined;
      if (
        known &&
        exts.end - time.end === known.length &&
        buf.compare(known, 0, known.length, time.end, exts.end) === 0
      ) {
        e.reason = reasonFromCode(buf[exts.end - 1]!);
      } else {
        e.reason = decodeEntryReason(readOne(buf.subarray(time.end, exts.end)));
      }
    }
    out.push(e);
    pos = entry.end;
  }
  return out;
}

/** The URIs in CRLDistributionPoints syntax (fullName GeneralNames of each DistributionPoint). */
function distributionPointUris(points: Tlv): string[] {
  const out: string[] = [];
  for (const point of sequenceOf(points)) {
    for (const field of sequenceOf(point)) {
      if (field.tag !== contextTag(0, true)) continue; // distributionPoint
      for (const name of sequenceOf(field, contextTag(0, true))) {
        if (name.tag !== contextTag(0, true)) continue; // fullName (nameRelativeToCRLIssuer is not used)
        for (const general of sequenceOf(name, contextTag(0, true)))
          if (general.tag === contextTag(6, false)) out.push(general.content.toString('latin1'));
      }
    }
  }
  return out;
}

function decodeEntryReason(exts: Tlv): ReasonName {
  let reason: ReasonName = 'unspecified';
  for (const ext of sequenceOf(exts)) {
    const parts = sequenceOf(ext);
    if (readOid(parts[0]!) !== OID.reasonCode) continue;
    const value = expectTagOf(parts[parts.length - 1]!, TAG.OCTET_STRING).content;
    reason = reasonFromCode(readSmallInt(readOne(value), TAG.ENUMERATED));
  }
  return reason;
}
