// Certificate verification against the kds root CA (RFC 5280 section 6, reduced to kds's one-level
// chain): a structured Verdict with a code, never a bare boolean. The checks run in a FIXED order and
// the first failure decides the verdict:
//   parse (malformed) -> issuer name/AKI (unknown_issuer) -> signature (bad_signature) ->
//   validity window of the certificate and the CA (expired, not_yet_valid) -> usage (wrong_usage) ->
//   name (wrong_name) -> revocation (revoked).
// Signature and issuer checks are node:crypto's X509Certificate (OpenSSL's X509_check_issued and
// X509_verify), not our own parsing.
import { KdsError, AuthError, InternalError, type CodeOf } from '../errors.js';
import { parseCertificate, x509Of, type ParsedCertificate } from './x509.js';
import { OID } from './oids.js';
import type { ReasonName } from '../revocation-reasons.js';
import { notYetValidHint } from './clock-skew.js';

export { fingerprint, fingerprintMatches, normalizeFingerprint } from './fingerprint.js';

export type VerdictCode =
  | 'ok'
  | 'expired'
  | 'not_yet_valid'
  | 'bad_signature'
  | 'unknown_issuer'
  | 'revoked'
  | 'wrong_usage'
  | 'wrong_name'
  | 'malformed';

export interface Verdict {
  code: VerdictCode;
  serialHex?: string;
  subject?: string;
  reason?: ReasonName;
  revokedAt?: number;
  /**
   * 'issuer': the certificate that failed is the issuing (root) CA's, not the one being verified;
   * serialHex and subject are then the CA's, so an error names the certificate that is at fault.
   */
  certificate?: 'issuer';
  /** not_yet_valid: when the failing certificate starts to be valid. */
  notBefore?: number;
  /** expired: when the failing certificate stopped being valid. */
  notAfter?: number;
  detail: string;
}

export interface VerifyOptions {
  now?: number;
  usage?: 'clientAuth' | 'serverAuth' | 'any';
  expectName?: string;
  revocation?: (serialHex: string) => { reason: ReasonName; revokedAt: number } | undefined;
}

/** leaf -> the CA certificates it was verified as issued and signed by (steps 2 and 3 below). */
const chainVerified = new WeakMap<ParsedCertificate, WeakSet<ParsedCertificate>>();

/**
 * RFC 5280 4.1.2.5: "The validity period for a certificate is the period of time from notBefore through
 * notAfter, inclusive." Times in certificates have whole seconds, so the comparison is at second
 * resolution: the whole notAfter second is still valid, and a certificate has expired from
 * notAfter + 1 s on. The KDC ends a live session at that same moment (server/kdc/connection.ts).
 */
export function pastNotAfter(notAfter: number, now: number): boolean {
  return Math.floor(now / 1000) * 1000 > notAfter;
}

export function verifyCertificate(
  cert: string | Buffer | ParsedCertificate,
  ca: ParsedCertificate,
  opts: VerifyOptions = {},
): Verdict {
  // 1. parse
  let leaf: ParsedCertificate;
  if (typeof cert === 'string' || Buffer.isBuffer(cert)) {
    try {
      leaf = parseCertificate(cert);
    } catch (err) {
      if (err instanceof KdsError) return { code: 'malformed', detail: err.message };
      throw err;
    }
  } else {
    leaf = cert;
  }
  const who = { serialHex: leaf.serialHex, subject: leaf.subjectCN };
  const verdict = (code: VerdictCode, detail: string): Verdict => ({ code, ...who, detail });
  // RFC 5280 4.2: "A certificate-using system MUST reject the certificate if it encounters a critical
  // extension it does not recognize".
  if (leaf.unknownCriticalExtensions.length > 0) {
    return verdict('malformed', `unrecognized critical extension ${leaf.unknownCriticalExtensions[0]}`);
  }

  // Steps 2 and 3 depend only on the two certificates: a pair that passed once is remembered (the KDC
  // hands the same ParsedCertificate object back for a returning client's certificate: server/kdc/
  // cert-check.ts caches them by fingerprint), saving an RSA verification per handshake. Failures are
  // never remembered, and everything from step 4 on is evaluated every time.
  if (!chainVerified.get(leaf)?.has(ca)) {
    // 2. issuer: subject/issuer names and AKI/SKI must match, and the CA must be a CA (OpenSSL's
    //    X509_check_issued also requires keyCertSign when the CA has a keyUsage extension).
    const leafX509 = x509Of(leaf);
    const caX509 = x509Of(ca);
    if (!ca.isCA || !leafX509.checkIssued(caX509)) {
      return verdict('unknown_issuer', `not issued by ${ca.subject}`);
    }

    // 3. signature, with the one algorithm kds issues.
    if (leaf.signatureAlgorithm !== OID.sha256WithRSAEncryption) {
      return verdict('bad_signature', `unsupported signature algorithm ${leaf.signatureAlgorithm}`);
    }
    let signatureOk = false;
    try {
      signatureOk = leafX509.verify(caX509.publicKey);
    } catch {
      signatureOk = false;
    }
    if (!signatureOk) return verdict('bad_signature', 'signature verification failed');
    let verifiedUnder = chainVerified.get(leaf);
    if (verifiedUnder === undefined) chainVerified.set(leaf, (verifiedUnder = new WeakSet()));
    verifiedUnder.add(ca);
  }

  // 4. validity (pastNotAfter below for the end of it).
  const now = Math.floor((opts.now ?? Date.now()) / 1000) * 1000;
  if (now < leaf.notBefore) {
    return {
      ...verdict('not_yet_valid', `valid from ${new Date(leaf.notBefore).toISOString()}`),
      notBefore: leaf.notBefore,
    };
  }
  if (pastNotAfter(leaf.notAfter, opts.now ?? Date.now())) {
    return {
      ...verdict('expired', `expired ${new Date(leaf.notAfter).toISOString()}`),
      notAfter: leaf.notAfter,
    };
  }
  // The CA's window: the verdict names the CA certificate, the one at fault (a root not valid yet must
  // not be reported as its leaf, e.g. the KDC's certificate, being not valid yet).
  const issuer = { serialHex: ca.serialHex, subject: ca.subjectCN, certificate: 'issuer' as const };
  if (now < ca.notBefore) {
    return {
      code: 'not_yet_valid',
      ...issuer,
      notBefore: ca.notBefore,
      detail: `the issuing CA certificate is not yet valid: valid from ${new Date(ca.notBefore).toISOString()}`,
    };
  }
  if (pastNotAfter(ca.notAfter, opts.now ?? Date.now())) {
    return {
      code: 'expired',
      ...issuer,
      notAfter: ca.notAfter,
      detail: `the issuing CA certificate has expired: expired ${new Date(ca.notAfter).toISOString()}`,
    };
  }

  // 5. usage: an end-entity key, with the extended key usage asked for.
  if (leaf.isCA) return verdict('wrong_usage', 'a CA certificate is not an end-entity credential');
  if (leaf.keyUsage.length > 0 && !leaf.keyUsage.includes('digitalSignature')) {
    return verdict('wrong_usage', 'key usage lacks digitalSignature');
  }
  const usage = opts.usage ?? 'any';
  if (usage !== 'any' && !leaf.extKeyUsage.includes(usage)) {
    return verdict('wrong_usage', `extended key usage lacks ${usage}`);
  }

  // 6. name: the identity is the CN; a server may also be named by one of its SANs (RFC 6125 6.4).
  if (opts.expectName !== undefined && !namesMatch(leaf, opts.expectName)) {
    return verdict(
      'wrong_name',
      `certificate is for ${JSON.stringify(leaf.subjectCN)}, not ${JSON.stringify(opts.expectName)}`,
    );
  }

  // 7. revocation
  const revoked = opts.revocation?.(leaf.serialHex);
  if (revoked) {
    return {
      code: 'revoked',
      ...who,
      reason: revoked.reason,
      revokedAt: revoked.revokedAt,
      // Printed after the verdict's code ("revoked: ..."): the word once.
      detail: `since ${new Date(revoked.revokedAt).toISOString()} (${revoked.reason})`,
    };
  }
  return verdict('ok', 'certificate is valid');
}

