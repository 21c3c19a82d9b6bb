// The one part of node-forge that x509.ts uses and @types/node-forge does not declare: forge's encoder
// of a CSR's CertificationRequestInfo (RFC 2986 4.1), public in node-forge's lib/x509.js
// (`pki.getCertificationRequestInfo`). Declared here so the call is typed, instead of casting forge.pki.
import 'node-forge';

declare module 'node-forge' {
  namespace pki {
    function getCertificationRequestInfo(csr: CertificateSigningRequest): asn1.Asn1;
  }
}
