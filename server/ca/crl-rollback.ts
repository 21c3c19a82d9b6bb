// Recovering from a store that was rolled back: restored from a backup older than the CRLs this CA has
// published (docs/deployment.md "Backups").
//
// root_crl.pem and root_delta_crl.pem are written only from the store, under its write lock, after the
// commit that signed them (crl-files.ts). So a published file signed by this CA's key with a number
// above the store's CRL of its kind means the store lost what it had committed: revocations, and the CRL
// numbers that went with them. Left alone, the CA would sign a DIFFERENT CRL under a number it already
// used, and the certificates revoked after the backup would be good again. RFC 5280 5.2.3: the CRL
// number is "a monotonically increasing sequence number for a given CRL scope and CRL issuer"; a relying
// party that cached CRL N never looks at another CRL N.
//
// What the newer CRLs prove is put back, once, when the CA opens with its key (before anything is
// signed), in ONE transaction:
//   - every revocation they list that the store lacks is recorded again, with its revocationDate and
//     reason: revocation is monotonic and the CA itself signed it, so re-applying it is always safe;
//   - a listed serial the store has no certificate of (issued after the backup) cannot get a revocation
//     row (its serial references certificates): it is kept on every future complete CRL instead
//     (crl-sign.ts `crl.recovered`); the KDC refuses such a certificate anyway (not in its store);
//   - a complete CRL is signed numbered above the highest number published, so numbering resumes
//     strictly above everything relying parties may hold;
//   - an audit entry says so.
// What no CRL records cannot be recovered: key revocations (keys are not on the CRL), keys,
// certificates and enrollments made after the backup, queued deliveries, audit entries.
import { normalizeSerialHex } from '../../shared/pki/serial.js';
import type { CrlEntry } from '../../shared/pki/crl.js';
import type { SyncSigner } from './signer.js';
import { REVOKED_CHANNEL, type RevocationContext } from './revoke.js';

/** What a recovery put back (CertificateAuthority.rollbackRecovery). */
export interface RollbackRecovery {
  /** The highest CRL number the store held. */
  storeCrlNumber: number;
  /** The highest number of the published CRLs, signed by this CA, that the store had lost. */
  publishedCrlNumber: number;
  /** The complete CRL the recovery signed (above publishedCrlNumber). */
  crlNumber: number;
  /** Revocations recorded again (the store knows their certificates). */
  restored: { serialHex: string; name: string; reason: string; revokedAt: number }[];
  /** Revoked serials the store has no certificate of: kept on every future complete CRL. */
  unknown: CrlEntry[];
}

/** At most this many serials in the audit entry (the counts are always there). */
const AUDIT_SERIALS = 50;

/**
 * Put back what the published CRLs newer than the store prove (see the header); undefined when there
 * are none. Runs before any CRL is signed by this process.
 */
