// Revocation state and CRL publishing (issue 2 part 5; RFC 5280 section 5).
//
// One CrlPublisher per process keeps, in memory and in sync with the store:
//   - a CrlBuilder holding every revoked certificate pre-encoded (shared/pki/crl.ts), so a revocation
//     re-signs a 100k-entry CRL by concatenating buffers instead of re-encoding it;
//   - a Map serial -> { reason, revokedAt } answering revocationOf() in O(1).
// Both are loaded once at open and then updated incrementally: our own revocations directly, other
// processes' by reading revocation rows with an id above the last one seen (ids are monotonic), which
// happens inside every revocation transaction and whenever the store's change counter moved.
//
// Why the CRL is signed with the SYNCHRONOUS crypto.sign inside the transaction: "the revocation row and
// the new CRL are committed before the command reports success", in ONE transaction, and several
// processes (the KDC and `kds cert revoke`) may revoke at once. better-sqlite3 transactions are
// synchronous, so an await inside one is impossible; holding a manual BEGIN across an await would let
// every other store call of this process slip into our transaction. Signing synchronously under the
// write lock is what makes "one row, one CRL entry, CRL numbers strictly increasing, the CRL in the
// store always listing exactly the revocation rows" true by construction. The cost is one RSA private-key
// operation (about 1-3 ms for RSA-3072) on the event loop per revocation: revocations are rare, and
// certificates (frequent) keep using the callback form.
import { readFileSync } from 'node:fs';
import { EnvironmentError, InputError, StateError } from '../../shared/errors.js';
import { CrlBuilder, parseCrl, type CrlEntry } from '../../shared/pki/crl.js';
import { isReasonName, type ReasonName } from '../../shared/pki/reasons.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import { PUBLIC_FILE_MODE, writeFileAtomic } from '../fs-atomic.js';
import type { CertificateRecord, CrlState, RevocationRecord, Store } from '../store/store.js';
import { DAY_MS, type CaPaths, type CaSettings } from './files.js';
import type { SyncSigner } from './signer.js';

export interface RevocationInfo {
  reason: ReasonName;
  revokedAt: number;
}

export interface RevokeOutcome {
  status: 'revoked' | 'already_revoked';
  serialHex: string;
  name: string;
  reason: ReasonName;
  revokedAt: number;
  crlNumber: number;
}

export type RevokedListener = (serialHex: string, name: string, info: RevocationInfo) => void | Promise<void>;

interface PublisherDeps {
  store: Store;
  paths: CaPaths;
  caCert: ParsedCertificate;
  settings: CaSettings;
}

/** What `open` found about root_crl.pem. */
export type CrlFileRepair = 'ok' | 'missing' | 'unreadable' | 'stale' | 'different';

export class CrlPublisher {
  private readonly store: Store;
  private readonly paths: CaPaths;
  private readonly caCert: ParsedCertificate;
  private readonly settings: CaSettings;
  private readonly revoked = new Map<string, RevocationInfo>();
  private builder: CrlBuilder;
  /** The builder holds entries not in the store (a revocation transaction rolled back): rebuild it. */
  private builderDirty = false;
  private lastRevocationId = 0;
  private lastChangeCounter: number;
  /**
   * The current CRL as this process last read or committed it, with the store's change counter at that
   * moment (bench/revocation.ts: re-reading the row cost ~2 x 90 ms per revocation at 100k entries).
   * Valid while the counter is unchanged: it moves only when ANOTHER process commits.
   */
  private cached: { state: CrlState; counter: number } | undefined;
  /** Signed inside the current transaction; becomes `cached` only once that transaction committed. */
  private uncommitted: { state: CrlState; counter: number } | undefined;
  private readonly listeners: RevokedListener[] = [];

  private constructor(deps: PublisherDeps, state: CrlState) {
    this.store = deps.store;
    this.paths = deps.paths;
    this.caCert = deps.caCert;
    this.settings = deps.settings;
    this.lastChangeCounter = this.store.changeCounter();
    this.builder = this.newBuilder(state);
    this.catchUp();
  }

