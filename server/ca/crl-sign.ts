// CRL signing: the complete CRL and the delta CRL (RFC 5280 section 5; delta CRLs 5.2.4), their numbers
// and their schedule.
//
// One CrlSigner per process keeps, in memory and in sync with the store:
//   - a CrlBuilder holding every revoked certificate pre-encoded (shared/pki/crl.ts), so a complete CRL
//     is re-signed by concatenating buffers instead of re-encoding it;
//   - a small CrlBuilder for the DELTA CRL (RFC 5280 5.2.4): the entries revoked since the complete CRL
//     it completes (its "base");
//   - the current complete and delta CRLs as last read or committed (currentState, currentDelta).
// The builders are loaded once and then fed every revocation row in id order: other processes' through
// add() after the revocation index read them, this process's own inside its revocation transaction.
//
// Two regimes (the target: "time to revoke one certificate and publish the new CRL at 100,000 entries <
// 250 ms"; a complete CRL of 100k entries is 4.9 MB to hash, sign, armor, store and fsync):
//   - small (fewer than settings.crlSyncFullMax entries, default 10,000): every revocation re-issues the
//     complete CRL inside its transaction, so root_crl.pem always lists everything;
//   - large: a revocation issues only a new delta CRL (entries since the base: its cost does not depend
//     on the total), durably before it is acknowledged. The complete CRL is re-issued OFF the
//     acknowledgement path: when the delta reaches settings.crlDeltaMaxEntries entries, when it is older
//     than settings.crlFullIntervalMs with a non-empty delta, at half its lifetime, and at KDC
//     start/stop if the delta is non-empty (CertificateAuthority.maintainCrl / publishFullCrlIfStale).
// Either way the published pair (root_crl.pem + root_delta_crl.pem) lists every revocation row the
// moment the revoking call returns: the complete CRL plus its delta is the revocation state.
//
// Expired certificates leave the complete CRL (RFC 5280 3.3: "An entry MUST NOT be removed from the CRL
// until it appears on one regularly scheduled CRL issued beyond the revoked certificate's validity
// period."). Renewals supersede (and list) certificates all the time, so without this the complete CRL
// would grow with every renewal ever made. The rule, against the complete CRL currently published (the
// last one issued): an entry whose certificate's notAfter is before that CRL's thisUpdate, and which
// that CRL lists (row id <= its lastRevocationId), is left out of every later complete CRL. The
// validity period includes notAfter (RFC 5280 4.1.2.5), hence "before". thisUpdate only grows, so an
// entry once left out stays out, and every process and node derives the same list from the store. The
// delta CRL is unaffected: it lists only rows above its base's lastRevocationId, which the rule never
// drops. A relying party holding an older complete CRL keeps the entry; the certificate has expired
// either way (RFC 5280 6.1.3 (a)(2)). The KDC's own checks (revocation-index.ts) keep every row.
//
// Entries without a revocation row: after the store was restored from an older backup, the revocations
// the CA had published since (crl-rollback.ts) whose certificate the store has no row of are kept in the
// setting `crl.recovered` and listed on every complete CRL.
//
// Numbering (RFC 5280 5.2.3): "If a CRL issuer generates delta CRLs in addition to complete CRLs for a
// given scope, the complete CRLs and delta CRLs MUST share one numbering sequence. If a delta CRL and a
// complete CRL that cover the same scope are issued at the same time, they MUST have the same CRL
// number and provide the same revocation information." So every new CRL takes max(complete, delta) + 1,
// under the store's write lock; a complete CRL N is issued together with an (empty) delta N whose base
// is N. The delta's state lives in the store's settings (key `crl.delta`) next to the complete CRL's
// row, committed in the same transaction as the revocation row.
//
// Why CRLs are signed with the SYNCHRONOUS crypto.sign inside the transaction: "the revocation row and
// the new CRL are committed before the command reports success", in ONE transaction, and several
// processes or nodes (KDCs on one PostgreSQL, the KDC and `kds cert revoke`) may revoke at once. The
// transaction holds the store's write lock (every node's writers wait for it), so it must be short: a
// synchronous signature is one RSA private-key operation (about 1-3 ms for RSA-3072) with no wait on the
// thread pool's queue in between. Under that lock "one row, one CRL entry, CRL numbers strictly
// increasing across every node, the CRLs in the store always listing exactly the revocation rows" is
// true by construction. Certificates (frequent) keep using the callback form, outside any transaction.
import { EnvironmentError } from '../../shared/errors.js';
import { CrlBuilder, type CrlEntry } from '../../shared/pki/crl.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import type { CrlState, ListedRevocation } from '../store/store.js';
import type { AsyncStore, AsyncStoreData } from '../store/async-store.js';
import { DAY_MS, deltaCrlUrlOf, type CaSettings } from '../../io/ca-files.js';
import { rowReason } from './revocation-index.js';
import type { SyncSigner } from './signer.js';

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
  /**
   * How many entries RECOVERED_SETTING held when it was signed (absent: none). Read with the delta at
   * every reload, so a process that loaded before a rollback recovery learns of them under the lock.
   */
  recoveredEntries?: number;
}

