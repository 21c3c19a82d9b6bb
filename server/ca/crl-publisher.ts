// Revocation state and CRL publishing (RFC 5280 section 5; delta CRLs 5.2.4).
//
// One CrlPublisher per process keeps, in memory and in sync with the store:
//   - a CrlBuilder holding every revoked certificate pre-encoded (shared/pki/crl.ts), so a complete CRL
//     is re-signed by concatenating buffers instead of re-encoding it;
//   - a small CrlBuilder for the DELTA CRL (RFC 5280 5.2.4): the entries revoked since the complete CRL
//     it completes (its "base");
//   - Maps serial -> { reason, revokedAt } answering revocationOf() / crlStatusOf() in O(1).
// All are loaded once at open and then updated incrementally: our own revocations directly, other
// processes' by reading revocation rows with an id above the last one seen (ids are monotonic), which
// happens inside every revocation transaction and whenever the store's change counter moved.
//
// Two regimes (the target: "time to revoke one certificate and publish the new CRL at 100,000 entries <
// 250 ms"; a complete CRL of 100k entries is 4.9 MB to hash, sign, armor, store and fsync):
//   - small (fewer than settings.crlSyncFullMax entries, default 10,000): every revocation re-issues the
//     complete CRL inside its transaction, as before, so root_crl.pem always lists everything;
//   - large: a revocation issues only a new delta CRL (entries since the base: its cost does not depend
//     on the total), durably before it is acknowledged. The complete CRL is re-issued OFF the
//     acknowledgement path: when the delta reaches settings.crlDeltaMaxEntries entries, when it is older
//     than settings.crlFullIntervalMs with a non-empty delta, at half its lifetime, and at KDC
//     start/stop if the delta is non-empty (CertificateAuthority.maintainCrl / publishFullCrlIfStale).
// Either way the published pair (root_crl.pem + root_delta_crl.pem) lists every revocation row the
// moment the revoking call returns: the complete CRL plus its delta is the revocation state.
//
// Numbering (RFC 5280 5.2.3): "If a CRL issuer generates delta CRLs in addition to complete CRLs for a
// given scope, the complete CRLs and delta CRLs MUST share one numbering sequence. If a delta CRL and a
// complete CRL that cover the same scope are issued at the same time, they MUST have the same CRL
// number and provide the same revocation information." So every new CRL takes max(complete, delta) + 1,
// under the store's write lock; a complete CRL N is issued together with an (empty) delta N whose base
// is N. The delta's state lives in the store's settings (key `crl.delta`) next to the complete CRL's
// row, committed in the same transaction as the revocation row.
//
// Superseded certificates (a renewal replaced them) are listed too, with reasonCode superseded (RFC
// 5280 5.3.1), so relying parties that only read the CRL refuse them as the KDC does. They are kept
// apart from revocations proper: revocationOf() does not report them and onRevoked listeners are not
// told, because a renewal must not cascade into revoking the holder's keys or ending their sessions.
//
// Why CRLs are signed with the SYNCHRONOUS crypto.sign inside the transaction: "the revocation row and
// the new CRL are committed before the command reports success", in ONE transaction, and several
// processes or nodes (KDCs on one PostgreSQL, the KDC and `kds cert revoke`) may revoke at once. The
// transaction holds the store's write lock (every node's writers wait for it), so it must be short: a
// synchronous signature is one RSA private-key operation (about 1-3 ms for RSA-3072) with no wait on the
// thread pool's queue in between. Under that lock "one row, one CRL entry, CRL numbers strictly
// increasing across every node, the CRLs in the store always listing exactly the revocation rows" is
// true by construction. Certificates (frequent) keep using the callback form, outside any transaction.
//
// Lookups (revocationOf, crlStatusOf, currentState, currentDelta) answer from memory, synchronously: this
// process's own revocations are there before revoke() returns, other processes' and nodes' after the next
// sync() (the KDC calls it before every handshake check, on its timer and when the store notifies a
// revocation).
import { readFileSync } from 'node:fs';
import { EnvironmentError, InputError, StateError } from '../../shared/errors.js';
import { CrlBuilder, parseCrl, type CrlEntry } from '../../shared/pki/crl.js';
import { isReasonName, type ReasonName } from '../../shared/revocation-reasons.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import { PUBLIC_FILE_MODE, writeFileAtomic } from '../../io/fs-atomic.js';
import type { CertificateRecord, CrlState, RevocationRecord } from '../store/store.js';
import type { AsyncStore, AsyncStoreData } from '../store/async-store.js';
import { DAY_MS, deltaCrlUrlOf, type CaPaths, type CaSettings } from '../../io/ca-files.js';
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
  /** Number of the CRL that first lists it (the delta's in the large regime); the current one if already revoked. */
  crlNumber: number;
  /** Which CRL this revocation published: the complete CRL (small regime) or only the delta. */
  published?: 'full' | 'delta';
}

