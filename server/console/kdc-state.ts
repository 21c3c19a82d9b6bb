// The console's state panel for a KDC: sessions open, certificates, keys, the CRL number, read from
// the session table and the store. Rebuilt on a timer only when something may have changed (the
// changes themselves come from the event stream: kdc-changes.ts). Only names, serials, states and
// reasons: never a key's bytes.
import type { ConsoleState, CertRow, KeyRow } from '../../shared/console/events.js';
import type { CertificateAuthority } from '../ca/authority.js';
import type { SessionTable } from '../kdc/session-table.js';
import type { AsyncStoreData } from '../store/async-store.js';
import type { ConsoleFeed } from '../../io/console/feed.js';

/** Rows per list on the page; the counts stay exact. */
const MAX_ROWS = 200;

export interface StateSources {
  store: Pick<
    AsyncStoreData,
    | 'listNewestCertificates'
    | 'countCertificatesByStatus'
    | 'listSymKeys'
    | 'countSymKeysByState'
    | 'getCrlState'
  >;
  ca: CertificateAuthority;
  sessions: SessionTable;
  /** The exchange number of a session (the console's own numbering). */
  exchangeOf(session: unknown): number;
  /** The defences switched off by `--lab-disable` (empty outside the MITM lab). */
  labDisabled?: readonly string[];
}

/** What the panel shows from the store: the part that changes only when the store does. */
export type StoreRows = Pick<ConsoleState, 'certs' | 'keys' | 'crlNumber' | 'truncated' | 'counts'>;

export async function readStoreRows(store: StateSources['store']): Promise<StoreRows> {
  // The newest certificates only, without their PEM, and the counts from the status index: every
  // renewal adds a row, and rows are never deleted.
  const certs: CertRow[] = (await store.listNewestCertificates(MAX_ROWS + 1)).map((c) => ({
    serial: c.serialHex,
    name: c.name,
    role: c.role,
    status: c.status,
  }));
  // The newest keys only, and the counts from the state index: the panel is re-read every half second
  // while the KDC is busy, and the store may hold many keys (each one a client created, ever).
  const keys: KeyRow[] = (await store.listSymKeys({ newest: MAX_ROWS + 1 })).map((k) => ({
    serial: k.serial,
    owner: k.owner,
    peer: k.peer,
    state: k.state,
    ...(k.revokedReason === null ? {} : { reason: k.revokedReason }),
  }));
  const certCounts = await store.countCertificatesByStatus();
  const keyCounts = await store.countSymKeysByState();
  return {
    certs: certs.slice(-MAX_ROWS),
    keys: keys.slice(-MAX_ROWS),
    crlNumber: (await store.getCrlState())?.crlNumber ?? 0,
    truncated: certs.length > MAX_ROWS || keys.length > MAX_ROWS,
    counts: {
      certsActive: certCounts.active ?? 0,
      certsRevoked: certCounts.revoked ?? 0,
      keysActive: keyCounts.active ?? 0,
      keysRevoked: keyCounts.revoked ?? 0,
      keysExpired: keyCounts.expired ?? 0,
    },
  };
}

/** The whole panel; `rows` when the store part is known not to have changed since it was read. */
export function readKdcState(src: StateSources, rows: StoreRows): ConsoleState {
  // The newest sessions only: the state is serialised on every tick and kept in the feed's history, and
  // a KDC may hold thousands of sessions.
  const all = src.sessions.all();
  const open = all.length > MAX_ROWS ? all.slice(-MAX_ROWS) : all;
  return {
    view: 'kdc',
    sessions: open.map((s) => ({
      name: s.identity.name,
      role: s.identity.role,
      exchange: src.exchangeOf(s),
    })),
    ...rows,
    ...(open.length === all.length
      ? {}
      : { truncated: true, counts: { ...rows.counts, sessions: all.length } }),
    ...(src.labDisabled === undefined || src.labDisabled.length === 0
      ? {}
      : { labDisabled: [...src.labDisabled] }),
  };
}

/** Publish the new picture of the state. */
export function publishState(feed: ConsoleFeed, state: ConsoleState): void {
  feed.publish({ kind: 'state', state });
}
