// Revoking a certificate (RFC 5280 5.3.1 reason codes), and listing a renewal's superseded certificate
// on the CRL: durable before acknowledged, then announced.
//
// One transaction, under the store's write lock, holds the revocation row, the certificate's status, the
// audit record, the store notification to every node and the newly signed CRL(s) (server/ca/crl-sign.ts):
// "the revocation row and the new CRL are committed before the command reports success". Then the
// published files are rewritten (server/ca/crl-files.ts), then the onRevoked listeners run (the KDC ends
// the certificate's sessions, the key service cascades to the holder's keys). Only then does revoke()
// return. Revoking twice changes nothing.
import { InputError, StateError } from '../../shared/errors.js';
import { isRevocationReason, type RevocationReason } from '../../shared/revocation-reasons.js';
import type { CertificateRecord, RevocationRecord } from '../store/store.js';
import type { AsyncStore, AsyncStoreData } from '../store/async-store.js';
import { rowReason, type RevocationIndex, type RevocationInfo } from './revocation-index.js';
import type { CrlSigner } from './crl-sign.js';
import type { CrlFiles } from './crl-files.js';
import type { SyncSigner } from './signer.js';

export interface RevokeOutcome {
  status: 'revoked' | 'already_revoked';
  serialHex: string;
  name: string;
  reason: RevocationReason;
  revokedAt: number;
  /** Number of the CRL that first lists it (the delta's in the large regime); the current one if already revoked. */
  crlNumber: number;
  /** Which CRL this revocation published: the complete CRL (small regime) or only the delta. */
  published?: 'full' | 'delta';
}

export type RevokedListener = (serialHex: string, name: string, info: RevocationInfo) => void | Promise<void>;

/** The store channel a revocation is announced on (payload: the serial), to every node. */
export const REVOKED_CHANNEL = 'revoked';

/** The onRevoked listeners of one process: told of every revocation, this process's and others'. */
export class RevokedListeners {
  readonly #listeners: RevokedListener[] = [];

  add(listener: RevokedListener): void {
    this.#listeners.push(listener);
  }

  /** Announce revocation rows other processes committed (their names read from `store`). */
  async announceRows(store: AsyncStore, rows: RevocationRecord[]): Promise<void> {
    for (const row of rows) {
      const name = (await store.getCertificate(row.serialHex))?.name ?? '';
      await this.announce(row.serialHex, name, {
        reason: rowReason(row),
        revokedAt: row.revokedAt,
      });
    }
  }

