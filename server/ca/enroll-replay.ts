// Replaying an enrollment whose answer was lost (docs/protocol.md "Lost answers: replaying an
// enrollment"). The CA commits the certificate and spends the token before it answers; if the answer
// never arrives (the connection drops after the commit, the node dies), the client retries. A retry of
// the SAME enrollment gets the certificate already issued for the token back, and nothing new is issued.
// "The same enrollment" is decided by what only its requester holds, all of it:
//   - the token (its hash finds the row; the token is never compared, tokens.ts), unexpired: the spent
//     token is answerable for its original lifetime only, the window the operator granted;
//   - a CSR for the token's name whose self-signature verifies (proof of possession of the private key),
//   - for the very key of the certificate the token produced (the SubjectPublicKeyInfo, compared as the
//     canonical DER of both keys; public values, not secrets).
// Anything less is `token_invalid` with the fixed message, exactly what a spent token got before: a peer
// that has not proved it is that requester learns nothing new (not which key was certified, not whether
// the CSR was the problem). Only a proven requester learns the certificate's standing: revoked or
// superseded since is `cert_revoked`, expired is `cert_expired`. Handing such a certificate back would
// look like a successful enrollment while every handshake refuses it; the code says what happened
// (the same codes a handshake or a renewal with it gets) and the way back is the same as theirs: a new
// token from the operator. Read and audited (`enroll.replayed`) in one transaction,
// so a revocation committed before it is seen, and one committed after it is the ordinary revocation of
// a delivered certificate.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { AuthError } from '../../shared/errors.js';
import { decodeCsr, verifyCsr } from '../../shared/pki/csr.js';
import type { AsyncStore } from '../store/async-store.js';
import type { CertificateRecord } from '../store/store.js';
import { TOKEN_INVALID_MESSAGE, type TokenLookup } from './tokens.js';

/** The audit action of a replayed enrollment (the certificate handed out again, nothing issued). */
const ENROLL_REPLAYED_ACTION = 'enroll.replayed';

type SpentToken = Extract<TokenLookup, { kind: 'spent' }>;

const notThisEnrollment = (): AuthError => new AuthError('token_invalid', TOKEN_INVALID_MESSAGE);

/**
 * The CSR's proven key, for a replay of the enrollment that spent a token bound to `name`: decoded, its
 * CN checked, its self-signature verified. Every failure is `token_invalid` (see the header).
 */
export async function replayCsrKey(name: string, csrPem: string): Promise<KeyObject> {
  try {
    const request = decodeCsr(csrPem);
    if (request.subjectCN !== name) throw notThisEnrollment();
    return (await verifyCsr(request)).publicKey;
  } catch {
    throw notThisEnrollment();
  }
}

/**
 * The certificate the token `spent` produced, for the holder of `publicKey` (already proven by the CSR's
 * self-signature), with its `enroll.replayed` audit entry; or the refusal (see the header).
 */
export async function replayEnrollment(
  store: AsyncStore,
  opts: {
    spent: SpentToken;
    publicKey: KeyObject;
    token: string;
    actor: string;
    now: number;
    auditHash: (value: string) => string;
  },
): Promise<CertificateRecord> {
  const { spent } = opts;
  const record = await store.getCertificate(spent.serialHex);
  if (record === undefined || record.pem === null || record.name !== spent.name) throw notThisEnrollment();
  const issuedKey = createPublicKey(record.pem).export({ type: 'spki', format: 'der' });
  if (!issuedKey.equals(opts.publicKey.export({ type: 'spki', format: 'der' }))) throw notThisEnrollment();
  await store.transaction(async (tx) => {
    const standing = await tx.getCertificateStanding(spent.serialHex);
    if (standing === undefined) throw notThisEnrollment();
    if (standing.status === 'revoked') {
      throw new AuthError(
        'cert_revoked',
        'the certificate this token was spent on has been revoked: ask the operator for a new token',
        { serialHex: spent.serialHex },
      );
    }
    if (standing.status !== 'active') {
      throw new AuthError(
        'cert_revoked',
        'the certificate this token was spent on has been superseded: ask the operator for a new token',
        { serialHex: spent.serialHex },
      );
    }
    // RFC 5280 4.1.2.5: valid "from notBefore through notAfter, inclusive", at one-second resolution.
    if (Math.floor(opts.now / 1000) * 1000 > standing.notAfter) {
      throw new AuthError(
        'cert_expired',
        'the certificate this token was spent on has expired: ask the operator for a new token',
        { serialHex: spent.serialHex },
      );
    }
    await tx.appendAudit({
      at: opts.now,
      actor: opts.actor,
      action: ENROLL_REPLAYED_ACTION,
      subject: spent.name,
      detail: {
        serialHex: spent.serialHex,
        fingerprint256: record.fingerprint256,
        tokenId: spent.tokenId,
        tokenHmac: opts.auditHash(opts.token),
      },
    });
  });
  return record;
}
