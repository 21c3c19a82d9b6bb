// The console's state panel for a KDC: sessions open, certificates, keys, the CRL number, read from
// the session table and the store. Rebuilt on a timer only when something may have changed, and the
// difference with the previous picture becomes the feed's change events (a revocation and the keys it
// took with it, a new key, a CRL). Only names, serials, states and reasons: never a key's bytes.
import type { ConsoleState, CertRow, KeyRow } from '../../shared/console/events.js';
import type { CertificateAuthority } from '../ca/authority.js';
import type { SessionTable } from '../kdc/session-table.js';
import type { Store } from '../store/store.js';
import type { ConsoleFeed } from './feed.js';

/** Rows per list on the page; the counts stay exact. */
export const MAX_ROWS = 200;

export interface StateSources {
  store: Store;
  ca: CertificateAuthority;
  sessions: SessionTable;
  /** The exchange number of a session (the console's own numbering). */
  exchangeOf(session: unknown): number;
}

export function readKdcState(src: StateSources): ConsoleState {
  const certs: CertRow[] = src.store
    .listCertificates()
    .filter((c) => c.status !== 'pending')
    .map((c) => ({ serial: c.serialHex, name: c.name, role: c.role, status: c.status }));
  const keys: KeyRow[] = src.store.listSymKeys().map((k) => ({
    serial: k.serial,
    owner: k.owner,
    peer: k.peer,
    state: k.state,
    ...(k.revokedReason === null ? {} : { reason: k.revokedReason }),
  }));
  const count = <T>(rows: T[], pred: (r: T) => boolean): number => rows.filter(pred).length;
  return {
    view: 'kdc',
    sessions: src.sessions
      .all()
      .map((s) => ({ name: s.identity.name, role: s.identity.role, exchange: src.exchangeOf(s) })),
    certs: certs.slice(-MAX_ROWS),
    keys: keys.slice(-MAX_ROWS),
    crlNumber: src.store.getCrlState()?.crlNumber ?? 0,
    truncated: certs.length > MAX_ROWS || keys.length > MAX_ROWS,
    counts: {
      certsActive: count(certs, (c) => c.status === 'active'),
      certsRevoked: count(certs, (c) => c.status === 'revoked'),
      keysActive: count(keys, (k) => k.state === 'active'),
      keysRevoked: count(keys, (k) => k.state === 'revoked'),
      keysExpired: count(keys, (k) => k.state === 'expired'),
    },
  };
}

function short(serial: string): string {
  return serial.length > 12 ? `${serial.slice(0, 12)}...` : serial;
}

/** Publish what changed between two pictures, then the new picture itself. */
export function publishStateChanges(
  feed: ConsoleFeed,
  before: ConsoleState | undefined,
  after: ConsoleState,
  reasonOf: (serial: string) => string | undefined,
): void {
  if (before !== undefined) {
    const certsBefore = new Map(before.certs.map((c) => [c.serial, c.status]));
    for (const c of after.certs) {
      const was = certsBefore.get(c.serial);
      if (was === c.status) continue;
      if (c.status === 'revoked') {
        const reason = reasonOf(c.serial);
        feed.publish({
          kind: 'change',
          what: 'cert.revoked',
          subject: c.name,
          detail: `certificate ${short(c.serial)} revoked${reason === undefined ? '' : ` (${reason})`}`,
        });
      } else if (was === undefined && c.status === 'active') {
        feed.publish({
          kind: 'change',
          what: 'cert.issued',
          subject: c.name,
          detail: `certificate ${short(c.serial)} issued (${c.role})`,
        });
      }
    }
    const keysBefore = new Map(before.keys.map((k) => [k.serial, k.state]));
    for (const k of after.keys) {
      const was = keysBefore.get(k.serial);
      if (was === k.state) continue;
      const pair = `${k.owner} -> ${k.peer}`;
      if (k.state === 'revoked') {
        const cascade = k.reason === 'certificateRevoked';
        feed.publish({
          kind: 'change',
          what: 'key.revoked',
          subject: pair,
          detail: `key ${short(k.serial)} revoked${k.reason === undefined ? '' : ` (${k.reason})`}${cascade ? ': cascade from a revoked certificate' : ''}`,
        });
      } else if (k.state === 'active' && was !== 'active') {
        feed.publish({
          kind: 'change',
          what: 'key.created',
          subject: pair,
          detail: `key ${short(k.serial)} active`,
        });
      } else if (k.state === 'expired') {
        feed.publish({
          kind: 'change',
          what: 'key.expired',
          subject: pair,
          detail: `key ${short(k.serial)} expired`,
        });
      }
    }
    if (after.crlNumber !== before.crlNumber) {
      feed.publish({
        kind: 'change',
        what: 'crl.published',
        subject: 'kdc',
        detail: `CRL number ${after.crlNumber}`,
      });
    }
  }
  feed.publish({ kind: 'state', state: after });
}
