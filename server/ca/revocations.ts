// The revocation state of one process, kept in step with the store: the revocation index
// (revocation-index.ts), the CRLs and their builders (crl-sign.ts) and the published files
// (crl-files.ts), changed by one operation at a time (load, sync, refresh, revoke, supersede).
//
// All are loaded once at open and then updated incrementally: our own revocations directly (revoke.ts),
// other processes' by reading revocation rows with an id above the last one seen (ids are monotonic),
// which happens inside every revocation transaction and whenever the store's change counter moved.
//
// Lookups (revocationOf, crlStatusOf, currentState, currentDelta) answer from memory, synchronously: this
// process's own revocations are there before revoke() returns, other processes' and nodes' after the next
// sync() (the KDC calls it before every handshake check, on its timer and when the store notifies a
// revocation).
//
// What follows a revocation (the onRevoked listeners, the published files) is driven from what the store
// holds, not from the one call that committed it: a revocation read or committed here stays pending with
// the listeners until each of them succeeded for it, and the files are compared with the store's CRL
// numbers. sync() retries both, so a failure after a commit (the store cut off, a file not written) is
// repaired on the next round of the KDC's timer instead of being lost (revoke.ts header).
import type { RevocationReason } from '../../shared/revocation-reasons.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import type { CrlState, RevocationRecord } from '../store/store.js';
import type { AsyncStore, AsyncStoreData } from '../store/async-store.js';
import type { CaPaths, CaSettings } from '../../io/ca-files.js';
import { RevocationIndex, rowReason, type RevocationInfo } from './revocation-index.js';
import { CrlSigner, type DeltaCrlState, type RefreshMode } from './crl-sign.js';
import { CrlFiles, type CrlFileRepair } from './crl-files.js';
import {
  revokeCertificate,
  RevokedListeners,
  supersedeCertificate,
  type RevocationContext,
  type RevokedListener,
  type RevokeOutcome,
} from './revoke.js';
import type { SyncSigner } from './signer.js';
import { recoverRollback, type RollbackRecovery } from './crl-rollback.js';

export class Revocations {
  readonly #store: AsyncStore;
  readonly #index = new RevocationIndex();
  readonly #crls: CrlSigner;
  readonly #files: CrlFiles;
  readonly #listeners = new RevokedListeners();
  /** The store's change counter when sync() last caught up; NaN: catch up at the next sync whatever it says. */
  #lastChangeCounter: number;
  /** One catch-up, refresh or revocation of this process at a time (they share the builders and maps). */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #context: RevocationContext;
  readonly #supersededListeners: ((serialHex: string) => void)[] = [];

