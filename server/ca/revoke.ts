// Revoking a certificate (RFC 5280 5.3.1 reason codes), and listing a renewal's superseded certificate
// on the CRL: durable before acknowledged, then announced.
//
// One transaction, under the store's write lock, holds the revocation row, the certificate's status, the
// audit record, the store notification to every node and the newly signed CRL(s) (server/ca/crl-sign.ts):
// "the revocation row and the new CRL are committed before the command reports success". Then the
// published files are rewritten (server/ca/crl-files.ts), then the onRevoked listeners run (the KDC ends
// the certificate's sessions, the key service cascades to the holder's keys). Only then does revoke()
// return. Revoking twice changes nothing.
//
// Once the transaction committed, the certificate IS revoked, whatever happens next: everything after the
// commit is follow-up work derived from the committed row, never a reason to report failure (an error
// would invite a retry that can only answer `already_revoked`). So a follow-up step that fails (the store
// cut off right after the COMMIT, a file that cannot be written) is kept and retried: the announcement
// stays pending per row and listener until every listener has succeeded (RevokedListeners below), each
// periodic revocation sync retries it and brings stale CRL files up to the store (server/ca/revocations.ts
// sync), and a process that dies meanwhile redoes all of it from the store when it starts (files repaired
// at open, keys of revoked certificates swept by the key service, sessions gone with the process).
import { InputError, StateError } from '../../shared/errors.js';
import { isRevocationReason, type RevocationReason } from '../../shared/revocation-reasons.js';
import type { CertificateRecord } from '../store/store.js';
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
  /**
   * The revocation is committed (and on the CRL the KDC serves), but part of what follows it failed and
   * is being retried: the published files, or a listener (sessions not yet ended, keys not yet revoked).
   */
  followUpPending?: true;
}

/**
 * Told of a committed revocation. `attempt` counts the tries for this revocation in this process (1 the
 * first time): a listener that threw is called again, with the next number, until it succeeds, so a
 * listener must be idempotent (ending sessions that are already gone, revoking keys already revoked).
 */
export type RevokedListener = (
  serialHex: string,
  name: string,
  info: RevocationInfo,
  attempt: number,
) => void | Promise<void>;

/** The store channel a revocation is announced on (payload: the serial), to every node. */
export const REVOKED_CHANNEL = 'revoked';

/** A committed revocation some listener has not handled yet. */
interface PendingAnnouncement {
  serialHex: string;
  /** Read from the store when the announcement is first tried (rows other processes committed). */
  name: string | undefined;
  info: RevocationInfo;
  /** The listeners that have not succeeded for it yet. */
  left: Set<RevokedListener>;
  attempts: number;
}

/**
 * The onRevoked listeners of one process: told of every revocation, this process's and others'. A
 * revocation stays pending, per listener, until that listener has succeeded for it: the revocation
 * index moves past a row as soon as it is read (lookups must see it at once), so "read but not yet
 * announced" has to be remembered here, or a failure between the two loses the announcement for good.
 */
export class RevokedListeners {
  readonly #listeners: RevokedListener[] = [];
  readonly #pending = new Map<string, PendingAnnouncement>();
  /** One announcing round at a time: a listener never runs twice at once for the same revocation. */
  #round: Promise<unknown> = Promise.resolve();

  add(listener: RevokedListener): void {
    this.#listeners.push(listener);
  }

  /**
   * A committed revocation to announce to every listener registered now (its holder's name read from the
   * store when `name` is undefined). Nothing happens until the next announcePending().
   */
  expect(serialHex: string, name: string | undefined, info: RevocationInfo): void {
    if (this.#listeners.length === 0 || this.#pending.has(serialHex)) return;
    this.#pending.set(serialHex, { serialHex, name, info, left: new Set(this.#listeners), attempts: 0 });
  }

  /** Some listener has not succeeded for this revocation yet. */
  isPending(serialHex: string): boolean {
    return this.#pending.has(serialHex);
  }

  /**
   * Run every pending announcement, in the order the revocations were read, with the listeners it has
   * not reached; after the round already running, if any. Resolves with what failed in this round (those
   * stay pending); never rejects.
   */
  announcePending(store: AsyncStore): Promise<Error[]> {
    const round = this.#round.then(() => this.#announceRound(store));
    this.#round = round;
    return round;
  }

  async #announceRound(store: AsyncStore): Promise<Error[]> {
    const failures: Error[] = [];
    for (const p of [...this.#pending.values()]) {
      p.attempts += 1;
      try {
        p.name ??= (await store.getCertificate(p.serialHex))?.name ?? '';
      } catch (err) {
        failures.push(err as Error);
        continue;
      }
      const { serialHex, name, info, attempts } = p;
      // The listeners of one revocation run side by side, as before: ending sessions does not wait for
      // the key cascade. A failing one must not turn a committed revocation into an error either.
      await Promise.all(
        [...p.left].map(async (listener) => {
          try {
            await listener(serialHex, name, info, attempts);
            p.left.delete(listener);
          } catch (err) {
            failures.push(err as Error);
          }
        }),
      );
      if (p.left.size === 0) this.#pending.delete(serialHex);
    }
    return failures;
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
  /**
   * Catch the index and the CRL builders up with `db`; the revocations this process did not know are
   * left pending with the listeners (announced by the caller's announcePending, or the next sync).
   */
  catchUp(db: AsyncStoreData): Promise<void>;
  /**
   * Make the next sync catch up whatever the store's change counter says: after a transaction that
   * failed, which may have committed all the same (a connection cut during the COMMIT), while the
   * counter need not show this process's own commits (SQLite's data_version does not).
   */
  catchUpNextSync(): void;
}

type Target = { serialHex: string } | { name: string };

/**
 * Revoke one certificate: the revocation row, the certificate's status, the next CRL number and the
 * newly signed CRL(s) commit in ONE transaction; then the published file(s) are rewritten atomically;
 * then the listeners run. Only then does this return. Revoking twice changes nothing but retries what
 * is still pending after an earlier attempt. `beforeWrite` runs first inside the transaction and may
 * throw to refuse. Throws only when nothing was committed; a follow-up failure after the commit is
 * `followUpPending` in the outcome (see the header).
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
  let filesBehind = false;
  const outcome = await ctx.exclusive(async () => {
    let rowId = 0;
    let result: RevokeOutcome;
    try {
      result = await store.transaction(async (tx) => {
        await beforeWrite?.(tx);
        // Under the write lock: catch up first, so the re-check below and the CRL see every row.
        await ctx.catchUp(tx);
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
      // Or it did not roll back: then the next sync reads the row like another process's, and its
      // follow-up is done from there (the caller is told it failed: it cannot know otherwise).
      ctx.catchUpNextSync();
      throw err;
    }
    crls.commit();
    if (result.status === 'revoked') {
      const info = { reason: result.reason, revokedAt: result.revokedAt };
      index.record(rowId, result.serialHex, info, kind);
      if (kind === 'revoke') ctx.listeners.expect(result.serialHex, result.name, info);
      try {
        await ctx.files.write(result.published === 'full');
      } catch {
        // Committed: the files are copies of the store's CRLs, and the next sync rewrites them
        // (CrlFiles.catchUp); the CRL served over HTTP is already the new one.
        filesBehind = true;
      }
    }
    return result;
  });
  // Also for `already_revoked`: a retry after a failed follow-up completes it.
  await ctx.listeners.announcePending(store);
  return filesBehind || ctx.listeners.isPending(outcome.serialHex)
    ? { ...outcome, followUpPending: true }
    : outcome;
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
