// A client's state directory ("home"): `key.pem` (PKCS#8; encrypted with aes-256-cbc when
// KDS_CLIENT_PASSPHRASE is set), `cert.pem` (the client's certificate) and `ca.pem` (the root CA it
// pinned at enrollment, its trust anchor for every later session). Default location
// `<data-dir>/clients/<name>/`. Directory 0700, files 0600: the private key never leaves this folder.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EnvironmentError, StateError } from '../shared/errors.js';
import { assertValidName } from '../shared/pki/names.js';
import { ensurePrivateDir, writeFileAtomic } from '../server/fs-atomic.js';
import { entryKind, explainFsError } from '../server/fs-errors.js';

export const KEY_FILE = 'key.pem';
export const CERT_FILE = 'cert.pem';
export const CA_FILE = 'ca.pem';
const DEFAULT_DATA_DIR = 'certs';

/** The environment variable that, when set, encrypts the client's key at rest. */
export const CLIENT_PASSPHRASE_ENV = 'KDS_CLIENT_PASSPHRASE';

export interface HomeLocation {
  name: string;
  home?: string | undefined;
  dataDir?: string | undefined;
}

/** `--home` if given, else `<data-dir>/clients/<name>`. The name is validated first (it becomes a path). */
export function resolveHome(loc: HomeLocation): string {
  assertValidName(loc.name);
  if (loc.home !== undefined && loc.home !== '') return resolve(loc.home);
  return resolve(loc.dataDir ?? DEFAULT_DATA_DIR, 'clients', loc.name);
}

export function clientPassphrase(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[CLIENT_PASSPHRASE_ENV];
  return value === undefined || value === '' ? undefined : value;
}

export interface ClientFiles {
  privateKey: KeyObject;
  certPem: string;
  caPem: string;
}

export function hasCredentials(home: string): boolean {
  // entryKind, not existsSync: a home this user may not read is not "not enrolled" (that advice would
  // be to enroll again); it is permission denied, said as such.
  return entryKind(join(home, KEY_FILE)) !== 'missing' && entryKind(join(home, CERT_FILE)) !== 'missing';
}

/**
 * Write the three files. The key is written first, so a crash never leaves a certificate without its
 * key; each file is replaced atomically (temp file, fsync, rename).
 */
export function writeClientHome(home: string, files: ClientFiles, passphrase = clientPassphrase()): void {
  ensurePrivateDir(home);
  const keyPem =
    passphrase === undefined
      ? files.privateKey.export({ type: 'pkcs8', format: 'pem' })
      : files.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase });
  writeFileAtomic(join(home, KEY_FILE), String(keyPem), 0o600);
  writeFileAtomic(join(home, CERT_FILE), files.certPem, 0o600);
  writeFileAtomic(join(home, CA_FILE), files.caPem, 0o600);
}

/** Only the public parts (certificate and pinned CA): no passphrase needed. */
export function readClientCertificates(home: string): { certPem: string; caPem: string } {
  return { certPem: readHomeFile(home, CERT_FILE), caPem: readHomeFile(home, CA_FILE) };
}

export function readClientHome(home: string, passphrase = clientPassphrase()): ClientFiles {
  const keyPem = readHomeFile(home, KEY_FILE);
  const { certPem, caPem } = readClientCertificates(home);
  return { privateKey: loadPrivateKey(keyPem, passphrase), certPem, caPem };
}

function readHomeFile(home: string, file: string): string {
  const path = join(home, file);
  if (entryKind(path) === 'missing') {
    throw new StateError(
      'not_found',
      `no client credentials at ${home} (missing ${file}); run kds client enroll`,
    );
  }
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw explainFsError(err, 'read', path);
  }
}

function loadPrivateKey(pem: string, passphrase: string | undefined): KeyObject {
  const encrypted = pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----');
  if (encrypted && passphrase === undefined) {
    throw new EnvironmentError('bad_passphrase', `the client key is encrypted: set ${CLIENT_PASSPHRASE_ENV}`);
  }
  try {
    return encrypted ? createPrivateKey({ key: pem, format: 'pem', passphrase }) : createPrivateKey(pem);
  } catch (err) {
    // A fixed message: whether the passphrase or the file is wrong is not the reader's business.
    if (encrypted)
      throw new EnvironmentError('bad_passphrase', 'cannot decrypt the client key', undefined, {
        cause: err,
      });
    throw new EnvironmentError(
      'malformed_pem',
      'the client key file is not a PKCS#8 private key',
      undefined,
      {
        cause: err,
      },
    );
  }
}