  /** Load the revocation state of the store (every row once: O(n) at open, O(1) per lookup after). */
  static load(deps: PublisherDeps): CrlPublisher {
    const state = deps.store.getCrlState();
    if (state === undefined) {
      throw new EnvironmentError(
        'ca_missing',
        'the store has no CRL: the CA was not initialised (kds server init)',
      );
    }
    return new CrlPublisher(deps, state);
  }

  // -------------------------------------------------------------------------------------------------
  // Lookups

  /** O(1). Never stale for revocations this process made; others' are picked up via the change counter. */
  revocationOf(serialHex: string): RevocationInfo | undefined {
    this.refreshIfChanged();
    return this.revoked.get(serialHex.toLowerCase());
  }

  /** Number of revoked certificates known (for status pages and tests). */
  get size(): number {
    return this.revoked.size;
  }

  currentState(): CrlState {
    // The CRL row of a 100k-entry CA is ~6.6 MB of PEM: read it from the store only when another
    // process may have replaced it (the store's change counter moved) or this process has not seen it.
    const counter = this.store.changeCounter();
    if (this.cached !== undefined && this.cached.counter === counter) return this.cached.state;
    const state = this.store.getCrlState();
    if (state === undefined) throw new EnvironmentError('ca_missing', 'the store has no CRL');
    this.cached = { state, counter };
    return state;
  }

  onRevoked(listener: RevokedListener): void {
    this.listeners.push(listener);
  }

  /**
   * Pick up revocations committed by other processes now (the KDC can call this on a timer so that
   * `kds cert revoke` run from a shell ends live sessions promptly). Notifies listeners.
   */
  async sync(): Promise<RevocationRecord[]> {
    this.lastChangeCounter = this.store.changeCounter();
    const fresh = this.catchUp();
    await this.notify(fresh);
    return fresh;
  }

  // -------------------------------------------------------------------------------------------------
  // Revocation

  /**
   * Revoke one certificate: the revocation row, the certificate's status, the next CRL number and the
   * newly signed CRL commit in ONE transaction; then root_crl.pem is rewritten atomically; then the
   * listeners run. Only then does this return. Revoking twice changes nothing.
   */
  async revoke(
    by: { serialHex: string } | { name: string },
    reason: ReasonName,
    actor: string,
    sign: SyncSigner,
    now: number = Date.now(),
  ): Promise<RevokeOutcome> {
    if (!isReasonName(reason) || reason === 'removeFromCRL') {
      throw new InputError(
        'bad_reason',
        `invalid revocation reason ${JSON.stringify(String(reason).slice(0, 40))}`,
      );
    }
    // CRL times have one-second resolution (RFC 5280 5.1.2.4): record exactly what the CRL will say.
    now = Math.floor(now / 1000) * 1000;
    let fresh: RevocationRecord[] = [];
    let outcome: RevokeOutcome;
    try {
      outcome = this.store.transaction(() => {
        // Under the write lock: catch up first, so the re-check below and the CRL see every row.
        fresh = this.catchUp();
        const cert = this.target(by);
        const existing = this.store.getRevocation(cert.serialHex);
        if (existing !== undefined) {
          return {
            status: 'already_revoked' as const,
            serialHex: cert.serialHex,
            name: cert.name,
            reason: existing.reason as ReasonName,
            revokedAt: existing.revokedAt,
            crlNumber: this.currentState().crlNumber,
          };
        }
        const row = this.store.insertRevocation({ serialHex: cert.serialHex, revokedAt: now, reason });
        this.store.setCertificateStatus(cert.serialHex, 'revoked');
        const state = this.signNext(sign, now, { serialHex: cert.serialHex, revokedAt: now, reason }, row.id);
        this.store.appendAudit({
          at: now,
          actor,
          action: 'cert.revoke',
          subject: cert.name,
          detail: { serialHex: cert.serialHex, reason, crlNumber: state.crlNumber },
        });
        return {
          status: 'revoked' as const,
          serialHex: cert.serialHex,
          name: cert.name,
          reason,
          revokedAt: now,
          crlNumber: state.crlNumber,
        };
      });
    } catch (err) {
      // signNext may have added the entry to the builder before the rollback.
      this.builderDirty = true;
      this.uncommitted = undefined;
      throw err;
    }
    this.promoteCommitted();
    if (outcome.status === 'revoked') {
      this.revoked.set(outcome.serialHex, { reason: outcome.reason, revokedAt: outcome.revokedAt });
    }
    this.writeFile();
    await this.notify(fresh);
    if (outcome.status === 'revoked') {
      await this.notifyOne(outcome.serialHex, outcome.name, {
        reason: outcome.reason,
        revokedAt: outcome.revokedAt,
      });
    }
    return outcome;
  }

