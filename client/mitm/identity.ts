// Mallory's own client identity (`kds mitm --identity <client home>`): an enrolled insider with a valid
// certificate of another name (impersonate-client, unknown-key-share, stale-key), a client whose
// certificate has been revoked (revoked-cert), or one whose certificate Mallory revokes herself after
// keeping a resumption ticket (revoked-ticket). Read from a client home like any client's
// (client/home.ts: key.pem, cert.pem, ca.pem; KDS_CLIENT_PASSPHRASE if the key is encrypted).
import { readClientHome } from '../home.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import type { MitmIdentity } from './context.js';

export function loadIdentity(home: string): MitmIdentity {
  const files = readClientHome(home);
  const cert = parseCertificate(files.certPem);
  return {
    name: cert.subjectCN,
    privateKey: files.privateKey,
    certPem: files.certPem,
    cert,
    caPem: files.caPem,
  };
}
