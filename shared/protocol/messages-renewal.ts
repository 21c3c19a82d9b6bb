// Certificate renewal (docs/protocol.md "Renewal"): a client authenticated by the certificate it renews
// sends a CSR for a NEW key pair (proof of possession: the CSR's self-signature) and gets a new
// certificate for the same name. The new certificate is `pending` at the KDC until the client first
// authenticates with it; only then does it become the name's active certificate and the renewed one
// `superseded` (listed on the CRL with reasonCode superseded). A renewal that is never installed
// leaves the renewed certificate as it was.
import { defineAppType } from './app-types.js';
import { epochMs, pemText, serialHex } from './messages-core.js';
import { s } from './schema.js';

export const certRenew = defineAppType('cert.renew', {
  request: s.map({ csr: pemText }),
  response: s.map({
    cert: pemText,
    serial: serialHex, // the new certificate's
    notAfter: epochMs,
    supersedes: serialHex, // the certificate of the session that asked (superseded once installed)
  }),
});
