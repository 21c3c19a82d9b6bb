// The published CRL files of a data directory, root_crl.pem and root_delta_crl.pem: written after every
// commit that signed a CRL, checked and repaired at open, and written first by `kds server init`.
//
// The store is the source of truth (server/ca/crl-sign.ts signs into it); the files are copies that
// relying parties read. They are always written while holding the store's write lock, from what the
// store holds at that moment, so they follow commit order even when several processes revoke at once.
import { readFileSync } from 'node:fs';
import { EnvironmentError } from '../../shared/errors.js';
import { parseCrl } from '../../shared/pki/crl.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import { PUBLIC_FILE_MODE, writeFileAtomic } from '../../io/fs-atomic.js';
import type { CrlState } from '../store/store.js';
import type { AsyncStore } from '../store/async-store.js';
import type { CaPaths, CaSettings } from '../../io/ca-files.js';
import { issueInitialCrls, type CrlSigner } from './crl-sign.js';
import type { SyncSigner } from './signer.js';

/** What `open` found about root_crl.pem (or root_delta_crl.pem). */
export type CrlFileRepair = 'ok' | 'missing' | 'unreadable' | 'stale' | 'different';

export class CrlFiles {
  readonly #store: AsyncStore;
  readonly #paths: CaPaths;
  readonly #caCert: ParsedCertificate;
  readonly #crls: CrlSigner;

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
      if (full) writeFileAtomic(this.#paths.rootCrl, this.#crls.currentState().pem, PUBLIC_FILE_MODE);
      const delta = this.#crls.currentDelta();
      if (delta !== undefined) writeFileAtomic(this.#paths.deltaCrl, delta.pem, PUBLIC_FILE_MODE);
    });
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

  async #repair(path: string, state: { pem: string; crlNumber: number }): Promise<CrlFileRepair> {
    let text: string;
    const rewrite = (): Promise<void> =>
      this.#store.transaction(async (tx) => {
        await this.#crls.reload(tx, await this.#store.changeCounter());
        writeFileAtomic(path, this.#latestPem(path), PUBLIC_FILE_MODE);
      });
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      await rewrite();
      return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable';
    }
    if (text === state.pem) return 'ok';
    let verdict: CrlFileRepair = 'different';
    try {
      const onDisk = parseCrl(text);
      if (!onDisk.signatureValid(this.#caCert)) verdict = 'unreadable';
      else if (onDisk.crlNumber < BigInt(state.crlNumber)) verdict = 'stale';
    } catch {
      verdict = 'unreadable';
    }
    await rewrite();
    return verdict;
  }

  #latestPem(path: string): string {
    if (path === this.#paths.rootCrl) return this.#crls.currentState().pem;
    const delta = this.#crls.currentDelta();
    if (delta === undefined) throw new EnvironmentError('ca_missing', 'the store has no delta CRL');
    return delta.pem;
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
