// The caller's certificate, re-checked by every write a session makes, INSIDE the store transaction that
// writes (docs/security.md "Hostile peers"). The handshake checked the certificate once; afterwards the
// KDC learns of a revocation committed by another process (`kds cert revoke` from a shell) only at its
// next sync (every 2 s) and of an expiry not at all, so a request in flight on such a session could
// still create a key. Read under the write lock (BEGIN IMMEDIATE, or a savepoint of a group commit that
// holds it), the certificate row is the committed truth: a revocation either committed before this
// write (the write is refused) or commits after it (and its cascade then revokes what was written).
//
// Cost: one SELECT through the UNIQUE index on certificates.serial, three columns, no PEM (~3 us).
import { AuthError } from '../../shared/errors.js';
import type { AsyncStoreData } from '../store/async-store.js';

/**
 * Throws `cert_revoked` (revoked, or superseded by a renewal), `cert_expired` (past notAfter, at the
 * second resolution of RFC 5280 4.1.2.5: "from notBefore through notAfter, inclusive") or
 * `cert_unknown_issuer` (no such certificate in the store) unless the certificate `serialHex` is the
 * active, unexpired certificate of its holder at `now`. Call it inside the transaction that writes.
 */
export async function assertCallerCurrent(
  store: Pick<AsyncStoreData, 'getCertificateStanding'>,
  serialHex: string,
  now: number,
): Promise<void> {
  const row = await store.getCertificateStanding(serialHex);
  if (row === undefined) {
    throw new AuthError('cert_unknown_issuer', 'certificate not issued by the trusted CA', { serialHex });
  }
  if (row.status === 'revoked') throw new AuthError('cert_revoked', 'certificate revoked', { serialHex });
  if (row.status !== 'active') {
    throw new AuthError('cert_revoked', 'certificate superseded', { serialHex, status: row.status });
  }
  if (Math.floor(now / 1000) * 1000 > row.notAfter) {
    throw new AuthError('cert_expired', 'certificate expired', { serialHex });
  }
}
