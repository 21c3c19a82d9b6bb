// The asynchronous Store contract: what a networked database needs (every call may wait on the network,
// and a multi-step write is a transaction whose body awaits). Both engines implement it:
// sqlite-async-store.ts (better-sqlite3 underneath: every call completes synchronously, the promise is
// already settled) and pg-store.ts (node-postgres, a pool of connections).
//
// The record types and the data methods are the synchronous Store's (store.ts), each returning a
// promise: one list of methods, so the two engines cannot drift apart in what they offer, and the
// conformance suite (test/server/store/conformance.test.ts) runs the same calls against both.
//
// Transactions: `transaction(fn)` runs fn(tx) with the store's write lock held from its first statement
// to its COMMIT (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock), so the
// re-checks a write makes inside fn are still true when it writes, whichever node runs it. Calls made on
// `tx` belong to the transaction; calls made on the store itself meanwhile do not (PostgreSQL: another
// connection; SQLite: they wait until the transaction ends). fn throwing rolls everything back and the
// promise rejects with what fn threw. tx.transaction(fn) is a savepoint.
//
// `batch(fn)` is the group commit (group-commit.ts): fn runs in a transaction that may be shared with
// other concurrent callers, each in its own savepoint, and the promise settles only once the shared
// COMMIT is durable; on both engines, since one write lock serialises the transactions, sharing one
// lock and one COMMIT between many callers is what keeps a burst of writes fast.
import { InputError } from '../../shared/errors.js';
import type { Store } from './store.js';

/** Lifecycle, locking and SQLite's own durability hooks: not data methods. */
type NonDataMethods =
  | 'location'
  | 'schemaVersion'
  | 'transaction'
  | 'transactionUnsynced'
  | 'syncCommitted'
  | 'changeCounter'
  | 'onCertificateStatusChange'
  | 'close';

/** The synchronous Store's data methods (settings, certificates, revocations, CRL, tokens, audit, keys). */
export type StoreData = Omit<Store, NonDataMethods>;

type Promised<F> = F extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;

/** Each data method of the Store, returning a promise (getSetting keeps its type parameter). */
export type AsyncStoreData = { [K in Exclude<keyof StoreData, 'getSetting'>]: Promised<StoreData[K]> } & {
  getSetting<T>(key: string): Promise<T | undefined>;
};

/** The view of the store inside a transaction. */
export interface AsyncStoreTx extends AsyncStoreData {
  /** A savepoint: fn throwing rolls back only what fn wrote. */
  transaction<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T>;
  /**
   * Tell every listener of `channel` (every node's, on PostgreSQL) once this transaction has committed;
   * never if it (or the savepoint around this call) rolls back. At most MAX_NOTIFY_PAYLOAD bytes.
   */
  notify(channel: string, payload: string): Promise<void>;
}

/** Channel names: short lower-case identifiers (they become part of a PostgreSQL channel name). */
const CHANNEL_NAME = /^[a-z][a-z0-9_]{0,29}$/;
/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; the same limit on both engines. */
const MAX_NOTIFY_PAYLOAD = 7_999;

export interface StoreListener {
  /** Called with each payload notified on the channel, after its transaction committed. */
  onNotify(payload: string): void;
  /**
   * Called when notifications may have been missed (PostgreSQL: the listening connection was lost and
   * is back): the listener must catch up from the store itself.
   */
  onGap?(): void;
  /**
   * Called once when the listening connection is lost, with why (PostgreSQL's message, or that the
   * connection closed); notifications are missed from then until onGap. Not called again for each failed
   * reconnection.
   */
  onLost?(reason: string): void;
}

export type StoreEngine = 'sqlite' | 'postgres';

