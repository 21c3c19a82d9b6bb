// Revocation reasons: the CRLReason enumeration of RFC 5280 section 5.3.1, names <-> integer codes. The
// one list of them: the CRL codec, the schema, the CLI options and the key service all read it here.
// Outside shared/pki/ and importing only errors.ts, so the CLI can use it while loading --help.
//
//   CRLReason ::= ENUMERATED {
//        unspecified             (0),
//        keyCompromise           (1),
//        cACompromise            (2),
//        affiliationChanged      (3),
//        superseded              (4),
//        cessationOfOperation    (5),
//        certificateHold         (6),
//             -- value 7 is not used
//        removeFromCRL           (8),
//        privilegeWithdrawn      (9),
//        aACompromise           (10) }
import { InputError } from './errors.js';

export const REASON_CODES = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;

export type ReasonName = keyof typeof REASON_CODES;

/**
 * Reasons an operator may give when revoking. removeFromCRL is left out: RFC 5280 5.3.1 reserves it
 * for delta CRLs ("removeFromCRL ... only found in delta CRLs"), which kds does not publish.
 */
export const REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  'privilegeWithdrawn',
  'aACompromise',
] as const satisfies readonly ReasonName[];

export type RevocationReason = (typeof REVOCATION_REASONS)[number];

/**
 * Reasons a client or the admin may give for revoking a symmetric key: the RFC 5280 names that can be
 * about a key two parties share. Left out: certificateHold (RFC 5280 5.3.1: a hold is temporary and
 * can be lifted; revoking a key is final, its material is deleted), cACompromise and aACompromise
 * (the key of a CA or of an attribute authority, not this key).
 */
export const KEY_REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
] as const satisfies readonly RevocationReason[];

/** The reason the KDC itself records when a party's certificate is revoked (never given by a person). */
export const CERTIFICATE_REVOKED = 'certificateRevoked';

/** What a key revocation may record: a reason a person gave, or the certificate cascade's. */
export type KeyRevocationReason = (typeof KEY_REVOCATION_REASONS)[number] | typeof CERTIFICATE_REVOKED;

const BY_CODE = new Map<number, ReasonName>(
  Object.entries(REASON_CODES).map(([name, code]) => [code, name as ReasonName]),
);
const BY_LOWER_NAME = new Map<string, RevocationReason>(REVOCATION_REASONS.map((n) => [n.toLowerCase(), n]));

export function reasonCode(name: ReasonName): number {
  const code = REASON_CODES[name];
  if (code === undefined)
    throw new InputError('bad_reason', `unknown revocation reason ${JSON.stringify(name)}`);
  return code;
}

/** Decode a CRLReason value read from a CRL entry (7 and anything above 10 are invalid). */
export function reasonFromCode(code: number): ReasonName {
  const name = BY_CODE.get(code);
  if (name === undefined) throw new InputError('bad_reason', `invalid CRLReason value ${code}`);
  return name;
}

/**
 * Parse an operator-supplied reason: an RFC 5280 name in any letter case (`keyCompromise`,
 * `keycompromise`) or its decimal code (`1`). Throws InputError `bad_reason` otherwise.
 */
export function parseReason(input: string): RevocationReason {
  const text = String(input).trim();
  if (/^\d{1,2}$/.test(text)) {
    const name = BY_CODE.get(Number(text));
    if (name !== undefined && name !== 'removeFromCRL') return name;
  }
  const byName = BY_LOWER_NAME.get(text.toLowerCase());
  if (byName !== undefined) return byName;
  throw new InputError(
    'bad_reason',
    `unknown revocation reason ${JSON.stringify(text.slice(0, 40))}; expected one of ${REVOCATION_REASONS.join(', ')}`,
  );
}

/** A reason for a symmetric key: KEY_REVOCATION_REASONS (any letter case or code), or `certificateRevoked`. */
export function parseKeyReason(input: string): KeyRevocationReason {
  if (String(input).trim().toLowerCase() === 'certificaterevoked') return CERTIFICATE_REVOKED;
  const reason = parseReason(input);
  if (!(KEY_REVOCATION_REASONS as readonly string[]).includes(reason)) {
    throw new InputError(
      'bad_reason',
      `${reason} is not a reason for revoking a key; expected one of ${KEY_REVOCATION_REASONS.join(', ')}`,
    );
  }
  return reason as KeyRevocationReason;
}

/** A reason kds records for a certificate: any CRLReason but removeFromCRL (REVOCATION_REASONS). */
export function isRevocationReason(value: unknown): value is RevocationReason {
  return typeof value === 'string' && (REVOCATION_REASONS as readonly string[]).includes(value);
}