export async function recoverRollback(
  ctx: RevocationContext,
  sign: SyncSigner,
  nowMs: number,
): Promise<RollbackRecovery | undefined> {
  const { store, crls, files } = ctx;
  const now = Math.floor(nowMs / 1000) * 1000;
  return ctx.exclusive(async () => {
    let report: RollbackRecovery | undefined;
    try {
      report = await store.transaction(async (tx) => {
        // Under the write lock, against the store's current CRLs (another process's newer commit is no
        // rollback).
        await ctx.catchUp(tx);
        await crls.reload(tx, await store.changeCounter());
        const newer = files.newerPublished();
        if (newer.length === 0) return undefined;
        const storeCrlNumber = crls.highestCrlNumber();
        let publishedCrlNumber = 0;
        let publishedThisUpdate = 0;
        // The complete CRL first, then the delta: the union is what the CA had published.
        const entries = new Map<string, CrlEntry>();
        for (const { crl } of newer) {
          publishedCrlNumber = Math.max(publishedCrlNumber, Number(crl.crlNumber));
          publishedThisUpdate = Math.max(publishedThisUpdate, crl.thisUpdate);
          for (const e of crl.entries) {
            // RFC 5280 5.3.1: removeFromCRL "is for use with delta CRLs": kds never issues it, and it
            // is no revocation.
            if (e.reason === 'removeFromCRL') continue;
            const serialHex = normalizeSerialHex(e.serialHex);
            if (!entries.has(serialHex)) entries.set(serialHex, { ...e, serialHex });
          }
        }
        const restored: RollbackRecovery['restored'] = [];
        const unknown: CrlEntry[] = [];
        for (const e of entries.values()) {
          if ((await tx.getRevocation(e.serialHex)) !== undefined) continue;
          if (crls.recovered().some((r) => r.serialHex === e.serialHex)) continue;
          const cert = await tx.getCertificate(e.serialHex);
          if (cert === undefined) {
            unknown.push(e);
            continue;
          }
          if (cert.role === 'ca') continue; // never on our CRL (revoke.ts findTarget)
          await tx.insertRevocation({ serialHex: e.serialHex, revokedAt: e.revokedAt, reason: e.reason });
          // As revoke.ts / supersedeCertificate left it: a renewal's entry marks the certificate
          // superseded, any other reason revoked. The KDC refuses both.
          await tx.setCertificateStatus(e.serialHex, e.reason === 'superseded' ? 'superseded' : 'revoked');
          if (e.reason !== 'superseded') await tx.notify(REVOKED_CHANNEL, e.serialHex);
          restored.push({
            serialHex: e.serialHex,
            name: cert.name,
            reason: e.reason,
            revokedAt: e.revokedAt,
          });
        }
        await crls.addRecovered(tx, unknown);
        // The rows just written, into the revocation index and the CRL builders.
        await ctx.catchUp(tx);
        const state = await crls.signFull(tx, sign, now, {
          crlNumber: publishedCrlNumber,
          thisUpdate: publishedThisUpdate,
        });
        const recovery: RollbackRecovery = {
          storeCrlNumber,
          publishedCrlNumber,
          crlNumber: state.crlNumber,
          restored,
          unknown,
        };
        await tx.appendAudit({
          at: now,
          actor: 'kds',
          action: 'crl.rollback_recovered',
          detail: {
            storeCrlNumber,
            publishedCrlNumber,
            crlNumber: state.crlNumber,
            restored: restored.length,
            restoredSerials: restored.slice(0, AUDIT_SERIALS).map((r) => r.serialHex),
            unknown: unknown.length,
            unknownSerials: unknown.slice(0, AUDIT_SERIALS).map((u) => u.serialHex),
          },
        });
        return recovery;
      });
    } catch (err) {
      crls.rollBack(true);
      throw err;
    }
    crls.commit();
    if (report !== undefined) await files.write(true);
    return report;
  });
}

/** The warning lines for a recovery: loud, what was put back, what was not, where to read more. */
export function rollbackRecoveryWarnings(r: RollbackRecovery): string[] {
  const list = (serials: string[]): string =>
    serials.length === 0
      ? ''
      : `: ${serials.slice(0, 10).join(', ')}${serials.length > 10 ? `, ... (${serials.length})` : ''}`;
  return [
    `the store was ROLLED BACK (restored from an older backup?): it held CRL number ${r.storeCrlNumber}, but this CA had published CRL number ${r.publishedCrlNumber}`,
    `recovered from the published CRL: ${r.restored.length} revocation(s) recorded again${list(r.restored.map((x) => `${x.name} ${x.serialHex}`))}; ${r.unknown.length} revoked serial(s) of certificates the store does not know, kept on every future CRL${list(r.unknown.map((x) => x.serialHex))}; new CRL number ${r.crlNumber}`,
    'NOT recovered: key revocations, keys, certificates and enrollments made after the backup, queued deliveries and audit entries: see docs/deployment.md "Backups"',
  ];
}

/** The warning for a CA opened without its key (nothing is written) that finds the store rolled back. */
export function rollbackPendingWarning(): string {
  return 'the published CRL is NEWER than the store (restored from an older backup?): it was left as it is; the next start of the KDC (or `kds cert revoke`) records its revocations again: see docs/deployment.md "Backups"';
}