export interface AsyncStore extends AsyncStoreData {
  readonly engine: StoreEngine;
  /** Where the data lives: a file path, or the database URL without its password. */
  readonly location: string;
  /** Applied schema version (the last migration's number; the same numbering for both engines). */
  schemaVersion(): Promise<number>;
  transaction<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T>;
  /** Group commit: see the header. */
  batch<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T>;
  /**
   * Report each durable group commit: its committed callers and the time from its BEGIN until it was
   * durable (the KDC's store.commit event). One observer, the last one set; undefined removes it.
   */
  observeCommits(observer: ((callers: number, durationMs: number) => void) | undefined): void;
  /**
   * Changes whenever another connection or node may have committed a write since the last call; equal
   * values mean nothing changed. For caches (certificate standing, the CRL) only.
   */
  changeCounter(): Promise<number>;
  /**
   * The database server's clock (ms since the epoch) when it answered, for comparing a node's clock
   * with the one every node shares (server/store/clock-skew.ts); undefined where the store has no clock
   * apart from the process's own (SQLite: a file on this machine, written by this machine's processes).
   */
  databaseTime(): Promise<number | undefined>;
  /** As Store.onCertificateStatusChange: this store object's own status changes, after they are written. */
  onCertificateStatusChange(listener: (serialHex: string) => void): () => void;
  /** Listen on `channel`; resolves once listening (a notify committed after that is delivered). */
  listen(channel: string, listener: StoreListener): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/**
 * Every data method by name, for engines that forward them (sqlite-async-store.ts). The type below fails
 * to compile when a method is added to the Store and not here.
 */
/**
 * Its argument, typed as given, when it names every data method of StoreData; otherwise a compile
 * error whose `missing` property names the method left out.
 */
function everyDataMethod<const M extends readonly (keyof StoreData)[]>(
  methods: M &
    ([Exclude<keyof StoreData, M[number]>] extends [never]
      ? unknown
      : { missing: Exclude<keyof StoreData, M[number]> }),
): M {
  return methods;
}

export const DATA_METHODS = everyDataMethod([
  'getSetting',
  'setSetting',
  'insertIssuedCertificate',
  'setCertificateStatus',
  'getCertificate',
  'getCertificateStanding',
  'getCertificateByFingerprint',
  'activeCertificate',
  'activeCertificateSummary',
  'latestCertificate',
  'listCertificates',
  'listNewestCertificates',
  'listCertificateSerials',
  'countCertificates',
  'countCertificatesByStatus',
  'insertRenewal',
  'getRenewal',
  'latestRenewalOf',
  'countRenewalsSince',
  'installRenewal',
  'insertRevocation',
  'getRevocation',
  'listRevocations',
  'countRevocations',
  'lastRevocationId',
  'getCrlState',
  'saveCrlState',
  'insertEnrollmentToken',
  'consumeEnrollmentToken',
  'getEnrollmentToken',
  'listEnrollmentTokens',
  'appendAudit',
  'listAudit',
  'countAudit',
  'auditTail',
  'appendAuditHead',
  'listAuditHeads',
  'lastSignedAuditEntry',
  'insertSymKey',
  'getSymKey',
  'activateSymKey',
  'setSymKeyState',
  'markSymKeyPeerVerified',
  'listSymKeys',
  'expireSymKeys',
  'deleteStaleReservations',
  'deleteExpiredSymKeys',
  'countSymKeysByState',
  'countPendingDeliveries',
  'countActiveKeys',
  'countOpenReservations',
  'insertPrekeys',
  'countPrekeys',
  'claimPrekey',
  'deletePrekeys',
  'putLastResortPrekey',
  'getLastResortPrekey',
  'enqueueDelivery',
  'countQueuedFrom',
  'deleteQueuedKeyNotices',
  'deleteQueueOf',
  'listDeliveries',
  'getDelivery',
  'deleteDeliveries',
  'countDeliveries',
  'heldPrekeyIds',
]);

/** Refuse a channel name or payload the contract does not allow (the same on both engines). */
export function checkNotification(channel: string, payload?: string): void {
  if (!CHANNEL_NAME.test(channel)) {
    throw new InputError(
      'bad_request',
      `expected a store channel name (${String(CHANNEL_NAME)}), got ${JSON.stringify(channel)}`,
    );
  }
  if (payload !== undefined && Buffer.byteLength(payload) > MAX_NOTIFY_PAYLOAD) {
    throw new InputError('bad_request', `a store notification carries at most ${MAX_NOTIFY_PAYLOAD} bytes`);
  }
}
