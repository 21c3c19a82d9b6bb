// `kds server renew` (offline, with the CA passphrase): a new key pair and certificate for the KDC
// itself, with the same name and subjectAltNames, the old certificate superseded (listed on the CRL).
// The KDC's key and certificate are two files; the swap is staged so that a crash at any point leaves
// a pair that belongs together (recoverServerRenewal runs before `kds server start` loads them):
//   1. server/next-key.pem, the new key encrypted under the CA passphrase (atomic write);
//   2. the certificate is issued: one store transaction makes it the active `kdc` certificate;
//   3. server/next-cert.pem (atomic write), then next-key.pem -> key.pem, next-cert.pem -> cert.pem.
// Recovery: next-cert.pem present: finish step 3. Only next-key.pem: if the store's active `kdc`
// certificate is for that key (a crash between 2 and 3), write it as next-cert.pem and finish; else
// the renewal never committed and next-key.pem is deleted (the old pair is untouched).
import { createPublicKey, type KeyObject } from 'node:crypto';
import { renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { generateRsaKeyPair } from '../../shared/crypto/rsa.js';
import { EnvironmentError } from '../../shared/errors.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import { entryKind } from '../../io/fs-errors.js';
import { fsyncDir, PRIVATE_FILE_MODE, writeFileAtomic } from '../../io/fs-atomic.js';
import { storeCredentials } from './shared-credentials.js';
import type { CertificateAuthority } from './authority.js';
import { decryptPrivateKey, encryptPrivateKey, loadCredential, readText } from './credentials.js';
import { KDC_NAME } from '../../io/ca-files.js';
import { crashPoint } from '../../io/crash-point.js';

const SERVER_KEY_BITS = 2048;
/** `kds server start` warns when the KDC certificate (or the root CA) expires within this. */
export const EXPIRY_WARNING_MS = 7 * 86_400_000;

export interface ServerRenewal {
  serialHex: string;
  notAfter: number;
  previousSerialHex: string;
  capped: boolean;
}

function stagedPaths(ca: CertificateAuthority): { key: string; cert: string } {
  return { key: join(ca.paths.serverDir, 'next-key.pem'), cert: join(ca.paths.serverDir, 'next-cert.pem') };
}

export async function renewServerCredential(
  ca: CertificateAuthority,
  opts: { passphrase: string; actor: string; days?: number },
): Promise<ServerRenewal> {
  await recoverServerRenewal(ca, opts.passphrase);
  const current = loadCredential(ca.dataDir, 'server', opts.passphrase);
  const staged = stagedPaths(ca);
  const pair = await generateRsaKeyPair(SERVER_KEY_BITS);
  writeFileAtomic(staged.key, encryptPrivateKey(pair.privateKeyPem, opts.passphrase), PRIVATE_FILE_MODE);
  const issued = await ca.renewServer({
    publicKeyPem: pair.publicKeyPem,
    sans: current.cert.sans,
    actor: opts.actor,
    ...(opts.days === undefined ? {} : { days: opts.days }),
  });
  crashPoint('server-renew-issued');
  writeFileAtomic(staged.cert, issued.cert.pem, PRIVATE_FILE_MODE);
  await finish(ca);
  return {
    serialHex: issued.cert.serialHex,
    notAfter: issued.cert.notAfter,
    previousSerialHex: current.cert.serialHex,
    capped: issued.capped,
  };
}

export async function recoverServerRenewal(
  ca: CertificateAuthority,
  passphrase: string,
): Promise<'none' | 'installed' | 'discarded'> {
  const staged = stagedPaths(ca);
  if (entryKind(staged.cert) === 'missing') {
    if (entryKind(staged.key) === 'missing') return 'none';
    const key = decryptPrivateKey(readText(staged.key), passphrase);
    const active = await ca.store.activeCertificate(KDC_NAME);
    if (active === undefined || active.pem === null || !sameKey(key, active.pem)) {
      rmSync(staged.key, { force: true });
      return 'discarded';
    }
    writeFileAtomic(staged.cert, active.pem, PRIVATE_FILE_MODE);
  }
  await finish(ca);
  return 'installed';
}

async function finish(ca: CertificateAuthority): Promise<void> {
  const staged = stagedPaths(ca);
  // The key first, the certificate last: after a crash in between, next-cert.pem says "finish".
  move(staged.key, ca.paths.serverKey);
  move(staged.cert, ca.paths.serverCert);
  // A shared store carries the KDC credential to the other nodes (they pick it up at their next start).
  if (ca.store.engine === 'postgres') await storeCredentials(ca.store, ca.paths);
}

function move(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new EnvironmentError('io_error', `cannot move ${from} to ${to}`, { path: from }, { cause: err });
  }
  fsyncDir(dirname(to));
}

function sameKey(key: KeyObject, certPem: string): boolean {
  const a = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const b = createPublicKey(parseCertificate(certPem).publicKeyPem).export({ type: 'spki', format: 'der' });
  return a.equals(b);
}