export type RevokedListener = (serialHex: string, name: string, info: RevocationInfo) => void | Promise<void>;

/** The current delta CRL (RFC 5280 5.2.4), kept in the store's settings under DELTA_SETTING. */
export interface DeltaCrlState {
  crlNumber: number;
  /** BaseCRLNumber: the complete CRL it completes. */
  baseCrlNumber: number;
  pem: string;
  thisUpdate: number;
  nextUpdate: number;
  /** Highest revocation id it lists (its entries are the rows above the base's lastRevocationId). */
  lastRevocationId: number;
  entries: number;
}

const DELTA_SETTING = 'crl.delta';

interface PublisherDeps {
  store: AsyncStore;
  paths: CaPaths;
  caCert: ParsedCertificate;
  settings: CaSettings;
}

/** What `open` found about root_crl.pem (or root_delta_crl.pem). */
export type CrlFileRepair = 'ok' | 'missing' | 'unreadable' | 'stale' | 'different';

/** refresh(): 'due' re-issues when a schedule condition holds, 'stale' also whenever the delta is non-empty. */
export type RefreshMode = 'due' | 'stale' | 'force';

/** The store's current CRLs, as of the store's change counter `counter`. */
interface Snapshot {
  full: CrlState;
  delta: DeltaCrlState | undefined;
  counter: number;
}

/** The delta CRL being built on top of the complete CRL `base`. */
interface DeltaBuilder {
  builder: CrlBuilder;
  base: { crlNumber: number; lastRevocationId: number };
}

export class CrlPublisher {
  readonly #store: AsyncStore;
  readonly #paths: CaPaths;
  readonly #caCert: ParsedCertificate;
  readonly #settings: CaSettings;
  #freshestCrlUrl: string;
  readonly #revoked = new Map<string, RevocationInfo>();
  /** Certificates on the CRL with reason superseded (renewals): not revocations for the KDC's purposes. */
  readonly #superseded = new Map<string, RevocationInfo>();
  #builder: CrlBuilder;
  /** The delta's entries: rows above `base.lastRevocationId` of the complete CRL number `base.crlNumber`. */
  #delta: DeltaBuilder | undefined;
  /** The builders hold entries not in the store (a revocation transaction rolled back): rebuild them. */
  #builderDirty = false;
  #lastRevocationId = 0;
  #lastChangeCounter: number;
  /**
   * The current CRLs as this process last read or committed them, with the store's change counter at
   * that moment (bench/revocation.ts: re-reading the row cost ~2 x 90 ms per revocation at 100k
   * entries). Valid while the counter is unchanged (SQLite: it moves only when ANOTHER process commits).
   */
  #snap: Snapshot;
  /** Signed inside the current transaction; becomes `snap` only once that transaction committed. */
  #uncommitted: Snapshot | undefined;
  readonly #listeners: RevokedListener[] = [];
  /** One catch-up, refresh or revocation of this process at a time (they share the builders and maps). */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(deps: PublisherDeps, snap: Snapshot) {
    this.#store = deps.store;
    this.#paths = deps.paths;
    this.#caCert = deps.caCert;
    this.#settings = deps.settings;
    this.#freshestCrlUrl = deltaCrlUrlOf(deps.settings);
    this.#lastChangeCounter = snap.counter;
    this.#snap = snap;
    this.#builder = this.#newBuilder(snap.full);
  }