  /**
   * Issue a new CRL with the same entries and a fresh thisUpdate/nextUpdate when the current one is past
   * half its lifetime (or always with force). RFC 5280 5.1.2.5: nextUpdate is "the date by which the
   * next CRL will be issued"; relying parties refuse an expired CRL, so a KDC must re-sign in time.
   */
  refresh(sign: SyncSigner, now: number = Date.now(), force = false): CrlState | undefined {
    now = Math.floor(now / 1000) * 1000;
    let state: CrlState | undefined;
    try {
      state = this.store.transaction(() => {
        this.catchUp();
        const current = this.currentState();
        const due = now >= current.thisUpdate + (current.nextUpdate - current.thisUpdate) / 2;
        if (!force && !due && current.lastRevocationId >= this.lastRevocationId) return undefined;
        return this.signNext(sign, now, undefined, this.lastRevocationId);
      });
    } catch (err) {
      this.uncommitted = undefined;
      throw err;
    }
    this.promoteCommitted();
    if (state !== undefined) this.writeFile();
    return state;
  }

  // -------------------------------------------------------------------------------------------------
  // root_crl.pem

  /**
   * Make root_crl.pem byte-identical to the store's current CRL, rewriting it atomically if it is
   * missing, unreadable, older or otherwise different ("the server must notice corruption and rebuild").
   */
  repairFile(): CrlFileRepair {
    const state = this.currentState();
    let text: string;
    try {
      text = readFileSync(this.paths.rootCrl, 'utf8');
    } catch (err) {
      this.writeFile();
      return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable';
    }
    if (text === state.pem) return 'ok';
    let verdict: CrlFileRepair = 'different';
    try {
      const onDisk = parseCrl(text);
      if (!onDisk.signatureValid(this.caCert)) verdict = 'unreadable';
      else if (onDisk.crlNumber < BigInt(state.crlNumber)) verdict = 'stale';
    } catch {
      verdict = 'unreadable';
    }
    this.writeFile();
    return verdict;
  }

  /**
   * Write the store's CURRENT CRL to root_crl.pem while holding the store's write lock: every writer
   * does the same, so the file follows commit order and never goes back to an older CRL even when two
   * processes revoke at the same moment.
   */
  private writeFile(): void {
    this.store.transaction(() => {
      writeFileAtomic(this.paths.rootCrl, this.currentState().pem, PUBLIC_FILE_MODE);
    });
  }

  // -------------------------------------------------------------------------------------------------
  // internals

