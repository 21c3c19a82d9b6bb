// `enroll {token, csr}` -> `{ cert, ca }`: redeem a one-time token for a client certificate, inside an
// anonymous `enroll`-mode session (the server is authenticated by the client's pinned root; the client
// has no certificate yet). The name is the CSR's subject CN. Order, failing closed (docs/protocol.md
// "CSR policy"): the CSR is parsed and its self-signature (proof of possession) verified here; then
// CertificateAuthority.enroll checks the token (bound to that name, unexpired, unused: every failure is
// `token_invalid` with one fixed message), the issuance policy, the reserved names and one active
// certificate per name, and consumes the token atomically with the issuance, so a refused CSR does not
// burn it.
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