  /**
   * Name `url` in the Freshest CRL extension of the complete CRLs issued from now on (the KDC's public
   * URL changed). The builders are rebuilt with it at their next use; true when it changed.
   */
  setFreshestCrlUrl(url: string): boolean {
    if (url === this.#freshestCrlUrl) return false;
    this.#freshestCrlUrl = url;
    this.#builderDirty = true;
    return true;
  }

  /** The Freshest CRL URL complete CRLs are issued with. */
  get freshestUrl(): string {
    return this.#freshestCrlUrl;
  }

  /** Load the revocation state of the store (every row once: O(n) at open, O(1) per lookup after). */
  static async load(deps: PublisherDeps): Promise<CrlPublisher> {
    const counter = await deps.store.changeCounter();
    const full = await deps.store.getCrlState();
    if (full === undefined) {
      throw new EnvironmentError(
        'ca_missing',
        'the store has no CRL: the CA was not initialised (kds server init)',
      );
    }
    const delta = await deps.store.getSetting<DeltaCrlState>(DELTA_SETTING);
    const publisher = new CrlPublisher(deps, { full, delta, counter });
    await publisher.#catchUp(deps.store);
    return publisher;
  }

  /** Run `fn` after every catch-up, refresh and revocation this process started before it. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  // -------------------------------------------------------------------------------------------------
  // Lookups (memory only)

  /**
   * O(1). Never stale for revocations this process made; others' are picked up by refresh().
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

  /** Number of revoked certificates known (for status pages and tests); superseded ones not included. */
  get size(): number {
    return this.#revoked.size;
  }

  /** Entries of the complete CRL once it is brought up to date (revocations plus superseded). */
  get crlEntries(): number {
    return this.#builder.size;
  }

  /** The current complete CRL as of the last refresh (or this process's last commit). */
  currentState(): CrlState {
    return this.#snap.full;
  }

  /** The current delta CRL; undefined for a data directory no delta was ever issued in. */
  currentDelta(): DeltaCrlState | undefined {
    return this.#snap.delta;
  }

  onRevoked(listener: RevokedListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Pick up what other processes or nodes committed (revocations, CRLs) when the store's change counter
   * moved, and tell the listeners of the revocations among it. Returns those revocations.
   */
  async sync(): Promise<RevocationRecord[]> {
    const fresh = await this.#exclusive(async () => {
      const counter = await this.#store.changeCounter();
      if (counter === this.#lastChangeCounter) return [];
      const rows = await this.#catchUp(this.#store);
      await this.#reload(this.#store, counter);
      this.#lastChangeCounter = counter;
      return rows;
    });
    await this.#notify(fresh);
    return fresh;
  }

  // -------------------------------------------------------------------------------------------------
  // Revocation

  /**
   * Revoke one certificate: the revocation row, the certificate's status, the next CRL number and the
   * newly signed CRL(s) commit in ONE transaction; then the published file(s) are rewritten atomically;
   * then the listeners run. Only then does this return. Revoking twice changes nothing.
   */
  async revoke(
    by: { serialHex: string } | { name: string },
    reason: ReasonName,
    actor: string,
    sign: SyncSigner,
    now: number = Date.now(),
    beforeWrite?: (tx: AsyncStoreData) => Promise<void>,
  ): Promise<RevokeOutcome> {
    if (!isReasonName(reason) || reason === 'removeFromCRL') {
      throw new InputError(
        'bad_reason',
        `invalid revocation reason ${JSON.stringify(String(reason).slice(0, 40))}`,
      );
    }
    return this.#record(by, reason, actor, sign, now, 'revoke', beforeWrite);
  }

  /**
   * A renewal superseded `serialHex` (its status is already `superseded`): list it on the CRL with
   * reasonCode superseded (RFC 5280 5.3.1), durably, without telling onRevoked listeners (no key
   * cascade, no sessions ended). Idempotent.
   */
  async supersede(
    serialHex: string,
    actor: string,
    sign: SyncSigner,
    now: number = Date.now(),
  ): Promise<void> {
    await this.#record({ serialHex }, 'superseded', actor, sign, now, 'supersede');
  }

  async #record(
    by: { serialHex: string } | { name: string },
    reason: ReasonName,
    actor: string,
    sign: SyncSigner,
    nowMs: number,
    kind: 'revoke' | 'supersede',
    beforeWrite?: (tx: AsyncStoreData) => Promise<void>,
  ): Promise<RevokeOutcome> {
    // CRL times have one-second resolution (RFC 5280 5.1.2.4): record exactly what the CRL will say.
    const now = Math.floor(nowMs / 1000) * 1000;
    let fresh: RevocationRecord[] = [];
    const outcome = await this.#exclusive(async () => {
      let wroteFull = false;
      let result: RevokeOutcome;
      try {
        result = await this.#store.transaction(async (tx) => {
          await beforeWrite?.(tx);
          // Under the write lock: catch up first, so the re-check below and the CRL see every row.
          fresh = await this.#catchUp(tx);
          await this.#reload(tx, await this.#store.changeCounter());
          const cert = await this.#target(tx, by);
          const existing = await tx.getRevocation(cert.serialHex);
          if (existing !== undefined) {
            return {
              status: 'already_revoked' as const,
              serialHex: cert.serialHex,
              name: cert.name,
              reason: existing.reason as ReasonName,
              revokedAt: existing.revokedAt,
              crlNumber: this.#highestCrlNumber(),
            };
          }
          if (kind === 'supersede' && cert.status !== 'superseded') {
            throw new InputError('bad_request', `certificate ${cert.serialHex} was not superseded`, {
              serialHex: cert.serialHex,
            });
          }
          const row = await tx.insertRevocation({ serialHex: cert.serialHex, revokedAt: now, reason });
          if (kind === 'revoke') await tx.setCertificateStatus(cert.serialHex, 'revoked');
          const entry = { serialHex: cert.serialHex, revokedAt: now, reason };
          this.#builder.add(entry);
          this.#addToDelta(row.id, entry);
          this.#lastRevocationId = Math.max(this.#lastRevocationId, row.id);
          let crlNumber: number;
          if (this.#builder.size < this.#settings.crlSyncFullMax) {
            crlNumber = (await this.#signFull(tx, sign, now)).crlNumber;
            wroteFull = true;
          } else {
            crlNumber = (await this.#signDelta(tx, sign, now)).crlNumber;
          }
          await tx.appendAudit({
            at: now,
            actor,
            action: kind === 'revoke' ? 'cert.revoke' : 'cert.supersede',
            subject: cert.name,
            detail: { serialHex: cert.serialHex, reason, crlNumber, published: wroteFull ? 'full' : 'delta' },
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
            published: wroteFull ? ('full' as const) : ('delta' as const),
          };
        });
      } catch (err) {
        // The builders may hold the entry although the transaction rolled back.
        this.#builderDirty = true;
        this.#dropUncommitted();
        throw err;
      }
      this.#promoteCommitted();
      if (result.status === 'revoked') {
        const info = { reason: result.reason, revokedAt: result.revokedAt };
        (kind === 'revoke' ? this.#revoked : this.#superseded).set(result.serialHex, info);
        await this.#writeFiles(wroteFull);
      }
      return result;
    });
    await this.#notify(fresh);
    if (outcome.status === 'revoked' && kind === 'revoke') {
      await this.#notifyOne(outcome.serialHex, outcome.name, {
        reason: outcome.reason,
        revokedAt: outcome.revokedAt,
      });
    }
    return outcome;
  }

  /**
   * Is a complete CRL due by the schedule? (cheap, memory only: for a timer.) True when the delta
   * has reached crlDeltaMaxEntries, or is non-empty and the complete CRL is older than
   * crlFullIntervalMs, or either CRL is past half its lifetime, or a delta was never issued.
   */
  fullCrlDue(now: number = Date.now(), mode: RefreshMode = 'due'): boolean {
    if (mode === 'force') return true;
    const full = this.currentState();
    const delta = this.currentDelta();
    const halfLife = (s: { thisUpdate: number; nextUpdate: number }): boolean =>
      now >= s.thisUpdate + (s.nextUpdate - s.thisUpdate) / 2;
    if (delta === undefined || delta.baseCrlNumber !== full.crlNumber) return true;
    if (halfLife(full) || halfLife(delta)) return true;
    // Revocation rows neither CRL lists (written by an older kds, or straight into the store).
    if (delta.lastRevocationId < this.#lastRevocationId) return true;
    const pending = this.#lastRevocationId > full.lastRevocationId;
    if (!pending) return false;
    if (mode === 'stale' || this.#builder.size < this.#settings.crlSyncFullMax) return true;
    return (
      delta.entries >= this.#settings.crlDeltaMaxEntries ||
      now - full.thisUpdate >= this.#settings.crlFullIntervalMs
    );
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
    if (!this.fullCrlDue(now, m)) return undefined;
    let fresh: RevocationRecord[] = [];
    const state = await this.#exclusive(async () => {
      let signed: CrlState | undefined;
      try {
        signed = await this.#store.transaction(async (tx) => {
          fresh = await this.#catchUp(tx);
          await this.#reload(tx, await this.#store.changeCounter());
          if (!this.fullCrlDue(now, m)) return undefined; // re-checked under the write lock
          return this.#signFull(tx, sign, now);
        });
      } catch (err) {
        this.#dropUncommitted();
        throw err;
      }
      this.#promoteCommitted();
      if (signed !== undefined) await this.#writeFiles(true);
      return signed;
    });
    await this.#notify(fresh);
    return state;
  }

  /**
   * Certificates a renewal superseded that are not on the CRL yet (a crash between the renewal's
   * commit and its CRL, or a data directory from before superseded certificates were listed).
   */
  async listSupersededGaps(): Promise<string[]> {
    return (await this.#store.listCertificates({ status: 'superseded' }))
      .filter((c) => this.crlStatusOf(c.serialHex) === undefined)
      .map((c) => c.serialHex);
  }

  // -------------------------------------------------------------------------------------------------
  // root_crl.pem and root_delta_crl.pem

  /**
   * Make root_crl.pem byte-identical to the store's current CRL, rewriting it atomically if it is
   * missing, unreadable, older or otherwise different ("the server must notice corruption and rebuild").
   */
  repairFile(): Promise<CrlFileRepair> {
    return this.#repair(this.#paths.rootCrl, this.currentState());
  }

  /** The same for root_delta_crl.pem ('ok' when no delta was ever issued: there is nothing to publish). */
  async repairDeltaFile(): Promise<CrlFileRepair> {
    const delta = this.currentDelta();
    return delta === undefined ? 'ok' : this.#repair(this.#paths.deltaCrl, delta);
  }

  async #repair(path: string, state: { pem: string; crlNumber: number }): Promise<CrlFileRepair> {
    let text: string;
    const rewrite = (): Promise<void> =>
      this.#store.transaction(async (tx) => {
        await this.#reload(tx, await this.#store.changeCounter());
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
    if (path === this.#paths.rootCrl) return this.currentState().pem;
    const delta = this.currentDelta();
    if (delta === undefined) throw new EnvironmentError('ca_missing', 'the store has no delta CRL');
    return delta.pem;
  }

  /**
   * Write the store's CURRENT CRLs while holding the store's write lock: every writer does the same, so
   * the files follow commit order and never go back to an older CRL even when two processes revoke at
   * the same moment. The delta is written every time; the complete CRL only when it was re-issued.
   */
  async #writeFiles(full: boolean): Promise<void> {
    await this.#store.transaction(async (tx) => {
      await this.#reload(tx, await this.#store.changeCounter());
      if (full) writeFileAtomic(this.#paths.rootCrl, this.currentState().pem, PUBLIC_FILE_MODE);
      const delta = this.currentDelta();
      if (delta !== undefined) writeFileAtomic(this.#paths.deltaCrl, delta.pem, PUBLIC_FILE_MODE);
    });
  }

  // -------------------------------------------------------------------------------------------------
  // internals

  /** Re-read the current CRLs from `db` when the store's change counter is no longer `counter`'s. */
  async #reload(db: AsyncStoreData, counter: number): Promise<void> {
    if (this.#snap.counter === counter) return;
    const full = await db.getCrlState();
    if (full === undefined) throw new EnvironmentError('ca_missing', 'the store has no CRL');
    const delta = await db.getSetting<DeltaCrlState>(DELTA_SETTING);
    this.#snap = { full, delta, counter };
  }

  async #target(
    db: AsyncStoreData,
    by: { serialHex: string } | { name: string },
  ): Promise<CertificateRecord> {
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

  /** The highest number of the one sequence complete and delta CRLs share (RFC 5280 5.2.3). */
  #highestCrlNumber(): number {
    const full = this.#uncommitted?.full ?? this.currentState();
    const delta = this.#uncommitted?.delta ?? this.currentDelta();
    return Math.max(full.crlNumber, delta?.crlNumber ?? 0);
  }

  /**
   * Sign complete CRL number N = max(complete, delta) + 1 over every revocation row, and the delta CRL
   * issued with it: the same number N, base N, no entries ("If a delta CRL and a complete CRL that cover
   * the same scope are issued at the same time, they MUST have the same CRL number and provide the same
   * revocation information", RFC 5280 5.2.3). Both stored as current. Inside a transaction, after
   * catchUp and reload.
   */
  async #signFull(tx: AsyncStoreData, sign: SyncSigner, now: number): Promise<CrlState> {
    const current = this.currentState();
    // RFC 5280 5.2.3: "CRL issuers conforming to this profile MUST include this extension in all CRLs"
    // and the number is "monotonically increasing": strictly above every number issued, under the lock.
    const crlNumber = this.#highestCrlNumber() + 1;
    // thisUpdate never goes backwards, even if this process's clock is behind the previous signer's.
    const thisUpdate = Math.max(now, current.thisUpdate);
    const nextUpdate = thisUpdate + this.#settings.crlValidityDays * DAY_MS;
    const pem = this.#builder.buildSync(sign, { crlNumber, thisUpdate, nextUpdate });
    const state: CrlState = {
      crlNumber,
      pem,
      thisUpdate,
      nextUpdate,
      lastRevocationId: this.#lastRevocationId,
    };
    await tx.saveCrlState(state);
    // Until the transaction commits, nothing may serve this state from memory. The counter: on SQLite
    // our own commits never move it and no other process can commit under the lock, so the one read now
    // holds right after our commit; on PostgreSQL the commit moves it, and the next look re-reads.
    this.#uncommitted = { full: state, delta: this.currentDelta(), counter: this.#snap.counter };
    this.#delta = {
      builder: this.#newBuilder(state, crlNumber),
      base: { crlNumber, lastRevocationId: state.lastRevocationId },
    };
    await this.#signDelta(tx, sign, thisUpdate, crlNumber);
    return state;
  }

  /**
   * Sign the delta CRL over the rows since the current complete CRL (its base), numbered `crlNumber`
   * (default: the next in the shared sequence), and store it as current. Inside a transaction.
   */
  async #signDelta(
    tx: AsyncStoreData,
    sign: SyncSigner,
    now: number,
    crlNumber = this.#highestCrlNumber() + 1,
  ): Promise<DeltaCrlState> {
    const base = this.#uncommitted?.full ?? this.currentState();
    const delta = await this.#deltaFor(tx, base);
    const previous = this.currentDelta();
    const thisUpdate = Math.max(now, base.thisUpdate, previous?.thisUpdate ?? 0);
    const nextUpdate = thisUpdate + this.#settings.crlValidityDays * DAY_MS;
    const pem = delta.builder.buildSync(sign, { crlNumber, thisUpdate, nextUpdate });
    const state: DeltaCrlState = {
      crlNumber,
      baseCrlNumber: base.crlNumber,
      pem,
      thisUpdate,
      nextUpdate,
      lastRevocationId: this.#lastRevocationId,
      entries: delta.builder.size,
    };
    await tx.setSetting(DELTA_SETTING, state);
    this.#uncommitted = { full: base, delta: state, counter: this.#snap.counter };
    return state;
  }

  /** The delta builder for `base` (rebuilt from the rows above its lastRevocationId if it moved). */
  async #deltaFor(db: AsyncStoreData, base: CrlState): Promise<DeltaBuilder> {
    const d = this.#delta;
    if (
      d !== undefined &&
      d.base.crlNumber === base.crlNumber &&
      d.base.lastRevocationId === base.lastRevocationId
    )
      return d;
    const builder = this.#newBuilder(base, base.crlNumber);
    for (const row of await db.listRevocations(base.lastRevocationId)) {
      builder.add({ serialHex: row.serialHex, revokedAt: row.revokedAt, reason: row.reason as ReasonName });
    }
    this.#delta = { builder, base: { crlNumber: base.crlNumber, lastRevocationId: base.lastRevocationId } };
    return this.#delta;
  }

  #addToDelta(id: number, entry: CrlEntry): void {
    if (this.#delta !== undefined && id > this.#delta.base.lastRevocationId) this.#delta.builder.add(entry);
  }

  #promoteCommitted(): void {
    if (this.#uncommitted !== undefined) this.#snap = this.#uncommitted;
    this.#uncommitted = undefined;
  }

  #dropUncommitted(): void {
    if (this.#uncommitted !== undefined) {
      // The delta builder may have been re-based on a complete CRL that never committed.
      this.#delta = undefined;
    }
    this.#uncommitted = undefined;
    // A read inside the rolled-back transaction may have loaded what it wrote: read again next time.
    this.#snap = { ...this.#snap, counter: Number.NaN };
  }

  /**
   * Read revocation rows newer than the last seen one into the maps and the builders; returns the
   * revocations (not the superseded entries) this process did not know. The maps only ever receive
   * committed rows, so they are never wrong; the builders are rebuilt from every row after a
   * rolled-back revocation may have left an extra entry in them.
   */
  async #catchUp(db: AsyncStoreData): Promise<RevocationRecord[]> {
    if (this.#builderDirty) {
      const full = await db.getCrlState();
      if (full === undefined) throw new EnvironmentError('ca_missing', 'the store has no CRL');
      this.#builder = this.#newBuilder(full);
      this.#delta = undefined;
      this.#builderDirty = false;
      this.#lastRevocationId = 0;
    }
    const rows = await db.listRevocations(this.#lastRevocationId);
    const fresh: RevocationRecord[] = [];
    for (const row of rows) {
      const reason = row.reason as ReasonName;
      const info = { reason, revokedAt: row.revokedAt };
      // A renewal's entry (reason superseded, certificate status superseded) is no revocation for the
      // KDC; an operator's revocation with reason superseded (status revoked) is one. Renewals are rare,
      // so looking the certificate up for those rows only keeps catching up O(new rows).
      if (reason === 'superseded' && (await db.getCertificate(row.serialHex))?.status === 'superseded') {
        this.#superseded.set(row.serialHex, info);
      } else if (!this.#revoked.has(row.serialHex)) {
        fresh.push(row);
        this.#revoked.set(row.serialHex, info);
      }
      const entry = { serialHex: row.serialHex, revokedAt: row.revokedAt, reason };
      this.#builder.add(entry);
      this.#addToDelta(row.id, entry);
      this.#lastRevocationId = row.id;
    }
    return fresh;
  }

  #newBuilder(state: CrlState, deltaBase?: number): CrlBuilder {
    return new CrlBuilder({
      issuerCertPem: this.#caCert.pem,
      crlNumber: state.crlNumber,
      thisUpdate: state.thisUpdate,
      nextUpdate: state.nextUpdate,
      ...(deltaBase === undefined ? { freshestCrlUrl: this.#freshestCrlUrl } : { deltaBase }),
    });
  }

  async #notify(rows: RevocationRecord[]): Promise<void> {
    for (const row of rows) {
      const name = (await this.#store.getCertificate(row.serialHex))?.name ?? '';
      await this.#notifyOne(row.serialHex, name, {
        reason: row.reason as ReasonName,
        revokedAt: row.revokedAt,
      });
    }
  }

  async #notifyOne(serialHex: string, name: string, info: RevocationInfo): Promise<void> {
    // A failing listener must not turn a committed revocation into an error for the caller.
    await Promise.allSettled(this.#listeners.map(async (l) => l(serialHex, name, info)));
  }
}

