// `enroll {token, csr}` -> `{ cert, ca }`: redeem a one-time token for a client certificate, inside an
// anonymous `enroll`-mode session (the server is authenticated by the client's pinned root; the client
// has no certificate yet). The name is the CSR's subject CN; CertificateAuthority.enroll checks, in
// order and failing closed: the CSR's self-signature (proof of possession) and issuance policy, the
// reserved names, one active certificate per name, and only then consumes the token atomically in the
// store (bound to that name, unexpired, unused), so a refused CSR does not burn the token. Every token
// failure is `token_invalid` with one fixed message.
import { parseCsr } from '../../shared/pki/csr.js';
import { registerHandler } from '../kdc/dispatch.js';

registerHandler('enroll', {
  roles: ['anonymous'],
  handle: async (ctx, body) => {
    const csrPem = String(body.csr);
    const csr = parseCsr(csrPem);
    const name = csr.subjectCN;
    const issued = await ctx.kdc.ca.enroll({
      token: String(body.token),
      name,
      csrPem,
      csr, // parsed once (its self-signature check is an RSA verification)
      actor: `enroll:${name}`,
    });
    return { cert: issued.cert.pem, ca: ctx.kdc.ca.caCertPem };
  },
});
