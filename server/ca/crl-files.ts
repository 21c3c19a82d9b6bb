// The published CRL files of a data directory, root_crl.pem and root_delta_crl.pem: written after every
// commit that signed a CRL, checked and repaired at open and whenever the store's CRLs are numbered above
// what the files were last made to hold (catchUp, on the KDC's revocation sync), and written first by
// `kds server init`. The write after a commit can fail (the store cut off just after the COMMIT, a full
// disk): the commit stands, and catchUp rewrites the files on the next sync instead of leaving them
// stale until a restart.
//
// The store is the source of truth (server/ca/crl-sign.ts signs into it); the files are copies that
// relying parties read. They are always written while holding the store's write lock, from what the
// store holds at that moment, so they follow commit order even when several processes revoke at once.
//
// One exception to "the store is the source of truth": a file that this CA signed and that carries a
// higher number than the store's CRL of its kind. Since the files are written only from the store, under
// its lock, that means the store lost CRLs it had issued: it was restored from an older backup (or the
// database was rolled back). Such a file is never overwritten with the older CRL: it is the proof of
// what the CA had revoked and numbered, which crl-rollback.ts puts back into the store. A higher-numbered
// file that does NOT verify under this CA's key proves nothing, and is rewritten like a damaged one.
import { readFileSync } from 'node:fs';
import { EnvironmentError } from '../../shared/errors.js';
import { parseCrl, type ParsedCrl } from '../../shared/pki/crl.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import { PUBLIC_FILE_MODE, writeFileAtomic } from '../../io/fs-atomic.js';
import type { CrlState } from '../store/store.js';
import type { AsyncStore } from '../store/async-store.js';
import type { CaPaths, CaSettings } from '../../io/ca-files.js';
import { issueInitialCrls, type CrlSigner } from './crl-sign.js';
import type { SyncSigner } from './signer.js';

/**
 * What `open` found about root_crl.pem (or root_delta_crl.pem). 'newer': signed by this CA with a higher
 * number than the store's: left as it is (the store was rolled back; crl-rollback.ts).
 */
export type CrlFileRepair = 'ok' | 'missing' | 'unreadable' | 'stale' | 'different' | 'newer';

/** A published CRL file that proves the store was rolled back (see the header). */
export interface NewerCrlFile {
  path: string;
  crl: ParsedCrl;
  /** The number of the store's CRL of the same kind (complete or delta); 0: the store has no delta. */
  storeCrlNumber: number;
}

export class CrlFiles {
  readonly #store: AsyncStore;
  readonly #paths: CaPaths;
  readonly #caCert: ParsedCertificate;
  readonly #crls: CrlSigner;
  /**
   * The numbers of the store's CRLs the files were last written from or checked against, by kind; a
   * store CRL numbered otherwise (another process or node signed, or the write after our own commit
   * failed) makes catchUp() look at the file again. Kept in memory: an open always checks the files.
   */
  readonly #settled: { full?: number; delta?: number } = {};

  constructor(deps: { store: AsyncStore; paths: CaPaths; caCert: ParsedCertificate; crls: CrlSigner }) {
    this.#store = deps.store;
    this.#paths = deps.paths;
    this.#caCert = deps.caCert;
    this.#crls = deps.crls;
  }

  /**
   * Write the store's CURRENT CRLs while holding the store's write lock: every writer does the same, so
   * the files follow commit order and never go back to an older CRL even when two processes revoke at
   * the same moment. The delta is written every time; the complete CRL only when it was re-issued.
   */
  async write(full: boolean): Promise<void> {
    await this.#store.transaction(async (tx) => {
      await this.#crls.reload(tx, await this.#store.changeCounter());
      if (full) {
        const state = this.#crls.currentState();
        writeFileAtomic(this.#paths.rootCrl, state.pem, PUBLIC_FILE_MODE);
        this.#settled.full = state.crlNumber;
      }
      const delta = this.#crls.currentDelta();
      if (delta !== undefined) {
        writeFileAtomic(this.#paths.deltaCrl, delta.pem, PUBLIC_FILE_MODE);
        this.#settled.delta = delta.crlNumber;
      }
    });
  }

