// `enroll {token, csr}` -> `{ cert, ca }`: redeem a one-time token for a client certificate, inside an
// anonymous `enroll`-mode session (the server is authenticated by the client's pinned root; the client
// has no certificate yet). CertificateAuthority.enroll decides (docs/protocol.md "CSR policy"), failing
// closed and cheapest first: the token (one hash and one indexed lookup) before anything of the CSR is
// read, the CSR's shape and CN (which must be the token's name) before its key is imported, the key's
// exponent (65537 only) before its self-signature is verified (on the thread pool), then policy and
// issuance; a refused CSR does not burn the token, and every token failure is `token_invalid` with one
// fixed message. The session itself may send only this request type, one at a time, a few times
// (server/kdc/connection.ts).
import type { KdcHandler } from '../kdc/dispatch.js';

export const enroll: KdcHandler<'enroll'> = {
  roles: ['anonymous'],
  handle: async (ctx, body) => {
    const issued = await ctx.kdc.ca.enroll({ token: body.token, csrPem: body.csr });
    return { cert: issued.cert.pem, ca: ctx.kdc.ca.caCertPem };
  },
};
