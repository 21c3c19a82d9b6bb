// The two RSA signature schemes kds produces, as two types that cannot stand in for each other.
// Handshake and transcript signatures are RSASSA-PSS with SHA-256 and a 32-byte salt (RFC 8017 8.1);
// certificates and CRLs are sha256WithRSAEncryption, RSASSA-PKCS1-v1_5 (RFC 5280 4.1.1.2, 5.1.1.2).
// Both signers are the same shape (bytes in, signature out), so a PKCS#1 signer handed to the handshake
// would type-check and fail only at the peer, as a bad signature. Each signer therefore carries its
// scheme in `alg`: the literal makes the types distinct (a wrong pass does not compile), and the code
// that signs checks it again (`requireScheme`), so a cast cannot smuggle the wrong one in either.
import { InternalError } from '../errors.js';
import { signPkcs1Sha256, signPss, type PrivateKeyInput } from './rsa.js';

export const PSS_SHA256 = 'rsa-pss-sha256';
export const PKCS1_SHA256 = 'sha256WithRSAEncryption';

/** RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32: the handshake's and the audit head's signatures. */
export type PssSigner = ((data: Buffer) => Promise<Buffer>) & { readonly alg: typeof PSS_SHA256 };
/** sha256WithRSAEncryption over a TBSCertificate or TBSCertList. */
export type CertificateSigner = ((tbsDer: Buffer) => Promise<Buffer>) & { readonly alg: typeof PKCS1_SHA256 };
/** The same scheme signing synchronously, for callers inside a synchronous database transaction. */
export type SyncCertificateSigner = ((tbsDer: Buffer) => Buffer) & { readonly alg: typeof PKCS1_SHA256 };

type Scheme = typeof PSS_SHA256 | typeof PKCS1_SHA256;

function tagged<F extends (data: Buffer) => unknown, S extends Scheme>(
  fn: F,
  alg: S,
): F & { readonly alg: S } {
  // A fresh function per tag: tagging a caller's function in place would change a value it still holds.
  const signer = ((data: Buffer) => fn(data)) as F;
  return Object.defineProperty(signer, 'alg', { value: alg, enumerable: true }) as F & { readonly alg: S };
}

/** Signs with `key` by RSASSA-PSS on the thread pool (the callback form of crypto.sign). */
export function pssSigner(key: PrivateKeyInput): PssSigner {
  return tagged((data: Buffer) => signPss(data, key), PSS_SHA256);
}

/** Signs with `key` by sha256WithRSAEncryption on the thread pool. */
export function certificateSigner(key: PrivateKeyInput): CertificateSigner {
  return tagged((tbsDer: Buffer) => signPkcs1Sha256(tbsDer, key), PKCS1_SHA256);
}

/**
 * Declares that `fn` produces RSASSA-PSS signatures: for a signature made elsewhere (a wrapper that
 * counts or delays calls, fixed test vectors). The caller vouches for the scheme.
 */
export function asPssSigner(fn: (data: Buffer) => Promise<Buffer>): PssSigner {
  return tagged(fn, PSS_SHA256);
}

/** Declares that `fn` produces sha256WithRSAEncryption signatures (the caller vouches for it). */
export function asCertificateSigner(fn: (tbsDer: Buffer) => Promise<Buffer>): CertificateSigner {
  return tagged(fn, PKCS1_SHA256);
}

/** Declares that the synchronous `fn` produces sha256WithRSAEncryption signatures. */
export function asSyncCertificateSigner(fn: (tbsDer: Buffer) => Buffer): SyncCertificateSigner {
  return tagged(fn, PKCS1_SHA256);
}

/**
 * Refuses a signer of another scheme before it signs anything. The types already prevent it; this
 * catches a value that reached here through a cast or from untyped code. `internal`: a caller's bug.
 */
export function requireScheme(signer: { readonly alg: Scheme }, scheme: Scheme, use: string): void {
  const alg: unknown = signer.alg;
  if (alg !== scheme) {
    throw new InternalError(
      'internal',
      `${use} needs a ${scheme} signer, got ${typeof alg === 'string' ? alg : 'an untagged one'}`,
    );
  }
}