  private target(by: { serialHex: string } | { name: string }): CertificateRecord {
    let cert: CertificateRecord | undefined;
    if ('serialHex' in by) {
      cert = this.store.getCertificate(by.serialHex);
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
      cert = this.store.activeCertificate(by.name) ?? this.store.latestCertificate(by.name);
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

  /** Sign CRL number N+1 over every revocation (plus `add`), store it as current. Inside a transaction. */
  private signNext(
    sign: SyncSigner,
    now: number,
    add: CrlEntry | undefined,
    lastRevocationId: number,
  ): CrlState {
    const current = this.currentState();
    if (add !== undefined) this.builder.add(add);
    // RFC 5280 5.2.3: "CRL issuers conforming to this profile MUST include this extension in all CRLs"
    // and the number is "monotonically increasing": strictly the stored number plus one, under the lock.
    const crlNumber = current.crlNumber + 1;
    // thisUpdate never goes backwards, even if this process's clock is behind the previous signer's.
    const thisUpdate = Math.max(now, current.thisUpdate);
    const nextUpdate = thisUpdate + this.settings.crlValidityDays * DAY_MS;
    const pem = this.builder.buildSync(sign, { crlNumber, thisUpdate, nextUpdate });
    const state: CrlState = { crlNumber, pem, thisUpdate, nextUpdate, lastRevocationId };
    // Until the transaction commits, nothing may serve this state from memory.
    this.cached = undefined;
    this.store.saveCrlState(state);
    // Under the write lock no other process can commit, so the counter read now is the one that holds
    // right after our commit (our own commits never move it).
    this.uncommitted = { state, counter: this.store.changeCounter() };
    if (add !== undefined) this.lastRevocationId = Math.max(this.lastRevocationId, lastRevocationId);
    return state;
  }

  private promoteCommitted(): void {
    if (this.uncommitted !== undefined) this.cached = this.uncommitted;
    this.uncommitted = undefined;
  }

  private refreshIfChanged(): void {
    const counter = this.store.changeCounter();
    if (counter === this.lastChangeCounter) return;
    this.lastChangeCounter = counter;
    const fresh = this.catchUp();
    // Listeners are told asynchronously: a lookup must stay synchronous and O(1).
    if (fresh.length > 0) void this.notify(fresh);
  }

  /**
   * Read revocation rows newer than the last seen one into the map and the builder; returns the ones
   * this process did not know. The map only ever receives committed rows, so it is never wrong; the
   * builder is rebuilt from every row after a rolled-back revocation may have left an extra entry in it.
   */
  private catchUp(): RevocationRecord[] {
    const rebuild = this.builderDirty;
    if (rebuild) {
      this.builder = this.newBuilder(this.currentState());
      this.builderDirty = false;
      this.lastRevocationId = 0;
    }
    const rows = this.store.listRevocations(this.lastRevocationId);
    const fresh: RevocationRecord[] = [];
    for (const row of rows) {
      const reason = row.reason as ReasonName;
      if (!this.revoked.has(row.serialHex)) {
        fresh.push(row);
        this.revoked.set(row.serialHex, { reason, revokedAt: row.revokedAt });
      }
      this.builder.add({ serialHex: row.serialHex, revokedAt: row.revokedAt, reason });
      this.lastRevocationId = row.id;
    }
    return fresh;
  }

  private newBuilder(state: CrlState): CrlBuilder {
    return new CrlBuilder({
      issuerCertPem: this.caCert.pem,
      crlNumber: state.crlNumber,
      thisUpdate: state.thisUpdate,
      nextUpdate: state.nextUpdate,
    });
  }

  private async notify(rows: RevocationRecord[]): Promise<void> {
    for (const row of rows) {
      const name = this.store.getCertificate(row.serialHex)?.name ?? '';
      await this.notifyOne(row.serialHex, name, {
        reason: row.reason as ReasonName,
        revokedAt: row.revokedAt,
      });
    }
  }

  private async notifyOne(serialHex: string, name: string, info: RevocationInfo): Promise<void> {
    // A failing listener must not turn a committed revocation into an error for the caller.
    await Promise.allSettled(this.listeners.map(async (l) => l(serialHex, name, info)));
  }
}

/**
 * The first CRL of a new CA (number 1, no entries), stored and written to root_crl.pem. RFC 5280
 * 5.1.2.6: "When there are no revoked certificates, the revoked certificates list MUST be absent."
 */
export function publishInitialCrl(deps: PublisherDeps & { sign: SyncSigner; now: number }): CrlState {
  const { store, paths, caCert, settings, sign } = deps;
  const now = Math.floor(deps.now / 1000) * 1000;
  const thisUpdate = now;
  const nextUpdate = now + settings.crlValidityDays * DAY_MS;
  const builder = new CrlBuilder({ issuerCertPem: caCert.pem, crlNumber: 1, thisUpdate, nextUpdate });
  const state: CrlState = {
    crlNumber: 1,
    pem: builder.buildSync(sign),
    thisUpdate,
    nextUpdate,
    lastRevocationId: 0,
  };
  store.transaction(() => {
    store.saveCrlState(state);
    writeFileAtomic(paths.rootCrl, state.pem, PUBLIC_FILE_MODE);
  });
  return state;
}