  private constructor(store: AsyncStore, crls: CrlSigner, files: CrlFiles) {
    this.#store = store;
    this.#crls = crls;
    this.#files = files;
    this.#lastChangeCounter = crls.counter;
    this.#context = {
      store,
      index: this.#index,
      crls,
      files,
      listeners: this.#listeners,
      exclusive: (fn) => this.#exclusive(fn),
      catchUp: async (db) => void (await this.#catchUp(db)),
      catchUpNextSync: () => (this.#lastChangeCounter = Number.NaN),
    };
  }

  /** Load the revocation state of the store (every row once: O(n) at open, O(1) per lookup after). */
  static async load(deps: {
    store: AsyncStore;
    paths: CaPaths;
    caCert: ParsedCertificate;
    settings: CaSettings;
  }): Promise<Revocations> {
    const crls = await CrlSigner.load(deps.store, deps.caCert, deps.settings);
    const files = new CrlFiles({ store: deps.store, paths: deps.paths, caCert: deps.caCert, crls });
    const revocations = new Revocations(deps.store, crls, files);
    // The revocations already in the store at open were announced when they were made (or their effects
    // are redone from the store at start: the key service's sweep); nothing is listening yet anyway.
    await revocations.#catchUp(deps.store, false);
    return revocations;
  }

  /** Run `fn` after every catch-up, refresh and revocation this process started before it. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Read the rows of `db` this process has not seen into the index, then into the CRL builders; the
   * revocations among them become pending announcements (unless `announce` is false: the open).
   */
  async #catchUp(db: AsyncStoreData, announce = true): Promise<RevocationRecord[]> {
    const { rows, fresh, superseded } = await this.#index.catchUp(db);
    // Pending before anything else can fail: the index has moved past these rows for good.
    if (announce) {
      for (const row of fresh)
        this.#listeners.expect(row.serialHex, undefined, {
          reason: rowReason(row),
          revokedAt: row.revokedAt,
        });
    }
    await this.#crls.catchUp(db, rows);
    for (const serialHex of superseded) for (const listener of this.#supersededListeners) listener(serialHex);
    return fresh;
  }

  // -------------------------------------------------------------------------------------------------
  // Lookups (memory only)

  /** O(1); superseded certificates are not revocations here (revocation-index.ts). */
  revocationOf(serialHex: string): RevocationInfo | undefined {
    return this.#index.revocationOf(serialHex);
  }

  /** O(1): what the published CRLs say about a serial (a revocation, or reason superseded). */
  crlStatusOf(serialHex: string): RevocationInfo | undefined {
    return this.#index.crlStatusOf(serialHex);
  }

  /** The current complete CRL as of the last sync (or this process's last commit). */
  currentState(): CrlState {
    return this.#crls.currentState();
  }

  /** The current delta CRL; undefined for a data directory no delta was ever issued in. */
  currentDelta(): DeltaCrlState | undefined {
    return this.#crls.currentDelta();
  }

  /** Is a complete CRL due by the schedule? (memory only; crl-sign.ts fullCrlDue.) */
  fullCrlDue(now: number = Date.now()): boolean {
    return this.#crls.fullCrlDue(now);
  }

  /** Name `url` in the Freshest CRL extension of the complete CRLs issued from now on; true when it changed. */
  setFreshestCrlUrl(url: string): boolean {
    return this.#crls.setFreshestCrlUrl(url);
  }

  onRevoked(listener: RevokedListener): void {
    this.#listeners.add(listener);
  }

  /**
   * Called (synchronously, during a catch-up) for each certificate another process's renewal superseded,
   * once its CRL entry is read here. Not for this process's own renewals: their installer acts on them.
   */
  onSuperseded(listener: (serialHex: string) => void): void {
    this.#supersededListeners.push(listener);
  }

  /** Certificates a renewal superseded that are not on the CRL yet (revocation-index.ts). */
  listSupersededGaps(): Promise<string[]> {
    return this.#index.listSupersededGaps(this.#store);
  }

  /** Make root_crl.pem byte-identical to the store's current CRL (crl-files.ts). */
  repairFile(): Promise<CrlFileRepair> {
    return this.#files.repairFile();
  }

  /** The same for root_delta_crl.pem. */
  repairDeltaFile(): Promise<CrlFileRepair> {
    return this.#files.repairDeltaFile();
  }

  // -------------------------------------------------------------------------------------------------
  // Changes

  /**
   * Put back what the published CRLs newer than the store prove, when the store was rolled back
   * (crl-rollback.ts); undefined when it was not. Before this process signs anything.
   */
  recoverRollback(sign: SyncSigner, now: number = Date.now()): Promise<RollbackRecovery | undefined> {
    return recoverRollback(this.#context, sign, now);
  }

  /**
   * Pick up what other processes or nodes committed (revocations, CRLs) when the store's change counter
   * moved, and tell the listeners of the revocations among it; then complete what is still pending from
   * earlier revocations: announcements some listener failed, CRL files older than the store's CRLs.
   * Returns the revocations new to this process. Throws the first failure of that work after trying all
   * of it (it stays pending for the next call): the KDC's timer logs it.
   */
  async sync(): Promise<RevocationRecord[]> {
    const { fresh } = await this.#catchUpIfMoved();
    const failures = await this.#listeners.announcePending(this.#store);
    try {
      await this.#exclusive(() => this.#files.catchUp());
    } catch (err) {
      failures.push(err as Error);
    }
    if (failures.length > 0) throw failures[0];
    return fresh;
  }

  /**
   * Catch up like sync(), also answering the store's change counter that look read: a caller that needs
   * the counter in the same step (cert-check.ts CertificateRecordCache) reuses it instead of reading it
   * again. On the handshake path: it announces the new revocations, but retries nothing and never fails
   * for a listener (a stuck retry must not hold up or refuse every handshake; the timer's sync retries).
   */
  async syncAt(): Promise<{ fresh: RevocationRecord[]; counter: number }> {
    const seen = await this.#catchUpIfMoved();
    if (seen.fresh.length > 0) await this.#listeners.announcePending(this.#store);
    return seen;
  }

  #catchUpIfMoved(): Promise<{ fresh: RevocationRecord[]; counter: number }> {
    return this.#exclusive(async () => {
      const counter = await this.#store.changeCounter();
      if (counter === this.#lastChangeCounter) return { fresh: [], counter };
      const rows = await this.#catchUp(this.#store);
      await this.#crls.reload(this.#store, counter);
      this.#lastChangeCounter = counter;
      return { fresh: rows, counter };
    });
  }

  /** Revoke one certificate, durably, then announce it (revoke.ts). */
  revoke(
    by: { serialHex: string } | { name: string },
    reason: RevocationReason,
    actor: string,
    sign: SyncSigner,
    now: number = Date.now(),
    beforeWrite?: (tx: AsyncStoreData) => Promise<void>,
  ): Promise<RevokeOutcome> {
    return revokeCertificate(this.#context, by, reason, actor, sign, now, beforeWrite);
  }

  /** List a renewal's superseded certificate on the CRL (revoke.ts). */
  supersede(serialHex: string, actor: string, sign: SyncSigner, now: number = Date.now()): Promise<void> {
    return supersedeCertificate(this.#context, serialHex, actor, sign, now);
  }

  /**
   * Issue a new complete CRL listing every revocation (and an empty delta with the same number) when
   * fullCrlDue(now, mode) says so. RFC 5280 5.1.2.5: nextUpdate is "the date by which the next CRL will
   * be issued"; relying parties refuse an expired CRL, so a KDC must re-sign in time. Several nodes may
   * find it due at once: the re-check under the store's write lock lets only the first one sign.
   */
  async refresh(
    sign: SyncSigner,
    now: number = Date.now(),
    mode: RefreshMode | boolean = 'due',
  ): Promise<CrlState | undefined> {
    const m: RefreshMode = mode === true ? 'force' : mode === false ? 'due' : mode;
    now = Math.floor(now / 1000) * 1000;
    if (!this.#crls.fullCrlDue(now, m)) return undefined;
    const state = await this.#exclusive(async () => {
      let signed: CrlState | undefined;
      try {
        signed = await this.#store.transaction(async (tx) => {
          await this.#catchUp(tx);
          await this.#crls.reload(tx, await this.#store.changeCounter());
          if (!this.#crls.fullCrlDue(now, m)) return undefined; // re-checked under the write lock
          return this.#crls.signFull(tx, sign, now);
        });
      } catch (err) {
        this.#crls.rollBack(false);
        this.#context.catchUpNextSync();
        throw err;
      }
      this.#crls.commit();
      if (signed !== undefined) {
        try {
          await this.#files.write(true);
        } catch {
          // Committed and served; the next sync() brings the files up to it (CrlFiles.catchUp).
        }
      }
      return signed;
    });
    await this.#listeners.announcePending(this.#store);
    return state;
  }
}