/** The store channel a revocation is announced on (payload: the serial), to every node. */
export const REVOKED_CHANNEL = 'revoked';

/**
 * The first CRLs of a new CA: complete CRL number 1 (no entries) and, issued with it, delta CRL number 1
 * (base 1, no entries); stored and written to root_crl.pem / root_delta_crl.pem. RFC 5280 5.1.2.6:
 * "When there are no revoked certificates, the revoked certificates list MUST be absent."
 */
export async function publishInitialCrl(
  deps: PublisherDeps & { sign: SyncSigner; now: number },
): Promise<CrlState> {
  const { store, paths, caCert, settings, sign } = deps;
  const now = Math.floor(deps.now / 1000) * 1000;
  const thisUpdate = now;
  const nextUpdate = now + settings.crlValidityDays * DAY_MS;
  const spec = { issuerCertPem: caCert.pem, crlNumber: 1, thisUpdate, nextUpdate };
  const builder = new CrlBuilder({ ...spec, freshestCrlUrl: deltaCrlUrlOf(settings) });
  const state: CrlState = {
    crlNumber: 1,
    pem: builder.buildSync(sign),
    thisUpdate,
    nextUpdate,
    lastRevocationId: 0,
  };
  const delta: DeltaCrlState = {
    crlNumber: 1,
    baseCrlNumber: 1,
    pem: new CrlBuilder({ ...spec, deltaBase: 1 }).buildSync(sign),
    thisUpdate,
    nextUpdate,
    lastRevocationId: 0,
    entries: 0,
  };
  await store.transaction(async (tx) => {
    await tx.saveCrlState(state);
    await tx.setSetting(DELTA_SETTING, delta);
    writeFileAtomic(paths.rootCrl, state.pem, PUBLIC_FILE_MODE);
    writeFileAtomic(paths.deltaCrl, delta.pem, PUBLIC_FILE_MODE);
  });
  return state;
}
