// The identities of `kds mitm --ablation`'s lab (client/mitm/ablation.ts): certificates for each name,
// issued by the lab's own CA in this process before any KDC runs (the same records and files
// enrollment produces, without two CLI processes per name), and one of them revoked; and the lab's
// key-encryption key, made once here rather than by the first start of each of the lab's KDCs. Here
// rather than in client/ because it drives the CA and the KEK ring (server/), which client/ never links.
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { writeClientHome } from '../client/home.js';
import { CertificateAuthority } from '../server/ca/authority.js';
import { KeyEncryptionKeys, type ScryptCost } from '../server/keys/kek.js';
import { generateRsaKeyPair } from '../shared/crypto/rsa.js';
import { createCsr } from '../shared/pki/csr.js';

/**
 * The lab KEK's scrypt cost: the lowest a KDC opens (server/keys/kek.ts) rather than the default 2^15.
 * Stretching guards a passphrase that can be guessed; the lab's is 24 random bytes, its directory is
 * removed at the end, and every one of its ~20 KDCs derives the key again when it starts.
 */
const LAB_KEK_COST: ScryptCost = { log2N: 14, r: 8, p: 1 };

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
  // The file a KDC writes at its first start (kek/kek-v1.bin): every copy of the lab then opens it (one
  // scrypt at 2^14) instead of creating its own (one at the default 2^15, about three times the CPU).
  await KeyEncryptionKeys.open(dataDir, passphrase, { cost: LAB_KEK_COST });
}
