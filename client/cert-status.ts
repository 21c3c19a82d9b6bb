// Presenting a `cert.status` answer (the KDC's OCSP-like verdict on a serial): serial normalisation,
// one human line, and the exit code scripts test (0 good, 3 revoked, 6 unknown).
import { EXIT, InputError } from '../shared/errors.js';
import { terminalSafe as safe } from '../shared/text/terminal-safe.js';

/** Serials are lowercase hex without colons everywhere in kds; accept `AB:CD` and `0xabcd` from humans. */
export function normalizeSerial(text: string): string {
  const hex = text.trim().replace(/^0x/i, '').replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{1,64}$/.test(hex)) throw new InputError('bad_request', 'serial: expected hex digits');
  return hex;
}

export function describeStatus(serialHex: string, out: Record<string, unknown>): string {
  if (out.status === 'revoked') {
    const at = typeof out.revokedAt === 'number' ? new Date(out.revokedAt).toISOString() : 'unknown time';
    return `${safe(serialHex)}: revoked (${safe(out.reason ?? 'unspecified')}, ${at})`;
  }
  return `${safe(serialHex)}: ${safe(out.status)}`;
}

export function statusExitCode(out: Record<string, unknown>): number {
  if (out.status === 'good') return EXIT.ok;
  if (out.status === 'revoked') return EXIT.revoked;
  return EXIT.notFound;
}
