// The console as one more reader of the KDC's event stream (server/events/bus.ts): what changes the
// state panel (certificates issued and revoked, an enrollment's lost answer replayed, keys created, revoked and cascaded, CRLs published)
// becomes a `change` row of the diagram and a line of the panel's changes, the moment the KDC decides
// it. Names, serials, reasons and numbers only, as the events carry them.
import {
  EVENT_LEVEL,
  EVENT_LEVELS,
  type KdcEvent,
  type KdcEventType,
} from '../../shared/events/kdc-events.js';
import type { EventBus } from '../events/bus.js';
import type { ConsoleFeed } from '../../io/console/feed.js';

const CHANGE_TYPES: readonly KdcEventType[] = [
  'cert.issued',
  'cert.replayed',
  'cert.revoked',
  'crl.published',
  'key.created',
  'key.revoked',
  'key.cascade',
  'key.verified',
];

/** The lowest level among CHANGE_TYPES. */
const CHANGE_LEVEL =
  EVENT_LEVELS[Math.min(...CHANGE_TYPES.map((t) => EVENT_LEVELS.indexOf(EVENT_LEVEL[t])))]!;

function short(serial: string): string {
  return serial.length > 12 ? `${serial.slice(0, 12)}...` : serial;
}

/** The change row for an event, or undefined for the types the console does not draw. */
function changeOf(e: KdcEvent): { what: string; subject: string; detail: string } | undefined {
  switch (e.type) {
    case 'cert.issued':
      return {
        what: e.type,
        subject: e.name,
        detail: `certificate ${short(e.serial)} ${e.renewed ? 'renewed' : 'issued'} (${e.role})`,
      };
    case 'cert.replayed':
      // Nothing changed in the store: an enrollment whose answer was lost was sent again, and got the
      // certificate its token had produced (server/ca/enroll-replay.ts). Shown, because repeated
      // replays of one name are worth a look.
      return {
        what: e.type,
        subject: e.name,
        detail: `certificate ${short(e.serial)} handed out again (a lost enrollment answer, nothing issued)`,
      };
    case 'cert.revoked':
      return {
        what: e.type,
        subject: e.name,
        detail: `certificate ${short(e.serial)} revoked (${e.reason}); ${e.sessionsClosed} session(s) closed`,
      };
    case 'crl.published':
      return {
        what: e.type,
        subject: 'kdc',
        detail: `${e.kind} CRL number ${e.crlNumber}, ${e.entries} entries, ${e.bytes} B`,
      };
    case 'key.created':
      return {
        what: e.type,
        subject: `${e.owner} -> ${e.peer}`,
        detail: `key ${short(e.serial)} (${e.mode === 'kdc' ? 'KDC-generated' : 'end-to-end'})`,
      };
    case 'key.revoked':
      return { what: e.type, subject: e.by, detail: `key ${short(e.serial)} revoked (${e.reason})` };
    case 'key.cascade':
      return {
        what: e.type,
        subject: e.name,
        detail: `cascade: certificate ${short(e.certSerial)} revoked, so ${e.keys} key(s) of it revoked too`,
      };
    case 'key.verified':
      return { what: e.type, subject: e.by, detail: `key ${short(e.serial)} verified: ${e.verdict}` };
    default:
      return undefined;
  }
}

/** Subscribe the feed to the bus; `changed` runs after each (the state panel is re-read). */
export function readChanges(bus: EventBus, feed: ConsoleFeed, changed: () => void): () => void {
  return bus.subscribe(
    (e) => {
      const change = changeOf(e);
      if (change === undefined) return;
      feed.publish({ kind: 'change', ...change });
      changed();
    },
    // The lowest level of the types it draws: a subscriber at `debug` would make every connection and
    // request build its debug events, for a reader that drops them.
    { types: CHANGE_TYPES, level: CHANGE_LEVEL },
  );
}
