// The identities of `kds mitm --ablation`'s lab (client/mitm/ablation.ts): certificates for each name,
// issued by the lab's own CA in this process before any KDC runs (the same records and files
// enrollment produces, without two CLI processes per name), and one of them revoked. Here rather than
// in client/ because it drives the CA (server/), which client/ never links.
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { writeClientHome } from '../client/home.js';
import { CertificateAuthority } from '../server/ca/authority.js';
import { generateRsaKeyPair } from '../shared/crypto/rsa.js';
import { createCsr } from '../shared/pki/csr.js';

export async function issueLabIdentities(
  dataDir: string,
  passphrase: string,
  homesDir: string,
  names: readonly string[],
  revoke: string,
): Promise<void> {
  const keys = await Promise.all(names.map(() => generateRsaKeyPair(2048)));
  const ca = await CertificateAuthority.open(dataDir, { passphrase });
  try {
    for (const [i, name] of names.entries()) {
      const k = keys[i]!;
      const csr = await createCsr(name, k.privateKeyPem, k.publicKeyPem);
      const cert = await ca.issueFromCsr(csr, { name, actor: 'ablation' });
      writeClientHome(
        join(homesDir, name),
        { privateKey: createPrivateKey(k.privateKeyPem), certPem: cert.pem, caPem: ca.caCertPem },
        undefined,
      );
    }
    await ca.revoke({ name: revoke }, 'keyCompromise', 'ablation');
  } finally {
    await ca.close();
  }
}
