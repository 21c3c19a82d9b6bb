// Presenting a `cert.status` answer (the KDC's OCSP-like verdict on a serial): serial normalisation,
// one human line, and the exit code scripts test (0 good, 3 revoked, 6 unknown).
import { EXIT, InputError } from '../shared/errors.js';
import { terminalSafe as safe } from '../shared/text/terminal-safe.js';
import type { ResponseBody } from '../shared/protocol/catalog.js';
import type { RevocationReason } from '../shared/revocation-reasons.js';

type CertStatus = ResponseBody<'cert.status'>;

/** Serials are lowercase hex without colons everywhere in kds; accept `AB:CD` and `0xabcd` from humans. */
export function normalizeSerial(text: string): string {
  const hex = text.trim().replace(/^0x/i, '').replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{1,64}$/.test(hex)) throw new InputError('bad_request', 'serial: expected hex digits');
  return hex;
}

/**
 * The revocation a `cert.status` answer reports, if any. The schema's rule guarantees `reason` and
 * `revokedAt` exactly when the status is `revoked`; its type cannot say so, hence the check.
 */
export function revocationIn(out: CertStatus): { reason: RevocationReason; revokedAt: number } | undefined {
  return out.status === 'revoked' && out.reason !== undefined && out.revokedAt !== undefined
    ? { reason: out.reason, revokedAt: out.revokedAt }
    : undefined;
}

export function describeStatus(serialHex: string, out: CertStatus): string {
  if (out.status === 'revoked') {
    const at = out.revokedAt === undefined ? 'unknown time' : new Date(out.revokedAt).toISOString();
    return `${safe(serialHex)}: revoked (${safe(out.reason ?? 'unspecified')}, ${at})`;
  }
  return `${safe(serialHex)}: ${safe(out.status)}`;
}

export function statusExitCode(out: CertStatus): number {
  if (out.status === 'good') return EXIT.ok;
  if (out.status === 'revoked') return EXIT.revoked;
  return EXIT.notFound;
}
