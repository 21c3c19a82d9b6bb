// The credentials a KDC node needs besides the store, kept IN the store when it is shared (PostgreSQL), so
// a second node starts from an empty data directory with the store's URL and the CA passphrase, and no
// file is copied by hand (docs/deployment.md).
//
// What is stored (settings key `ca.credentials`): the CA private key and the KDC's private key exactly as
// they are on disk, PKCS#8-encrypted under the CA passphrase (credentials.ts), the KDC's certificate, and
// the key-encryption keys of KDC-generated keys (server/keys/kek.ts files, each encrypted under the
// passphrase): every node must unwrap the keys any node wrapped, so all use the same KEK versions.
// The database therefore holds nothing a passphrase-less reader can use: the same protection the files
// have in a data directory. The root certificate needs no copy (the store's certificate record is the
// truth; authority.ts loadCaCertificate publishes it as root_ca.pem).
//
// On a SQLite store the files are the only copy, as before: one data directory is one node.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { entryKind } from '../../io/fs-errors.js';
import { ensurePrivateDir, PRIVATE_FILE_MODE, writeFileAtomic } from '../../io/fs-atomic.js';
import { readText } from './credentials.js';
import type { CaPaths } from '../../io/ca-files.js';
import type { AsyncStoreData } from '../store/async-store.js';

const CREDENTIALS_SETTING = 'ca.credentials';

export interface StoredCredentials {
  /** root_private_key.pem: encrypted PKCS#8 PEM. */
  rootKey: string;
  /** server/key.pem: encrypted PKCS#8 PEM. */
  serverKey: string;
  /** server/cert.pem. */
  serverCert: string;
  /** kek/<file name> -> the file's bytes, base64 (each one encrypted under the CA passphrase). */
  kek?: Record<string, string>;
}

const KEK_FILE = /^kek-v\d+\.bin$/;

/** Copy the data directory's encrypted keys and the KDC certificate into the store. */
export async function storeCredentials(
  store: Pick<AsyncStoreData, 'setSetting'>,
  paths: CaPaths,
): Promise<void> {
  const creds: StoredCredentials = {
    rootKey: readText(paths.rootKey),
    serverKey: readText(paths.serverKey),
    serverCert: readText(paths.serverCert),
    kek: Object.fromEntries(
      kekFiles(paths).map((name) => [
        name,
        readFileSync(join(paths.dataDir, 'kek', name)).toString('base64'),
      ]),
    ),
  };
  await store.setSetting(CREDENTIALS_SETTING, creds);
}

/**
 * Write the store's credentials into the data directory where they are missing, or where the KDC's
 * certificate differs from the store's (another node renewed it: `kds server renew`). Nothing happens
 * when the store holds none (a SQLite store, or a CA initialised without them).
 */
export async function materializeCredentials(
  store: Pick<AsyncStoreData, 'getSetting'>,
  paths: CaPaths,
): Promise<'none' | 'written' | 'present'> {
  const creds = await store.getSetting<StoredCredentials>(CREDENTIALS_SETTING);
  if (creds === undefined) return 'none';
  ensurePrivateDir(paths.dataDir);
  let wrote = false;
  if (entryKind(paths.rootKey) === 'missing') {
    writeFileAtomic(paths.rootKey, creds.rootKey, PRIVATE_FILE_MODE);
    wrote = true;
  }
  const certOnDisk = entryKind(paths.serverCert) === 'missing' ? undefined : readText(paths.serverCert);
  if (certOnDisk !== creds.serverCert) {
    ensurePrivateDir(paths.serverDir);
    // Key first, certificate after: a certificate on disk always has its key next to it.
    writeFileAtomic(paths.serverKey, creds.serverKey, PRIVATE_FILE_MODE);
    writeFileAtomic(paths.serverCert, creds.serverCert, PRIVATE_FILE_MODE);
    wrote = true;
  }
  for (const [name, bytes] of Object.entries(creds.kek ?? {})) {
    if (!KEK_FILE.test(name)) continue;
    const path = join(paths.dataDir, 'kek', name);
    if (entryKind(path) !== 'missing') continue;
    ensurePrivateDir(join(paths.dataDir, 'kek'));
    writeFileAtomic(path, Buffer.from(bytes, 'base64'), PRIVATE_FILE_MODE);
    wrote = true;
  }
  return wrote ? 'written' : 'present';
}

function kekFiles(paths: CaPaths): string[] {
  try {
    return readdirSync(join(paths.dataDir, 'kek')).filter((n) => KEK_FILE.test(n));
  } catch {
    return [];
  }
}
