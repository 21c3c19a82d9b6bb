// `cert.status {serial}` -> `{ status: good | revoked | unknown, reason?, revokedAt? }`: the KDC's
// answer about one certificate, like an OCSP responder (RFC 6960 2.2: "good" means not revoked, not
// "valid"; "unknown" means this CA never issued that serial). Any authenticated session may ask.
// The serial is read as the INTEGER value (docs/protocol.md "Serials"): `00ab..` and `ab..`, or a
// 31-digit form whose leading zero digit was dropped, name the same certificate.
import { normalizeSerialHex } from '../../shared/pki/serial.js';
import type { KdcHandler } from '../kdc/dispatch.js';

export const certStatus: KdcHandler<'cert.status'> = {
  roles: ['client', 'admin'],
  handle: async (ctx, body) => {
    const serialHex = normalizeSerialHex(body.serial);
    const record = await ctx.kdc.store.getCertificate(serialHex);
    // A reserved-but-unsigned serial (`pending`) was never issued: unknown, as for a foreign serial.
    if (record === undefined || record.status === 'pending') return { status: 'unknown' };
    const revocation = ctx.kdc.ca.revocationOf(serialHex);
    if (revocation !== undefined) {
      return { status: 'revoked', reason: revocation.reason, revokedAt: revocation.revokedAt };
    }
    return { status: 'good' };
  },
};
