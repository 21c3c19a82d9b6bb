// A CSR made by openssl (not by our own code), as a user of `kds cert issue --csr` would bring one:
// RSA-2048, CN and a DNS subjectAltName of `name`, its key beside it in `dir`.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Writes `<dir>/<name>.csr.pem` and `<dir>/<name>.key`; returns the CSR's path. */
export function opensslCsr(dir: string, name: string): string {
  const csr = join(dir, `${name}.csr.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-new',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-addext',
      `subjectAltName=DNS:${name}`,
      '-keyout',
      join(dir, `${name}.key`),
      '-out',
      csr,
    ],
    { stdio: 'ignore' },
  );
  return csr;
}
