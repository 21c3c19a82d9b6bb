// Key states and verification verdicts of the symmetric-key service (docs/keys.md), with the CLI exit code
// of each verdict (`kds client verify-key`: valid 0, revoked 3, mismatch 4, expired 5, not_found 6).
import { EXIT } from '../errors.js';

/** States of a key record at the KDC. */
export const KEY_STATES = ['active', 'revoked', 'expired', 'superseded'] as const;
export type KeyState = (typeof KEY_STATES)[number];

export const VERDICTS = ['valid', 'mismatch', 'revoked', 'expired', 'not_found'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** Revocation reasons for symmetric keys: shared/revocation-reasons.ts, with the RFC 5280 reasons. */
export { KEY_REVOCATION_REASONS, CERTIFICATE_REVOKED } from '../revocation-reasons.js';

export function verdictExitCode(verdict: Verdict): number {
  switch (verdict) {
    case 'valid':
      return EXIT.ok;
    case 'revoked':
      return EXIT.revoked;
    case 'mismatch':
      return EXIT.invalid;
    case 'expired':
      return EXIT.expired;
    case 'not_found':
      return EXIT.notFound;
  }
}

/** The verdict a record's state gives when its digest matched. A superseded key is no longer usable. */
export function verdictForState(state: KeyState): Verdict {
  switch (state) {
    case 'active':
      return 'valid';
    case 'revoked':
    case 'superseded':
      return 'revoked';
    case 'expired':
      return 'expired';
  }
}
