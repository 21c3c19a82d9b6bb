// The CA's two ways of producing a sha256WithRSAEncryption signature (RFC 5280 4.1.1.2 / 5.1.1.2) with
// node:crypto. Certificates use the callback form (thread pool, never blocks the event loop). CRLs are
// signed with the synchronous form INSIDE the revocation transaction: see crl-publisher.ts for why.
import { constants, sign, type KeyObject } from 'node:crypto';
import { signPkcs1Sha256 } from '../../shared/crypto/rsa.js';
import type { Signer } from '../../shared/pki/x509.js';

export function asyncSigner(key: KeyObject): Signer {
  return (tbsDer: Buffer) => signPkcs1Sha256(tbsDer, key);
}

export type SyncSigner = (tbsDer: Buffer) => Buffer;

export function syncSigner(key: KeyObject): SyncSigner {
  return (tbsDer: Buffer) => sign('sha256', tbsDer, { key, padding: constants.RSA_PKCS1_PADDING });
}