const DELTA_SETTING = 'crl.delta';
/**
 * Revocations recovered from a newer published CRL for certificates the store has no row of (issued
 * after the backup the store was restored from; crl-rollback.ts): the revocations table cannot hold
 * them (its serial references certificates), so they are kept here and listed on every complete CRL.
 */
const RECOVERED_SETTING = 'crl.recovered';

/** fullCrlDue(): 'due' when a schedule condition holds, 'stale' also whenever the delta is non-empty. */
export type RefreshMode = 'due' | 'stale' | 'force';

/** The store's current CRLs, as of the store's change counter `counter`. */
interface Snapshot {
  full: CrlState;
  delta: DeltaCrlState | undefined;
  counter: number;
}

/** An entry of the complete CRL with what decides when it leaves it (see the header). */
interface HeldEntry {
  id: number;
  certNotAfter: number | null;
  entry: CrlEntry;
}

/** The delta CRL being built on top of the complete CRL `base`. */
interface DeltaBuilder {
  builder: CrlBuilder;
  base: { crlNumber: number; lastRevocationId: number };
}

export class CrlSigner {
  readonly #caCert: ParsedCertificate;
  readonly #settings: CaSettings;
  #freshestCrlUrl: string;
  #builder: CrlBuilder;
  /** What #builder holds, in id order (the entries of the next complete CRL). */
  #held: HeldEntry[] = [];
  /** The earliest certNotAfter in #held: nothing can leave the complete CRL before it. */
  #earliestNotAfter = Infinity;
  /** The delta's entries: rows above `base.lastRevocationId` of the complete CRL number `base.crlNumber`. */
  #delta: DeltaBuilder | undefined;
  /** The builders hold entries not in the store (a revocation transaction rolled back): rebuild them. */
  #builderDirty = false;
  /** The highest revocation row id the builders hold. */
  #lastRevocationId = 0;
  /**
   * The current CRLs as this process last read or committed them, with the store's change counter at
   * that moment (bench/revocation.ts: re-reading the row cost ~2 x 90 ms per revocation at 100k
   * entries). Valid while the counter is unchanged (SQLite: it moves only when ANOTHER process commits).
   */
  #snap: Snapshot;
  /** Signed inside the current transaction; becomes `snap` only once that transaction committed. */
  #uncommitted: Snapshot | undefined;
  /** RECOVERED_SETTING: entries every complete CRL lists although no revocation row holds them. */
  #recovered: CrlEntry[];

  private constructor(
    caCert: ParsedCertificate,
    settings: CaSettings,
    snap: Snapshot,
    recovered: CrlEntry[],
  ) {
    this.#caCert = caCert;
    this.#settings = settings;
    this.#freshestCrlUrl = deltaCrlUrlOf(settings);
    this.#snap = snap;
    this.#recovered = recovered;
    this.#builder = this.#newBuilder(snap.full);
  }

  /** The store's current CRLs, with empty builders: feed them every revocation row with add(). */
  static async load(store: AsyncStore, caCert: ParsedCertificate, settings: CaSettings): Promise<CrlSigner> {
    const counter = await store.changeCounter();
    const full = await store.getCrlState();
    if (full === undefined) {
      throw new EnvironmentError(
        'ca_missing',
        'the store has no CRL: the CA was not initialised (kds server init)',
      );
    }
    const delta = await store.getSetting<DeltaCrlState>(DELTA_SETTING);
    const recovered = (await store.getSetting<CrlEntry[]>(RECOVERED_SETTING)) ?? [];
    return new CrlSigner(caCert, settings, { full, delta, counter }, recovered);
  }

