// The KDC's checks on a client certificate, run by ServerHandshake for every 'auth' handshake before the
// client's signature is verified (docs/protocol.md: chain to our root, validity window, key usage,
// revocation; O(1) per handshake, cached, never stale after a revocation is acknowledged):
//   1. shared/pki verifyCertificate: issued by our root (name, AKI, signature), validity window,
//      end-entity with clientAuth, and revocation through CertificateAuthority.revocationOf (an
//      in-memory Map kept in sync with the store, including other processes' revocations);
//   2. the store: the certificate must be the very certificate recorded for its serial (same SHA-256
//      fingerprint) and still `active`. A certificate our key signed but the store does not know (a
//      restored backup, a leaked CA key used offline) is refused, and so is one a renewal superseded.
// The role (client/admin) comes from the store record, never from the certificate's own fields.
//
// Parsed certificates are cached by fingerprint: parsing an X509Certificate costs ~250 us, hashing
// the DER ~2 us. Only parsing is cached; validity and revocation are evaluated on every handshake.
// The store records of active certificates are cached too (CertificateRecordCache below), invalidated
// by the store's change counter and by this process's own status writes: never stale, and a returning
// client's handshake reads no certificate row.
import { AuthError } from '../../shared/errors.js';
import { labOff, type Defences } from '../../shared/lab-switches.js';
import { verifyCertificate, verdictToError } from '../../shared/pki/verify.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import type { CertificateAuthority } from '../ca/authority.js';
import type { CertificateRecord } from '../store/store.js';
import type { AsyncStore } from '../store/async-store.js';

/** Parsed client certificates (shared/pki/certificate-cache.ts) and active records the KDC keeps. */
export const CACHE_LIMIT = 4096;
const NOT_OURS = 'certificate not issued by the trusted CA';

/**
 * The store records of the `active` certificates recently presented, by serial. A handshake then reads
 * the store's change counter (PRAGMA data_version through a cached statement, ~7 us) instead of the
 * certificate row (~12 us, and a ~1.5 kB PEM string to allocate and collect per handshake).
 *
 * Why a cached record is never stale:
 * - only `active` records are kept, and the only way out of `active` is Store.setCertificateStatus
 *   (`revoked`, `superseded`): activation and discarding apply to `pending` rows only, and an issued
 *   certificate's fingerprint, name and role never change;
 * - commits by OTHER connections (`kds cert revoke`, `kds cert issue --renew` from a shell) move
 *   store.changeCounter() (PRAGMA data_version), which empties the cache before the lookup;
 * - this process's own status writes (revocation, renewal over the network) go through the same Store
 *   object, which tells the cache (Store.onCertificateStatusChange) right after the UPDATE, inside the
 *   writer's synchronous transaction, so no handshake can look the record up in between; a rolled-back
 *   write only costs one more read.
 * Revocation is also checked through CertificateAuthority.revocationOf on every handshake, independently.
 */
export class CertificateRecordCache {
  readonly #entries = new Map<string, CertificateRecord>();
  readonly #store: AsyncStore;
  #counter: number | undefined;

  constructor(
    store: AsyncStore,
    readonly limit = CACHE_LIMIT,
  ) {
    this.#store = store;
    // This process's own writes do not move changeCounter() (PRAGMA data_version counts other
    // connections' commits), so the store tells the cache about them directly.
    this.#unsubscribe = store.onCertificateStatusChange((serialHex) => this.#entries.delete(serialHex));
  }

  readonly #unsubscribe: () => void;

  /** Stop listening to the store (the KDC's close). */
  dispose(): void {
    this.#unsubscribe();
    this.#entries.clear();
  }

