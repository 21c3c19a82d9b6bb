// Private keys at rest: PKCS#8 EncryptedPrivateKeyInfo (RFC 5958 section 3; PBES2 with PBKDF2 and
// AES-256-CBC, RFC 8018) under the CA passphrase, exported and imported by node:crypto. Also loads the
// credentials `kds server init` wrote (the KDC's and the admin's) for the server and admin commands.
import { explainFsError } from '../../io/fs-errors.js';
import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AuthError, EnvironmentError, InputError } from '../../shared/errors.js';
import { parseCertificate, type ParsedCertificate } from '../../shared/pki/x509.js';
import { caPaths } from '../../io/ca-files.js';

/** The cipher node:crypto uses inside PBES2 for every key kds writes. */
const KEY_CIPHER = 'aes-256-cbc';

export function encryptPrivateKey(key: KeyObject | string, passphrase: string): string {
  const obj = typeof key === 'string' ? createPrivateKey(key) : key;
  return obj.export({ type: 'pkcs8', format: 'pem', cipher: KEY_CIPHER, passphrase }).toString();
}

/**
 * Decrypt an encrypted PKCS#8 PEM. A wrong passphrase (or a file that is not an encrypted key) gives
 * AuthError `bad_passphrase` with a fixed message: which of the two it was is not revealed.
 */
export function decryptPrivateKey(pem: string, passphrase: string): KeyObject {
  if (!pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----')) {
    // Refuse plaintext keys where an encrypted one is expected: a downgrade must not pass silently.
    throw new InputError('malformed_pem', 'expected an ENCRYPTED PRIVATE KEY (PKCS#8) PEM');
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem', passphrase });
  } catch (err) {
    throw new AuthError('bad_passphrase', 'cannot decrypt the private key: wrong passphrase', undefined, {
      cause: err,
    });
  }
}

/** true when `privateKey` is the private half of the certificate's public key. */
export function keyMatchesCertificate(privateKey: KeyObject, cert: ParsedCertificate): boolean {
  const fromKey = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const fromCert = createPublicKey(cert.publicKeyPem).export({ type: 'spki', format: 'der' });
  return fromKey.equals(fromCert);
}

export interface Credential {
  privateKey: KeyObject;
  certPem: string;
  cert: ParsedCertificate;
}

/** Load `<dataDir>/server/` (the KDC's TLS-less identity) or `<dataDir>/admin/` with the CA passphrase. */
export function loadCredential(dataDir: string, which: 'server' | 'admin', passphrase: string): Credential {
  const paths = caPaths(dataDir);
  const keyPath = which === 'server' ? paths.serverKey : paths.adminKey;
  const certPath = which === 'server' ? paths.serverCert : paths.adminCert;
  const keyPem = readText(keyPath);
  const certPem = readText(certPath);
  const cert = parseCertificate(certPem);
  const privateKey = decryptPrivateKey(keyPem, passphrase);
  if (!keyMatchesCertificate(privateKey, cert)) {
    throw new EnvironmentError('config', `${keyPath} does not belong to ${certPath}`);
  }
  return { privateKey, certPem, cert };
}

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new EnvironmentError('ca_missing', `${path} not found: run \`kds server init\` first`, { path });
    }
    throw explainFsError(err, 'read', path);
  }
}
