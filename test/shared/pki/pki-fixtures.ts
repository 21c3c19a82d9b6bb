// Shared fixtures for the shared/pki tests: a root CA and issued certificates built with the code under
// test, and an openssl runner (the independent verifier). Not a test file itself.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateRsaKeyPair, type RsaKeyPair } from '../../../shared/crypto/rsa.js';
import { newSerialHex } from '../../../shared/pki/serial.js';
import {
  buildCertificate,
  type CertificateSpec,
  type Profile,
  type Signer,
} from '../../../shared/pki/x509.js';
import { certificateSigner } from '../../../shared/crypto/signer.js';
import { pooledKeyPair } from '../../helpers/template.js';

export const DAY = 86_400_000;

export interface TestCa {
  keys: RsaKeyPair;
  certPem: string;
  sign: Signer;
}

export function signerFor(keys: RsaKeyPair): Signer {
  return certificateSigner(keys.privateKeyPem);
}

/**
 * Pool slots for CAs made without a key (test/helpers/template.ts): each such makeCa call in a process
 * takes the next one, so every CA still has a key of its own (tests rely on two roots with one name
 * and different keys); past the last, a key is generated.
 */
const FIRST_CA_SLOT = 13;
const LAST_CA_SLOT = 16;
let nextCaSlot = FIRST_CA_SLOT;

function newCaKeys(): Promise<RsaKeyPair> {
  return nextCaSlot <= LAST_CA_SLOT ? pooledKeyPair(nextCaSlot++) : generateRsaKeyPair(2048);
}

export async function makeCa(cn = 'kds test root', keys?: RsaKeyPair, now = Date.now()): Promise<TestCa> {
  const k = keys ?? (await newCaKeys());
  const sign = signerFor(k);
  const certPem = await buildCertificate(
    {
      serialHex: newSerialHex(),
      subjectCN: cn,
      issuer: 'self',
      publicKeyPem: k.publicKeyPem,
      notBefore: now - DAY,
      notAfter: now + 3650 * DAY,
      profile: 'root-ca',
    },
    sign,
  );
  return { keys: k, certPem, sign };
}

export function issue(
  ca: TestCa,
  profile: Profile,
  name: string,
  publicKeyPem: string,
  extra: Partial<CertificateSpec> = {},
): Promise<string> {
  const now = Date.now();
  return buildCertificate(
    {
      serialHex: newSerialHex(),
      subjectCN: name,
      issuer: { certPem: ca.certPem },
      publicKeyPem,
      notBefore: now - 60_000,
      notAfter: now + 30 * DAY,
      profile,
      crlUrl: 'http://127.0.0.1:8443/crl.pem',
      ...extra,
    },
    ca.sign,
  );
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run openssl in `cwd`; never throws on a non-zero exit (the tests assert it). */
export function openssl(args: string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

export function writeFiles(dir: string, files: Record<string, string | Buffer>): void {
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
}