function namesMatch(cert: ParsedCertificate, name: string): boolean {
  if (cert.subjectCN === name) return true;
  const lower = name.toLowerCase();
  return cert.sans.dns.some((d) => d.toLowerCase() === lower) || cert.sans.ip.includes(name);
}

const ERROR_OF: Record<Exclude<VerdictCode, 'ok'>, { code: CodeOf<'auth'>; message: string }> = {
  expired: { code: 'cert_expired', message: 'certificate expired' },
  not_yet_valid: { code: 'cert_not_yet_valid', message: 'certificate not yet valid' },
  bad_signature: { code: 'cert_bad_signature', message: 'certificate signature verification failed' },
  unknown_issuer: { code: 'cert_unknown_issuer', message: 'certificate not issued by the trusted CA' },
  revoked: { code: 'cert_revoked', message: 'certificate revoked' },
  wrong_usage: { code: 'cert_wrong_usage', message: 'certificate not valid for this use' },
  wrong_name: { code: 'cert_wrong_name', message: 'certificate is for another name' },
  malformed: { code: 'cert_malformed', message: 'certificate malformed' },
};

/** kds's chain has one level: the issuing CA is the pinned root. */
const ISSUER_MESSAGE: Partial<Record<VerdictCode, string>> = {
  expired: 'root CA certificate expired',
  not_yet_valid: 'root CA certificate not yet valid',
};

/**
 * The AuthError for a failed verdict (`cert_*` codes), with a fixed message and the non-secret facts
 * in details. An `ok` verdict is not an error: asking for one is a bug and yields code `internal`.
 * `localNow`: the verdict was reached on this machine's clock, for a person at it; a certificate not
 * valid yet then says when it starts and what that says about the clock (the KDC, answering a peer,
 * passes nothing and keeps the fixed message).
 */
export function verdictToError(verdict: Verdict, opts: { localNow?: number } = {}): KdsError {
  if (verdict.code === 'ok') return new InternalError('internal', 'verdict ok is not an error');
  const { code } = ERROR_OF[verdict.code];
  let message =
    (verdict.certificate === 'issuer' ? ISSUER_MESSAGE[verdict.code] : undefined) ??
    ERROR_OF[verdict.code].message;
  if (opts.localNow !== undefined && verdict.code === 'not_yet_valid' && verdict.notBefore !== undefined) {
    message = `${message}: ${notYetValidHint(verdict.notBefore, opts.localNow)}`;
  }
  const details: Record<string, unknown> = { verdict: verdict.code };
  if (verdict.certificate !== undefined) details.certificate = verdict.certificate;
  if (verdict.serialHex !== undefined) details.serialHex = verdict.serialHex;
  if (verdict.subject !== undefined) details.subject = verdict.subject;
  if (verdict.notBefore !== undefined) details.notBefore = verdict.notBefore;
  if (verdict.notAfter !== undefined) details.notAfter = verdict.notAfter;
  if (verdict.reason !== undefined) details.reason = verdict.reason;
  if (verdict.revokedAt !== undefined) details.revokedAt = verdict.revokedAt;
  return new AuthError(code, message, details);
}
