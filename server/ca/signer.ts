// The CA's two ways of producing a sha256WithRSAEncryption signature (RFC 5280 4.1.1.2 / 5.1.1.2) with
// node:crypto. Certificates use the callback form (thread pool, never blocks the event loop). CRLs are
// signed with the synchronous form INSIDE the revocation transaction: see crl-sign.ts for why.
// Both are tagged PKCS#1 v1.5 signers (shared/crypto/signer.ts), never usable as a handshake's PSS one.
import { constants, sign, type KeyObject } from 'node:crypto';
import {
  asSyncCertificateSigner,
  certificateSigner,
  type CertificateSigner,
  type SyncCertificateSigner,
} from '../../shared/crypto/signer.js';

export function asyncSigner(key: KeyObject): CertificateSigner {
  return certificateSigner(key);
}

export type SyncSigner = SyncCertificateSigner;

export function syncSigner(key: KeyObject): SyncSigner {
  return asSyncCertificateSigner((tbsDer: Buffer) =>
    sign('sha256', tbsDer, { key, padding: constants.RSA_PKCS1_PADDING }),
  );
}
