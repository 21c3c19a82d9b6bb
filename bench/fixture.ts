// Benchmark fixtures: a fresh CA data directory in a temp dir (the real `kds server init` code, default
// key sizes unless told: root RSA-3072, KDC and clients RSA-2048), client certificates issued straight by
// the CA (one RSA key pair shared by every bench client: key generation is the slow part and is not what
// is measured), and bulk revocation rows written through the Store in one transaction.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateRsaKeyPair, type RsaKeyPair } from '../shared/crypto/rsa.js';
import { createCsr } from '../shared/pki/csr.js';
import { newSerialHex } from '../shared/pki/serial.js';
import { CertificateAuthority } from '../server/ca/authority.js';
import { initCa } from '../server/ca/init.js';
import { openStore } from '../server/store/store.js';

/** An obviously-bench passphrase for the throwaway CAs (never a real one). */
export const BENCH_PASSPHRASE = 'kds-bench-ca-passphrase';

export interface BenchClient {
  name: string;
  serialHex: string;
  certPem: string;
  /** PKCS#8 PEM (unencrypted: a throwaway bench key that lives in a temp dir). */
  keyPem: string;
}

export interface BenchCa {
  dataDir: string;
  caCertPem: string;
  /** Remove the temp dir. */
  remove(): void;
}

/** `storeUrl`: the CA in that PostgreSQL store (the data directory then holds the node's files only). */
export async function createBenchCa(
  opts: { caKeyBits?: number; prefix?: string; storeUrl?: string | undefined } = {},
): Promise<BenchCa> {
  const dataDir = mkdtempSync(join(tmpdir(), opts.prefix ?? 'kds-bench-'));
  await initCa({
    dataDir,
    caKeyBits: opts.caKeyBits ?? 3072,
    passphrase: BENCH_PASSPHRASE,
    actor: 'bench',
    storeUrl: opts.storeUrl,
  });
  const ca = await CertificateAuthority.open(dataDir, {
    passphrase: BENCH_PASSPHRASE,
    storeUrl: opts.storeUrl,
  });
  const caCertPem = ca.caCertPem;
  await ca.close();
  return { dataDir, caCertPem, remove: () => rmSync(dataDir, { recursive: true, force: true }) };
}

let sharedPair: Promise<RsaKeyPair> | undefined;
/** The one RSA-2048 client key pair of this process. */
export function benchKeyPair(): Promise<RsaKeyPair> {
  sharedPair ??= generateRsaKeyPair(2048);
  return sharedPair;
}

/** Issue client certificates `<prefix>-<i>` for the shared key pair, straight from the CA. */
export async function issueBenchClients(
  dataDir: string,
  prefix: string,
  count: number,
  storeUrl?: string,
): Promise<BenchClient[]> {
  const pair = await benchKeyPair();
  const ca = await CertificateAuthority.open(dataDir, { passphrase: BENCH_PASSPHRASE, storeUrl });
  try {
    const out: BenchClient[] = [];
    // A few at a time: each issuance signs on the thread pool.
    for (let i = 0; i < count; i += 8) {
      const batch = [];
      for (let j = i; j < Math.min(count, i + 8); j++) {
        const name = `${prefix}-${j}`;
        batch.push(
          createCsr(name, pair.privateKeyPem, pair.publicKeyPem).then((csr) =>
            ca.issueFromCsr(csr, { name, actor: 'bench' }),
          ),
        );
      }
      for (const cert of await Promise.all(batch)) {
        out.push({
          name: cert.subjectCN,
          serialHex: cert.serialHex,
          certPem: cert.pem,
          keyPem: pair.privateKeyPem,
        });
      }
    }
    return out;
  } finally {
    await ca.close();
  }
}

/**
 * Add `count` revoked certificates to the store of `dataDir` in ONE transaction, through the Store
 * interface (reserve, activate, mark revoked, revocation row). The certificate rows carry a placeholder
 * PEM: only their serials matter for the CRL and the revocation lookups. Must run while no CA in this
 * process has the store open for writing; a CA opened afterwards loads the rows (O(n) once).
 */
export function bulkRevoke(dataDir: string, count: number, prefix = 'bulk'): number {
  const store = openStore(dataDir);
  try {
    const now = Math.floor(Date.now() / 1000) * 1000;
    const stamp = randomBytes(4).toString('hex');
    store.transaction(() => {
      for (let i = 0; i < count; i++) {
        const serialHex = newSerialHex();
        const name = `${prefix}-${stamp}-${i}`;
        store.insertIssuedCertificate({
          serialHex,
          name,
          role: 'client',
          notBefore: now,
          notAfter: now + 86_400_000,
          issuedAt: now,
          pem: 'bench placeholder',
          fingerprint256: randomBytes(32).toString('hex'),
        });
        store.setCertificateStatus(serialHex, 'revoked');
        store.insertRevocation({ serialHex, revokedAt: now, reason: 'superseded' });
      }
    });
    return store.countRevocations();
  } finally {
    store.close();
  }
}