  /**
   * Repair the file of each kind whose store CRL (as last reloaded) is numbered otherwise than what the
   * file was last made to hold: a cheap comparison of numbers when nothing changed, one read (and, if it
   * differs, one rewrite under the store's lock) when something did.
   */
  async catchUp(): Promise<void> {
    if (this.#settled.full !== this.#crls.currentState().crlNumber) await this.repairFile();
    const delta = this.#crls.currentDelta();
    if (delta !== undefined && this.#settled.delta !== delta.crlNumber) await this.repairDeltaFile();
  }

  /**
   * Make root_crl.pem byte-identical to the store's current CRL, rewriting it atomically if it is
   * missing, unreadable, older or otherwise different ("the server must notice corruption and rebuild").
   */
  repairFile(): Promise<CrlFileRepair> {
    return this.#repair(this.#paths.rootCrl, this.#crls.currentState());
  }

  /** The same for root_delta_crl.pem ('ok' when no delta was ever issued: there is nothing to publish). */
  async repairDeltaFile(): Promise<CrlFileRepair> {
    const delta = this.#crls.currentDelta();
    return delta === undefined ? 'ok' : this.#repair(this.#paths.deltaCrl, delta);
  }

  /**
   * The published files that prove the store was rolled back: signed by this CA, numbered above the
   * store's CRL of their kind (see the header). Compared with the CRLs as last reloaded: call it under
   * the store's write lock after reload, or another process's newer commit would look like one.
   */
  newerPublished(): NewerCrlFile[] {
    const found: NewerCrlFile[] = [];
    const full = this.#newerThan(this.#paths.rootCrl, this.#crls.currentState().crlNumber);
    if (full !== undefined) found.push(full);
    const delta = this.#newerThan(this.#paths.deltaCrl, this.#crls.currentDelta()?.crlNumber ?? 0);
    if (delta !== undefined) found.push(delta);
    return found;
  }

  #newerThan(path: string, storeCrlNumber: number): NewerCrlFile | undefined {
    let crl: ParsedCrl;
    try {
      crl = parseCrl(readFileSync(path, 'utf8'));
    } catch {
      return undefined; // missing or damaged: no evidence of anything
    }
    const isDelta = crl.baseCrlNumber !== undefined;
    if (isDelta !== (path === this.#paths.deltaCrl)) return undefined;
    if (crl.crlNumber <= BigInt(storeCrlNumber) || !crl.signatureValid(this.#caCert)) return undefined;
    return { path, crl, storeCrlNumber };
  }

  async #repair(path: string, state: { pem: string; crlNumber: number }): Promise<CrlFileRepair> {
    let text: string;
    // Under the store's write lock, from the store's current CRLs: unless the file on disk is newer than
    // them (then the store was rolled back, and the file is kept: see the header).
    const rewrite = (): Promise<'newer' | undefined> =>
      this.#store.transaction(async (tx) => {
        await this.#crls.reload(tx, await this.#store.changeCounter());
        const latest = this.#latest(path);
        // A newer file is left alone, and not looked at again until the store's CRL changes.
        if (this.newerPublished().some((f) => f.path === path)) {
          this.#settle(path, latest.crlNumber);
          return 'newer';
        }
        writeFileAtomic(path, latest.pem, PUBLIC_FILE_MODE);
        this.#settle(path, latest.crlNumber);
        return undefined;
      });
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      await rewrite();
      return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable';
    }
    if (text === state.pem) {
      this.#settle(path, state.crlNumber);
      return 'ok';
    }
    let verdict: CrlFileRepair = 'different';
    try {
      const onDisk = parseCrl(text);
      if (!onDisk.signatureValid(this.#caCert)) verdict = 'unreadable';
      else if (onDisk.crlNumber < BigInt(state.crlNumber)) verdict = 'stale';
    } catch {
      verdict = 'unreadable';
    }
    return (await rewrite()) ?? verdict;
  }

  #latest(path: string): { pem: string; crlNumber: number } {
    if (path === this.#paths.rootCrl) return this.#crls.currentState();
    const delta = this.#crls.currentDelta();
    if (delta === undefined) throw new EnvironmentError('ca_missing', 'the store has no delta CRL');
    return delta;
  }

  #settle(path: string, crlNumber: number): void {
    if (path === this.#paths.rootCrl) this.#settled.full = crlNumber;
    else this.#settled.delta = crlNumber;
  }
}

/**
 * The first CRLs of a new CA (crl-sign.ts issueInitialCrls), stored and written to root_crl.pem /
 * root_delta_crl.pem in one transaction.
 */
export async function publishInitialCrl(deps: {
  store: AsyncStore;
  paths: CaPaths;
  caCert: ParsedCertificate;
  settings: CaSettings;
  sign: SyncSigner;
  now: number;
}): Promise<CrlState> {
  const { store, paths } = deps;
  return store.transaction(async (tx) => {
    const { full, delta } = await issueInitialCrls(tx, deps);
    writeFileAtomic(paths.rootCrl, full.pem, PUBLIC_FILE_MODE);
    writeFileAtomic(paths.deltaCrl, delta.pem, PUBLIC_FILE_MODE);
    return full;
  });
}
