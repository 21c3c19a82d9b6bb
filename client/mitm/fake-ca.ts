// Mallory's own certificate authority (impersonate-server): a self-signed root with the same name as
// the real one ("kds root CA") and a server certificate named `kdc` issued by it, valid, with the
// serverAuth usage and the KDC's addresses. Everything a certificate can say, it says; what it cannot
// say is that the pinned root signed it, and that is the only thing a kds client checks first.
import { generateRsaKeyPair, toPrivateKey } from '../../shared/crypto/rsa.js';
import { certificateSigner, pssSigner } from '../../shared/crypto/signer.js';
import { buildCertificate, parseCertificate } from '../../shared/pki/x509.js';
import { newSerialHex } from '../../shared/pki/serial.js';
import type { HandshakeCredentials } from '../../shared/protocol/handshake.js';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface ForgedKdc {
  caPem: string;
  certPem: string;
  credentials: HandshakeCredentials;
}

export async function forgeKdc(now = Date.now()): Promise<ForgedKdc> {
  const [caKeys, kdcKeys] = await Promise.all([generateRsaKeyPair(2048), generateRsaKeyPair(2048)]);
  const caKey = toPrivateKey(caKeys.privateKeyPem);
  const kdcKey = toPrivateKey(kdcKeys.privateKeyPem);
  const signWithCa = certificateSigner(caKey);
  const caPem = await buildCertificate(
    {
      serialHex: newSerialHex(),
      subjectCN: 'kds root CA',
      issuer: 'self',
      publicKeyPem: caKeys.publicKeyPem,
      notBefore: now - DAY_MS,
      notAfter: now + 365 * DAY_MS,
      profile: 'root-ca',
    },
    signWithCa,
  );
  const certPem = await buildCertificate(
    {
      serialHex: newSerialHex(),
      subjectCN: 'kdc',
      issuer: { certPem: caPem },
      publicKeyPem: kdcKeys.publicKeyPem,
      notBefore: now - DAY_MS,
      notAfter: now + 365 * DAY_MS,
      profile: 'server',
      sans: { dns: ['localhost'], ip: ['127.0.0.1'] },
    },
    signWithCa,
  );
  return {
    caPem,
    certPem,
    credentials: {
      certificateDer: parseCertificate(certPem).der,
      sign: pssSigner(kdcKey),
    },
  };
}
