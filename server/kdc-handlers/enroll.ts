// `enroll {token, csr}` -> `{ cert, ca }`: redeem a one-time token for a client certificate, inside an
// anonymous `enroll`-mode session (the server is authenticated by the client's pinned root; the client
// has no certificate yet). CertificateAuthority.enroll decides (docs/protocol.md "CSR policy"), failing
// closed and cheapest first: the token (one hash and one indexed lookup) before anything of the CSR is
// read, the CSR's shape and CN (which must be the token's name) before its key is imported, the key's
// exponent (65537 only) before its self-signature is verified (on the thread pool), then policy and
// issuance; a refused CSR does not burn the token, and every token failure is `token_invalid` with one
// fixed message. The session itself may send only this request type, one at a time, a few times
// (server/kdc/connection.ts). A retry of an enrollment whose answer was lost gets the same certificate
// back (server/ca/enroll-replay.ts): the same reply on the wire, marked for the KDC's event only.
import { crashPoint } from '../../io/crash-point.js';
import { markReplayed } from '../events/request-events.js';
import type { KdcHandler } from '../kdc/dispatch.js';

export const enroll: KdcHandler<'enroll'> = {
  roles: ['anonymous'],
  handle: async (ctx, body) => {
    const issued = await ctx.kdc.ca.enroll({ token: body.token, csrPem: body.csr });
    // Tests only: the certificate is committed and the answer not sent (the answer a replay recovers).
    crashPoint('enroll-committed');
    const reply = { cert: issued.cert.pem, ca: ctx.kdc.ca.caCertPem };
    return issued.replayed === true ? markReplayed(reply) : reply;
  },
};