  /** The store's change counter when the current CRLs were read. */
  get counter(): number {
    return this.#snap.counter;
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

  /** The current complete CRL as of the last reload (or this process's last commit). */
  currentState(): CrlState {
    return this.#snap.full;
  }

  /** The current delta CRL; undefined for a data directory no delta was ever issued in. */
  currentDelta(): DeltaCrlState | undefined {
    return this.#snap.delta;
  }

  /** The highest number of the one sequence complete and delta CRLs share (RFC 5280 5.2.3). */
  highestCrlNumber(): number {
    const full = this.#uncommitted?.full ?? this.currentState();
    const delta = this.#uncommitted?.delta ?? this.currentDelta();
    return Math.max(full.crlNumber, delta?.crlNumber ?? 0);
  }

  /** Re-read the current CRLs from `db` when the store's change counter is no longer `counter`'s. */
  async reload(db: AsyncStoreData, counter: number): Promise<void> {
    if (this.#snap.counter === counter) return;
    const full = await db.getCrlState();
    if (full === undefined) throw new EnvironmentError('ca_missing', 'the store has no CRL');
    const delta = await db.getSetting<DeltaCrlState>(DELTA_SETTING);
    this.#snap = { full, delta, counter };
    if ((delta?.recoveredEntries ?? 0) > this.#recovered.length) {
      this.#setRecovered((await db.getSetting<CrlEntry[]>(RECOVERED_SETTING)) ?? []);
    }
  }

  /** The entries kept on every complete CRL without a revocation row (RECOVERED_SETTING). */
  recovered(): readonly CrlEntry[] {
    return this.#recovered;
  }

  /**
   * Keep `entries` on every complete CRL from now on although the store has no certificate row for
   * them (crl-rollback.ts). Inside the transaction that then signs a complete CRL.
   */
  async addRecovered(tx: AsyncStoreData, entries: readonly CrlEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const known = new Set(this.#recovered.map((e) => e.serialHex));
    const all = [...this.#recovered, ...entries.filter((e) => !known.has(e.serialHex))];
    await tx.setSetting(RECOVERED_SETTING, all);
    // Held in memory before the commit: if the transaction fails, the CA does not open (the recovery
    // runs in CertificateAuthority.open) and this signer is dropped with it.
    this.#setRecovered(all);
  }

  #setRecovered(entries: CrlEntry[]): void {
    this.#recovered = entries;
    for (const e of entries) this.#builder.add(e); // add() skips a serial already listed
  }

  /**
   * Bring the builders up to date with `db`: `rows` are the revocation rows the index just read (in id
   * order); those the builders already hold are skipped. After a rolled-back revocation the builders
   * may hold an entry the store does not: they are rebuilt from every row first.
   */
  async catchUp(db: AsyncStoreData, rows: ListedRevocation[]): Promise<void> {
    if (this.#builderDirty) {
      const full = await db.getCrlState();
      if (full === undefined) throw new EnvironmentError('ca_missing', 'the store has no CRL');
      this.#builder = this.#newBuilder(full);
      this.#held = [];
      this.#earliestNotAfter = Infinity;
      this.#delta = undefined;
      this.#builderDirty = false;
      this.#lastRevocationId = 0;
      for (const row of await db.listRevocations(0)) this.#addRow(row);
    }
    for (const row of rows) if (row.id > this.#lastRevocationId) this.#addRow(row);
  }

  /** This process's own revocation row, inside its transaction (see rollBack). */
  add(id: number, entry: CrlEntry, certNotAfter: number): void {
    this.#hold({ id, certNotAfter, entry });
    this.#addToDelta(id, entry);
    this.#lastRevocationId = Math.max(this.#lastRevocationId, id);
  }

  /**
   * Sign what a revocation just added, inside its transaction: the complete CRL in the small regime,
   * only the delta in the large one. Returns the number of the CRL that first lists it.
   */
  async signRevocation(
    tx: AsyncStoreData,
    sign: SyncSigner,
    now: number,
  ): Promise<{ crlNumber: number; published: 'full' | 'delta' }> {
    if (this.#builder.size < this.#settings.crlSyncFullMax) {
      return { crlNumber: (await this.signFull(tx, sign, now)).crlNumber, published: 'full' };
    }
    return { crlNumber: (await this.#signDelta(tx, sign, now)).crlNumber, published: 'delta' };
  }

  /**
   * Sign complete CRL number N = max(complete, delta) + 1 over every revocation row, and the delta CRL
   * issued with it: the same number N, base N, no entries ("If a delta CRL and a complete CRL that cover
   * the same scope are issued at the same time, they MUST have the same CRL number and provide the same
   * revocation information", RFC 5280 5.2.3). Both stored as current. Inside a transaction, after
   * catchUp and reload.
   */
  async signFull(
    tx: AsyncStoreData,
    sign: SyncSigner,
    now: number,
    above?: { crlNumber: number; thisUpdate: number },
  ): Promise<CrlState> {
    const current = this.currentState();
    // RFC 5280 5.2.3: "CRL issuers conforming to this profile MUST include this extension in all CRLs"
    // and the number is "monotonically increasing": strictly above every number issued, under the lock.
    // `above`: a CRL this CA published that the store no longer holds (crl-rollback.ts).
    const crlNumber = Math.max(this.highestCrlNumber(), above?.crlNumber ?? 0) + 1;
    // thisUpdate never goes backwards, even if this process's clock is behind the previous signer's.
    const thisUpdate = Math.max(now, current.thisUpdate, above?.thisUpdate ?? 0);
    const nextUpdate = thisUpdate + this.#settings.crlValidityDays * DAY_MS;
    this.#dropExpired(current);
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
    crlNumber = this.highestCrlNumber() + 1,
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
      ...(this.#recovered.length > 0 ? { recoveredEntries: this.#recovered.length } : {}),
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
      builder.add({ serialHex: row.serialHex, revokedAt: row.revokedAt, reason: rowReason(row) });
    }
    this.#delta = { builder, base: { crlNumber: base.crlNumber, lastRevocationId: base.lastRevocationId } };
    return this.#delta;
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

  /** The transaction that signed committed: serve what it signed. */
  commit(): void {
    if (this.#uncommitted !== undefined) this.#snap = this.#uncommitted;
    this.#uncommitted = undefined;
  }

  /**
   * The transaction rolled back: forget what it signed. `entriesAdded`: add() ran in it, so the builders
   * hold an entry the store does not; they are rebuilt at the next catchUp.
   */
  rollBack(entriesAdded: boolean): void {
    if (entriesAdded) this.#builderDirty = true;
    if (this.#uncommitted !== undefined) {
      // The delta builder may have been re-based on a complete CRL that never committed.
      this.#delta = undefined;
    }
    this.#uncommitted = undefined;
    // A read inside the rolled-back transaction may have loaded what it wrote: read again next time.
    this.#snap = { ...this.#snap, counter: Number.NaN };
  }

  #addRow(row: ListedRevocation): void {
    const entry = { serialHex: row.serialHex, revokedAt: row.revokedAt, reason: rowReason(row) };
    const held = { id: row.id, certNotAfter: row.certNotAfter, entry };
    // Left out of the complete CRLs since the current one (or about to be): not held again.
    if (!leavesAfter(held, this.#snap.full)) this.#hold(held);
    this.#addToDelta(row.id, entry);
    this.#lastRevocationId = row.id;
  }

  #hold(held: HeldEntry): void {
    this.#builder.add(held.entry);
    this.#held.push(held);
    if (held.certNotAfter !== null && held.certNotAfter < this.#earliestNotAfter) {
      this.#earliestNotAfter = held.certNotAfter;
    }
  }

  /** Before a complete CRL is signed over #builder: leave out what `current` allows (see the header). */
  #dropExpired(current: CrlState): void {
    if (!(this.#earliestNotAfter < current.thisUpdate)) return;
    const kept = this.#held.filter((h) => !leavesAfter(h, current));
    if (kept.length === this.#held.length) return;
    this.#builder = this.#newBuilder(current);
    this.#held = [];
    this.#earliestNotAfter = Infinity;
    for (const h of kept) this.#hold(h);
  }

  #addToDelta(id: number, entry: CrlEntry): void {
    if (this.#delta !== undefined && id > this.#delta.base.lastRevocationId) this.#delta.builder.add(entry);
  }

  #newBuilder(state: CrlState, deltaBase?: number): CrlBuilder {
    const builder = new CrlBuilder({
      issuerCertPem: this.#caCert.pem,
      crlNumber: state.crlNumber,
      thisUpdate: state.thisUpdate,
      nextUpdate: state.nextUpdate,
      ...(deltaBase === undefined ? { freshestCrlUrl: this.#freshestCrlUrl } : { deltaBase }),
    });
    // A complete CRL lists the recovered entries too (never dropped: their notAfter is unknown).
    if (deltaBase === undefined) for (const e of this.#recovered) builder.add(e);
    return builder;
  }
}

/**
 * May `held` be left out of every complete CRL issued after `full`? Its certificate expired before
 * `full` was issued, and `full` lists it (RFC 5280 3.3).
 */
function leavesAfter(held: HeldEntry, full: CrlState): boolean {
  return (
    held.certNotAfter !== null && held.certNotAfter < full.thisUpdate && held.id <= full.lastRevocationId
  );
}

/**
 * Sign and store the first CRLs of a new CA: complete CRL number 1 (no entries) and, issued with it,
 * delta CRL number 1 (base 1, no entries). RFC 5280 5.1.2.6: "When there are no revoked certificates,
 * the revoked certificates list MUST be absent."
 */
export async function issueInitialCrls(
  tx: AsyncStoreData,
  deps: { caCert: ParsedCertificate; settings: CaSettings; sign: SyncSigner; now: number },
): Promise<{ full: CrlState; delta: DeltaCrlState }> {
  const { caCert, settings, sign } = deps;
  const now = Math.floor(deps.now / 1000) * 1000;
  const thisUpdate = now;
  const nextUpdate = now + settings.crlValidityDays * DAY_MS;
  const spec = { issuerCertPem: caCert.pem, crlNumber: 1, thisUpdate, nextUpdate };
  const builder = new CrlBuilder({ ...spec, freshestCrlUrl: deltaCrlUrlOf(settings) });
  const full: CrlState = {
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
  await tx.saveCrlState(full);
  await tx.setSetting(DELTA_SETTING, delta);
  return { full, delta };
}
