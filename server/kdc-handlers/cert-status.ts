// `cert.status {serial}` -> `{ status: good | revoked | unknown, reason?, revokedAt? }`: the KDC's
// answer about one certificate, like an OCSP responder (RFC 6960 2.2: "good" means not revoked, not
// "valid"; "unknown" means this CA never issued that serial). Any authenticated session may ask.
// A certificate a renewal replaced is `revoked` with reason `superseded`, as its CRL entry says.
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
    // What the published CRLs say, renewals included: a certificate a renewal superseded is on the CRL
    // with reasonCode superseded and refused at the handshake (cert_revoked), so the answer agrees with
    // both (RFC 6960 2.2: "revoked" covers every reason the CRL can give). A status the store has and the
    // in-memory index does not yet know (another process's write within the last sync) is looked up.
    let revocation = ctx.kdc.ca.crlStatusOf(serialHex);
    if (revocation === undefined && (record.status === 'revoked' || record.status === 'superseded')) {
      await ctx.kdc.ca.syncRevocations();
      revocation = ctx.kdc.ca.crlStatusOf(serialHex);
    }
    if (revocation !== undefined) {
      return { status: 'revoked', reason: revocation.reason, revokedAt: revocation.revokedAt };
    }
    return { status: 'good' };
  },
};
