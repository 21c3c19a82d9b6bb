// `cert.revoke {serial? | name?, reason}` -> `{ status, serial, crlNumber }`: revoke a certificate.
// Admins may revoke any certificate; a client may revoke only its own (neither field = the session's
// own certificate). The CA makes the revocation durable (row + new CRL committed, root_crl.pem
// rewritten) and awaits the KDC's onRevoked listener, which pushes `cert.revoked` + `session.closing`
// to every live session of the certificate and waits for those sockets to close, all BEFORE this
// request is answered. Once the revocation committed the answer is `revoked` even if what follows failed
// (the CA retries it on its revocation sync: server/ca/revoke.ts), and the sessions are ended here
// anyway. A session revoking its own certificate is the exception: it gets its reply
// first and is closed right after it (closeAfterReply), so the owner learns the revocation succeeded.
// The requester's own certificate is re-checked inside the revocation's transaction
// (server/kdc/caller-status.ts): a session whose certificate another process revoked (or that expired)
// revokes nothing; a client that finds its own certificate already revoked is closed after the reply.
import { KdsError, PolicyError } from '../../shared/errors.js';
import { normalizeSerialHex } from '../../shared/pki/serial.js';
import { assertCallerCurrent } from '../kdc/caller-status.js';
import type { KdcHandler } from '../kdc/dispatch.js';

export const certRevoke: KdcHandler<'cert.revoke'> = {
  roles: ['client', 'admin'],
  handle: async (ctx, body) => {
    const { identity, session } = ctx;
    const { store, ca } = ctx.kdc;
    // Read as the INTEGER value (docs/protocol.md "Serials"), so `00<own serial>` is still one's own.
    const serial = body.serial === undefined ? undefined : normalizeSerialHex(body.serial);
    const name = body.name;
    let target: { serialHex: string } | { name: string };
    if (identity.role === 'admin') {
      if (serial !== undefined) target = { serialHex: serial };
      else if (name !== undefined) {
        // Resolve the name the way the CA does (active certificate, else the latest), so we know
        // whether the requester is revoking its own certificate.
        const record = (await store.activeCertificate(name)) ?? (await store.latestCertificate(name));
        target = record === undefined ? { name } : { serialHex: record.serialHex };
      } else target = { serialHex: identity.serialHex };
    } else {
      // A client revokes its own certificate and nothing else.
      if (
        (serial !== undefined && serial !== identity.serialHex) ||
        (name !== undefined && name !== identity.name)
      ) {
        throw new PolicyError('forbidden', 'a client may revoke only its own certificate');
      }
      target = { serialHex: identity.serialHex };
    }
    const self = 'serialHex' in target && target.serialHex === identity.serialHex;
    if (self) session.closeAfterReply('cert_revoked', 'certificate revoked', ctx.requestId);
    let result;
    try {
      result = await ca.revoke(target, body.reason, `${identity.role}:${identity.name}`, {
        beforeWrite: (tx) => assertCallerCurrent(tx, identity.serialHex, Date.now()),
      });
    } catch (err) {
      if (self && !(err instanceof KdsError && err.code === 'cert_revoked'))
        session.closeAfterReply(undefined);
      throw err;
    }
    // Also covers `already_revoked` (no listener runs then) and a revocation another process made.
    await ctx.kdc.endSessionsOf(result.serialHex, 'cert_revoked', session);
    return { status: result.status, serial: result.serialHex, crlNumber: Number(result.crlNumber) };
  },
};
