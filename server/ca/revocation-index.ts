// The revocation index: which certificates are revoked, and which a renewal superseded, in memory.
//
// Maps serial -> { reason, revokedAt } answer revocationOf() / crlStatusOf() in O(1), synchronously, for
// the KDC's handshake checks and the key service. They are loaded once at open and then kept up to date
// by reading the revocation rows with an id above the last one seen (ids are monotonic): catchUp() does
// that for every row other processes or nodes committed, record() for this process's own revocation
// once its transaction committed. The maps only ever receive committed rows, so they are never wrong.
//
// Superseded certificates (a renewal replaced them) are on the CRL with reasonCode superseded (RFC 5280
// 5.3.1) but kept apart from revocations proper: revocationOf() does not report them and they are not
// announced, because a renewal must not cascade into revoking the holder's keys or ending their sessions.
import type { RevocationReason } from '../../shared/revocation-reasons.js';
import type { ListedRevocation, NewRevocation, RevocationRecord } from '../store/store.js';
import type { AsyncStoreData } from '../store/async-store.js';

export interface RevocationInfo {
  /**
   * Never removeFromCRL: RFC 5280 5.3.1 says it "is for use with delta CRLs and indicates that a
   * certificate is to be removed from a CRL", and a certificate kds revoked stays revoked (its delta
   * CRLs only ever add entries). revokeCertificate refuses it (server/ca/revoke.ts).
   */
  reason: RevocationReason;
  revokedAt: number;
}

/** What catchUp() read: every new row (for the CRL builders) and the revocations among them. */
export interface CaughtUp {
  rows: ListedRevocation[];
  /** Revocations (not superseded entries) this process did not know. */
  fresh: RevocationRecord[];
  /** Certificates another process's renewal superseded, new to this process. */
  superseded: string[];
}

export class RevocationIndex {
  readonly #revoked = new Map<string, RevocationInfo>();
  /** Certificates on the CRL with reason superseded (renewals): not revocations for the KDC's purposes. */
  readonly #superseded = new Map<string, RevocationInfo>();
  /** The highest revocation row id read or recorded. */
  #lastRevocationId = 0;

  /**
   * O(1). Never stale for revocations this process made; others' are picked up by catchUp().
   * Superseded certificates are NOT reported here (see crlStatusOf): the key service and the KDC's
   * session checks treat a renewal as no revocation.
   */
  revocationOf(serialHex: string): RevocationInfo | undefined {
    return this.#revoked.get(serialHex.toLowerCase());
  }

  /** O(1): what the published CRLs say about a serial (a revocation, or reason superseded). */
  crlStatusOf(serialHex: string): RevocationInfo | undefined {
    const s = serialHex.toLowerCase();
    return this.#revoked.get(s) ?? this.#superseded.get(s);
  }

  /** Number of revoked certificates known; superseded ones not included. */
  get size(): number {
    return this.#revoked.size;
  }

  /**
   * Read the revocation rows of `db` newer than the last one seen into the maps. O(new rows): only the
   * rows with reason superseded cost a certificate lookup.
   */
  async catchUp(db: AsyncStoreData): Promise<CaughtUp> {
    const rows = await db.listRevocations(this.#lastRevocationId);
    const fresh: RevocationRecord[] = [];
    const superseded: string[] = [];
    for (const row of rows) {
      const reason = rowReason(row);
      const info = { reason, revokedAt: row.revokedAt };
      // A renewal's entry (reason superseded, certificate status superseded) is no revocation for the
      // KDC; an operator's revocation with reason superseded (status revoked) is one. Renewals are rare,
      // so looking the certificate up for those rows only keeps catching up O(new rows).
      if (reason === 'superseded' && (await db.getCertificate(row.serialHex))?.status === 'superseded') {
        if (!this.#superseded.has(row.serialHex)) superseded.push(row.serialHex);
        this.#superseded.set(row.serialHex, info);
      } else if (!this.#revoked.has(row.serialHex)) {
        fresh.push(row);
        this.#revoked.set(row.serialHex, info);
      }
      this.#lastRevocationId = row.id;
    }
    return { rows, fresh, superseded };
  }

  /** This process's own revocation (or renewal's entry), row `id`, once its transaction committed. */
  record(id: number, serialHex: string, info: RevocationInfo, kind: 'revoke' | 'supersede'): void {
    (kind === 'revoke' ? this.#revoked : this.#superseded).set(serialHex, info);
    this.#lastRevocationId = Math.max(this.#lastRevocationId, id);
  }

  /**
   * Certificates a renewal superseded that are not on the CRL yet (a crash between the renewal's
   * commit and its CRL, or a data directory from before superseded certificates were listed).
   */
  async listSupersededGaps(db: AsyncStoreData): Promise<string[]> {
    // Serials only, from the status index: every renewal ever made left one superseded row, and this
    // runs at every open of a CA that holds its key (each KDC start).
    return (await db.listCertificateSerials('superseded')).filter((s) => this.crlStatusOf(s) === undefined);
  }
}

/**
 * The reason of a stored revocation row. Rows are written only by revokeCertificate and
 * supersedeCertificate (server/ca/revoke.ts), which record REVOCATION_REASONS only: the store keeps the
 * name as text, and this is the one place it is read back as the type.
 */
export function rowReason(row: NewRevocation): RevocationReason {
  return row.reason as RevocationReason;
}