  async announce(serialHex: string, name: string, info: RevocationInfo): Promise<void> {
    // A failing listener must not turn a committed revocation into an error for the caller.
    await Promise.allSettled(this.#listeners.map(async (l) => l(serialHex, name, info)));
  }
}

/** What a revocation works with: the process's revocation state (server/ca/revocations.ts). */
export interface RevocationContext {
  store: AsyncStore;
  index: RevocationIndex;
  crls: CrlSigner;
  files: CrlFiles;
  listeners: RevokedListeners;
  /** Run `fn` after every operation on the revocation state this process started before it. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** Catch the index and the CRL builders up with `db`; returns the revocations this process did not know. */
  catchUp(db: AsyncStoreData): Promise<RevocationRecord[]>;
}

type Target = { serialHex: string } | { name: string };

/**
 * Revoke one certificate: the revocation row, the certificate's status, the next CRL number and the
 * newly signed CRL(s) commit in ONE transaction; then the published file(s) are rewritten atomically;
 * then the listeners run. Only then does this return. Revoking twice changes nothing. `beforeWrite`
 * runs first inside the transaction and may throw to refuse.
 */
export async function revokeCertificate(
  ctx: RevocationContext,
  by: Target,
  reason: RevocationReason,
  actor: string,
  sign: SyncSigner,
  now: number = Date.now(),
  beforeWrite?: (tx: AsyncStoreData) => Promise<void>,
): Promise<RevokeOutcome> {
  // Checked again at run time for callers the compiler did not see. RFC 5280 5.3.1: "removeFromCRL
  // (8) ... is for use with delta CRLs": no revocation of a certificate has it.
  if (!isRevocationReason(reason)) {
    throw new InputError(
      'bad_reason',
      `invalid revocation reason ${JSON.stringify(String(reason).slice(0, 40))}`,
    );
  }
  return record(ctx, by, reason, actor, sign, now, 'revoke', beforeWrite);
}

/**
 * A renewal superseded `serialHex` (its status is already `superseded`): list it on the CRL with
 * reasonCode superseded (RFC 5280 5.3.1), durably, without telling onRevoked listeners (no key
 * cascade, no sessions ended). Idempotent.
 */
export async function supersedeCertificate(
  ctx: RevocationContext,
  serialHex: string,
  actor: string,
  sign: SyncSigner,
  now: number = Date.now(),
): Promise<void> {
  await record(ctx, { serialHex }, 'superseded', actor, sign, now, 'supersede');
}

async function record(
  ctx: RevocationContext,
  by: Target,
  reason: RevocationReason,
  actor: string,
  sign: SyncSigner,
  nowMs: number,
  kind: 'revoke' | 'supersede',
  beforeWrite?: (tx: AsyncStoreData) => Promise<void>,
): Promise<RevokeOutcome> {
  const { store, index, crls } = ctx;
  // CRL times have one-second resolution (RFC 5280 5.1.2.4): record exactly what the CRL will say.
  const now = Math.floor(nowMs / 1000) * 1000;
  let fresh: RevocationRecord[] = [];
  const outcome = await ctx.exclusive(async () => {
    let rowId = 0;
    let result: RevokeOutcome;
    try {
      result = await store.transaction(async (tx) => {
        await beforeWrite?.(tx);
        // Under the write lock: catch up first, so the re-check below and the CRL see every row.
        fresh = await ctx.catchUp(tx);
        await crls.reload(tx, await store.changeCounter());
        const cert = await findTarget(tx, by);
        const existing = await tx.getRevocation(cert.serialHex);
        if (existing !== undefined) {
          return {
            status: 'already_revoked' as const,
            serialHex: cert.serialHex,
            name: cert.name,
            reason: rowReason(existing),
            revokedAt: existing.revokedAt,
            crlNumber: crls.highestCrlNumber(),
          };
        }
        if (kind === 'supersede' && cert.status !== 'superseded') {
          throw new InputError('bad_request', `certificate ${cert.serialHex} was not superseded`, {
            serialHex: cert.serialHex,
          });
        }
        const row = await tx.insertRevocation({ serialHex: cert.serialHex, revokedAt: now, reason });
        if (kind === 'revoke') await tx.setCertificateStatus(cert.serialHex, 'revoked');
        rowId = row.id;
        crls.add(row.id, { serialHex: cert.serialHex, revokedAt: now, reason }, cert.notAfter);
        const { crlNumber, published } = await crls.signRevocation(tx, sign, now);
        await tx.appendAudit({
          at: now,
          actor,
          action: kind === 'revoke' ? 'cert.revoke' : 'cert.supersede',
          subject: cert.name,
          detail: { serialHex: cert.serialHex, reason, crlNumber, published },
        });
        // Every node hears of it (the KDCs' sessions of this certificate end, their lookups refresh).
        if (kind === 'revoke') await tx.notify(REVOKED_CHANNEL, cert.serialHex);
        return {
          status: 'revoked' as const,
          serialHex: cert.serialHex,
          name: cert.name,
          reason,
          revokedAt: now,
          crlNumber,
          published,
        };
      });
    } catch (err) {
      // The builders may hold the entry although the transaction rolled back.
      crls.rollBack(true);
      throw err;
    }
    crls.commit();
    if (result.status === 'revoked') {
      index.record(rowId, result.serialHex, { reason: result.reason, revokedAt: result.revokedAt }, kind);
      await ctx.files.write(result.published === 'full');
    }
    return result;
  });
  await ctx.listeners.announceRows(store, fresh);
  if (outcome.status === 'revoked' && kind === 'revoke') {
    await ctx.listeners.announce(outcome.serialHex, outcome.name, {
      reason: outcome.reason,
      revokedAt: outcome.revokedAt,
    });
  }
  return outcome;
}

async function findTarget(db: AsyncStoreData, by: Target): Promise<CertificateRecord> {
  let cert: CertificateRecord | undefined;
  if ('serialHex' in by) {
    cert = await db.getCertificate(by.serialHex);
    if (cert === undefined || cert.status === 'pending') {
      throw new StateError(
        'unknown_serial',
        `no certificate with serial ${by.serialHex} was issued by this CA`,
        {
          serialHex: by.serialHex,
        },
      );
    }
  } else {
    cert = (await db.activeCertificate(by.name)) ?? (await db.latestCertificate(by.name));
    if (cert === undefined) {
      throw new StateError('not_found', `no certificate was issued for ${JSON.stringify(by.name)}`, {
        name: by.name,
      });
    }
  }
  // RFC 5280 5.1.2.6 lists certificates "revoked by the CRL issuer": the root cannot revoke itself
  // in its own CRL (a relying party would have to trust the key it distrusts). Replace the CA instead.
  if (cert.role === 'ca')
    throw new InputError('bad_request', 'the root CA cannot be revoked; re-run init with --force');
  return cert;
}
