// One readable line per KDC event, for an operator watching `kds server start` (docs/operations.md):
//   alice      handshake ok (x25519, 1.3 ms)
//   mallory?   handshake refused: bad_signature (transcript signature)
//   bob        key 3f2a9c01... verified valid
// The first column is who the event is about: a verified name, a claimed one with `?` (nothing proved
// it), an address when nobody is known, `kdc` for the KDC's own doings. Every value that came from the
// network or the store is written through terminalSafe (shared/text/terminal-safe.ts): a hostile
// certificate CN or close reason cannot move the cursor, erase lines or reverse text.
import type { KdcEvent } from '../../shared/events/kdc-events.js';
import { terminalSafe } from '../../shared/text/terminal-safe.js';

const WHO_WIDTH = 10;

/** A serial shortened for reading (the full one is in --log-format json and `kds admin audit`). */
function shortSerial(serial: string): string {
  const safe = terminalSafe(serial);
  return safe.length > 12 ? `${safe.slice(0, 8)}...` : safe;
}

function ms(value: number): string {
  return value >= 100 ? `${Math.round(value)} ms` : `${value.toFixed(1)} ms`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * HH:MM:SS.mmm (UTC) of an epoch-ms time: what `new Date(at).toISOString().slice(11, 23)` gives, by
 * arithmetic (a line per event: the Date and its 24-character string were the text log's largest cost).
 */
export function clock(at: number): string {
  const day = ((Math.floor(at) % 86_400_000) + 86_400_000) % 86_400_000;
  const ms = day % 1000;
  const seconds = Math.floor(day / 1000);
  return `${two(Math.floor(seconds / 3600))}:${two(Math.floor(seconds / 60) % 60)}:${two(seconds % 60)}.${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}`;
}

/** [who, what] of an event; both terminal-safe. */
export function describeEvent(e: KdcEvent): [string, string] {
  const s = terminalSafe;
  switch (e.type) {
    case 'kdc.started':
      return [
        'kdc',
        `started (kds ${s(e.version)}, pid ${e.pid})${e.metricsUrl === '' ? '' : `, metrics at ${s(e.metricsUrl)}`}`,
      ];
    case 'kdc.stopped':
      return ['kdc', `stopped after ${(e.uptimeMs / 1000).toFixed(1)} s`];
    case 'kek.opened':
      return [
        'kdc',
        `KEKs opened (${e.versions} ${e.versions === 1 ? 'version' : 'versions'}, ${ms(e.durationMs)})`,
      ];
    case 'connection.opened':
      return [s(e.address), 'connection opened'];
    case 'connection.refused':
      return [s(e.address), `connection refused: ${s(e.code)} (${e.limit.replace(/_/g, ' ')})`];
    case 'connection.closed': {
      const why = e.code === undefined ? `${e.closeCode}` : `${e.closeCode} ${s(e.code)}`;
      const what = e.name === '' ? 'connection closed' : 'session closed';
      return [e.name === '' ? s(e.address) : s(e.name), `${what} (${why}, after ${ms(e.durationMs)})`];
    }
    case 'handshake.completed':
      if (e.mode === 'enroll')
        return [s(e.address), `enrollment session open (${s(e.group)}, ${ms(e.durationMs)})`];
      return [
        s(e.name),
        `handshake ok (${s(e.group)}${e.mode === 'insecure' ? ', INSECURE: name not verified' : ''}, ${ms(e.durationMs)})`,
      ];
    case 'handshake.refused': {
      const who = e.claimedName === undefined ? s(e.address) : `${s(e.claimedName)}?`;
      const by = e.by === 'peer' ? 'handshake refused by the client' : 'handshake refused';
      return [who, `${by}: ${s(e.code)}${e.defence === undefined ? '' : ` (${s(e.defence)})`}`];
    }
    case 'session.failed':
      return [
        s(e.name || e.address),
        `session ended: ${s(e.code)}${e.defence === undefined ? '' : ` (${s(e.defence)})`}`,
      ];
    case 'request.served':
      return [s(e.name || e.role), `${s(e.request)} ${s(e.code)} (${ms(e.durationMs)})`];
    case 'request.refused':
      return [s(e.name || e.role), `${s(e.request)} refused: ${s(e.code)} (${s(e.message)})`];
    case 'token.created':
      return [s(e.by), `enrollment token for ${s(e.name)} (expires ${new Date(e.expiresAt).toISOString()})`];
    case 'cert.issued':
      return [
        s(e.name),
        `certificate ${shortSerial(e.serial)} ${e.renewed ? 'renewed' : 'issued'} (${s(e.role)}, until ${new Date(e.notAfter).toISOString().slice(0, 10)})`,
      ];
    case 'cert.replayed':
      return [
        s(e.name),
        `certificate ${shortSerial(e.serial)} sent again (a retried enrollment; nothing issued)`,
      ];
    case 'cert.revoked':
      return [
        s(e.name),
        `certificate ${shortSerial(e.serial)} revoked: ${s(e.reason)} (${plural(e.sessionsClosed, 'session')} closed)`,
      ];
    case 'crl.published':
      return [
        'kdc',
        `${e.kind === 'delta' ? 'delta CRL' : 'CRL'} ${s(e.crlNumber)} published (${e.entries} ${e.entries === 1 ? 'entry' : 'entries'}, ${e.bytes} bytes)`,
      ];
    case 'key.created':
      return [
        s(e.owner),
        `key ${shortSerial(e.serial)} created for ${s(e.peer)} (${e.mode === 'kdc' ? 'KDC-generated' : 'end-to-end'}${e.replaces === undefined ? '' : `, replaces ${shortSerial(e.replaces)}`})`,
      ];
    case 'key.deposited':
      return [s(e.owner), `key ${shortSerial(e.serial)} deposited (end-to-end ciphertext)`];
    case 'key.delivered':
      return [s(e.to), `key ${shortSerial(e.serial)} delivered from ${s(e.from)}`];
    case 'key.verified':
      return [s(e.by), `key ${shortSerial(e.serial)} verified ${s(e.verdict)}`];
    case 'key.revoked':
      return [s(e.by), `key ${shortSerial(e.serial)} revoked: ${s(e.reason)}`];
    case 'key.cascade':
      return [s(e.name), `${plural(e.keys, 'key')} revoked with certificate ${shortSerial(e.certSerial)}`];
    case 'key.pruned':
      return [
        'kdc',
        `${plural(e.keys, 'key')} deleted: expired before ${new Date(e.expiredBefore).toISOString()}`,
      ];
    case 'message.relayed':
      return [s(e.from), `message to ${s(e.to)} relayed (${e.bytes} bytes, key ${shortSerial(e.serial)})`];
    case 'prekeys.uploaded':
      return [s(e.name), `${plural(e.count, 'prekey')} uploaded`];
    case 'store.error':
      return ['kdc', `store error at ${s(e.stage)}: ${s(e.code)} (${s(e.message)})`];
    case 'store.commit':
      return ['kdc', `store commit (${plural(e.callers, 'transaction')}, ${ms(e.durationMs)})`];
    case 'audit.signed':
      return ['kdc', `audit head #${e.entry} signed (${s(e.hash).slice(0, 16)}...)`];
    case 'kdc.warning':
      return ['kdc', `warning: ${s(e.message)}`];
  }
}

/** The whole line: time (UTC), who, what. */
export function eventLine(e: KdcEvent): string {
  const [who, what] = describeEvent(e);
  return `${clock(e.at)}  ${who.padEnd(WHO_WIDTH)} ${what}`;
}