  /**
   * The store record for `serialHex` (lowercase hex), from the cache when the store has not changed.
   * `counter`: the store's change counter as the caller has just read it in the same step (the
   * revocation sync before a certificate check); reading it again microseconds later would answer for
   * no commit the handshake could tell apart from one made just after its check.
   */
  async get(serialHex: string, counter?: number): Promise<CertificateRecord | undefined> {
    counter ??= await this.#store.changeCounter();
    if (counter !== this.#counter) {
      this.#entries.clear();
      this.#counter = counter;
    }
    const hit = this.#entries.get(serialHex);
    if (hit !== undefined) return hit;
    const record = await this.#store.getCertificate(serialHex);
    if (record !== undefined && record.status === 'active') {
      if (this.#entries.size >= this.limit) {
        const oldest = this.#entries.keys().next().value;
        if (oldest !== undefined) this.#entries.delete(oldest);
      }
      // Without the PEM: the check needs the fingerprint, status, name and role only.
      this.#entries.set(serialHex, { ...record, pem: null });
    }
    return record;
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** MITM lab only (certificate-chain off): what verifyCertificate would still say about revocation. */
function checkRevocationOnly(
  cert: ParsedCertificate,
  revocationOf: ((serialHex: string) => unknown) | undefined,
): void {
  if (revocationOf !== undefined && revocationOf(cert.serialHex) !== undefined)
    throw new AuthError('cert_revoked', 'certificate revoked', { serialHex: cert.serialHex });
}

export interface CheckedClient {
  cert: ParsedCertificate;
  record: CertificateRecord;
  /**
   * The certificate is a renewal waiting to be installed (server/ca/renewal.ts): the connection
   * installs it once the handshake has proven possession of its key.
   */
  installsRenewal?: boolean;
}

/** Throws the AuthError of the first failed check; returns the store record otherwise. */
export async function checkClientCertificate(
  ca: CertificateAuthority,
  cert: ParsedCertificate,
  now = Date.now(),
  records?: CertificateRecordCache,
  defences?: Defences,
): Promise<CheckedClient> {
  // What other processes and nodes revoked since the last look (one look at the change counter when
  // nothing changed), so the in-memory revocation list below is the store's. The record lookup below
  // reuses the counter that look read: both checks answer for the same moment of the store.
  const counter = await ca.syncRevocationsAt();
  // LAB SWITCH revocation: the CRL lookup is left out of the certificate verification.
  const revocationOf = labOff(defences, 'revocation')
    ? undefined
    : (serialHex: string) => ca.revocationOf(serialHex);
  const revocation = revocationOf === undefined ? {} : { revocation: revocationOf };
  // LAB SWITCH certificate-chain: issuer, signature, validity and usage are not verified (revocation is).
  if (labOff(defences, 'certificate-chain')) checkRevocationOnly(cert, revocationOf);
  else {
    const verdict = verifyCertificate(cert, ca.caCert, { now, usage: 'clientAuth', ...revocation });
    if (verdict.code !== 'ok') throw verdictToError(verdict);
  }
  const record =
    records !== undefined
      ? await records.get(cert.serialHex, counter)
      : await ca.store.getCertificate(cert.serialHex);
  // Even with the chain unchecked the KDC needs its record of the certificate: the name and role.
  if (record === undefined || record.fingerprint256 !== cert.fingerprint256) {
    throw new AuthError('cert_unknown_issuer', NOT_OURS, { serialHex: cert.serialHex });
  }
  // LAB SWITCH revocation: a certificate the store marks revoked is accepted.
  if (record.status === 'revoked' && !labOff(defences, 'revocation')) {
    throw new AuthError('cert_revoked', 'certificate revoked', { serialHex: cert.serialHex });
  }
  if (
    record.status === 'pending' &&
    record.pem !== null &&
    (await ca.installableRenewal(cert.serialHex)) !== undefined
  ) {
    // A renewal's first handshake. Its role is the renewed certificate's (renewClient copied it).
    if (record.role !== 'client' && record.role !== 'admin') {
      throw new AuthError('cert_wrong_usage', 'certificate not valid for this use', {
        serialHex: cert.serialHex,
      });
    }
    return { cert, record, installsRenewal: true };
  }
  if (record.status === 'revoked') return { cert, record: { ...record, status: 'active' } };
  if (record.status !== 'active') {
    // Superseded by a renewal: the holder has a newer certificate, and this one must not linger.
    throw new AuthError('cert_revoked', 'certificate superseded', {
      serialHex: cert.serialHex,
      status: record.status,
    });
  }
  if (record.role !== 'client' && record.role !== 'admin') {
    throw new AuthError('cert_wrong_usage', 'certificate not valid for this use', {
      serialHex: cert.serialHex,
    });
  }
  return { cert, record };
}

/**
 * A resumed session's identity (docs/protocol.md "Resumption"): the certificate the ticket names must
 * still be this KDC's, active (not revoked, not superseded by a renewal) and of the ticket's name and
 * role. The same answers as a full handshake's certificate check, from the same records.
 */
export async function checkResumedIdentity(
  ca: CertificateAuthority,
  ticket: { name: string; serial: string; role: string },
  records?: CertificateRecordCache,
  defences?: Defences,
): Promise<void> {
  const serialHex = ticket.serial;
  // LAB SWITCH revocation: neither the revocation list nor the store's revoked mark is consulted.
  const checkRevocation = !labOff(defences, 'revocation');
  if (checkRevocation && ca.revocationOf(serialHex) !== undefined)
    throw new AuthError('cert_revoked', 'certificate revoked', { serialHex });
  const record =
    records !== undefined ? await records.get(serialHex) : await ca.store.getCertificate(serialHex);
  if (record === undefined || record.name !== ticket.name || record.role !== ticket.role)
    throw new AuthError('cert_unknown_issuer', NOT_OURS, { serialHex });
  if (record.status === 'revoked') {
    if (checkRevocation) throw new AuthError('cert_revoked', 'certificate revoked', { serialHex });
    return;
  }
  if (record.status !== 'active')
    throw new AuthError('cert_revoked', 'certificate superseded', { serialHex, status: record.status });
}
