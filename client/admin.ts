// The admin credential: `kds server init` leaves an RSA key (PKCS#8, encrypted with the CA passphrase)
// and a certificate with the admin role under <data-dir>/admin/. `kds admin ...` commands load it here
// and open an authenticated session with it; the KDC recognises the role from its own store record of
// the certificate, so an ordinary client certificate cannot run admin requests (`forbidden`).
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { entryKind } from '../io/fs-errors.js';
import { AuthError, EnvironmentError } from '../shared/errors.js';
import { caPaths } from '../io/ca-files.js';
import { resolveCaPassphrase } from '../io/ca-passphrase.js';
import { openSession, type ClientSession } from './session.js';

export interface AdminCredentials {
  privateKey: KeyObject;
  certPem: string;
  caPem: string;
}

export function loadAdminCredentials(
  dataDir: string,
  opts: { passphraseFile?: string; passphrase?: string } = {},
): AdminCredentials {
  const paths = caPaths(dataDir);
  for (const file of [paths.adminKey, paths.adminCert, paths.rootCa]) {
    if (entryKind(file) === 'missing') {
      throw new EnvironmentError(
        'ca_missing',
        `no admin credential in ${dataDir} (missing ${file}); run kds server init`,
      );
    }
  }
  const { passphrase } = resolveCaPassphrase(dataDir, opts);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: readFileSync(paths.adminKey, 'utf8'), format: 'pem', passphrase });
  } catch (err) {
    throw new AuthError('bad_passphrase', 'cannot decrypt the admin key (wrong CA passphrase?)', undefined, {
      cause: err,
    });
  }
  return {
    privateKey,
    certPem: readFileSync(paths.adminCert, 'utf8'),
    caPem: readFileSync(paths.rootCa, 'utf8'),
  };
}

export async function openAdminSession(opts: {
  dataDir: string;
  server: string;
  passphraseFile?: string;
  passphrase?: string;
  dh?: 'x25519' | 'ffdhe2048';
}): Promise<ClientSession> {
  const creds = loadAdminCredentials(opts.dataDir, opts);
  return openSession({
    server: opts.server,
    mode: 'auth',
    credentials: { privateKey: creds.privateKey, certPem: creds.certPem },
    caCertPem: creds.caPem,
    ...(opts.dh === undefined ? {} : { dh: opts.dh }),
  });
}
