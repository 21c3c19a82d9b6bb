// One line of text per key-client event, for people: `kds client listen` prints these, the menu shows
// them as notices. Serials, names and fingerprints only: never key material.
//
// Every field came from the network (a peer's message text, names and reasons in the KDC's notices,
// error messages), so each is made terminal-safe here (shared/text/terminal-safe.ts): a message cannot
// move the cursor, erase or hide lines, reverse text, or start a line that passes for one of ours.
import { terminalSafe as safe, terminalSafeBlock } from '../../shared/text/terminal-safe.js';
import type { KeyEvent } from './key-client.js';
import type { ListenEvent } from './listen.js';
import { describeSkew } from '../../shared/pki/clock-skew.js';

export function describeKeyEvent(e: KeyEvent): string {
  switch (e.event) {
    case 'key':
      return `key ${safe(e.serial)} received from ${safe(e.from)} (${safe(e.mode)}), fingerprint ${safe(e.fingerprint)}: ${safe(e.verdict)}, now ${safe(e.state)}`;
    case 'key.rejected':
      return `REJECTED key ${safe(e.serial)} from ${safe(e.from)}: [${safe(e.code)}] ${safe(e.message)}`;
    case 'key.verified':
      return `key ${safe(e.serial)} verified by ${safe(e.peer)}: now ${safe(e.state)}`;
    case 'key.revoked':
      // A renewal's keys are superseded for the reason superseded: the word once.
      return `key ${safe(e.serial)} ${safe(e.state)}${e.reason === e.state ? '' : ` (${safe(e.reason)})`}; its material is deleted`;
    case 'message':
      return `message from ${safe(e.from)} (key ${safe(e.serial)}): ${terminalSafeBlock(e.text)}`;
    case 'message.rejected':
      return e.kept === true
        ? `NOT SHOWN YET message from ${safe(e.from)} (key ${safe(e.serial)}): [${safe(e.code)}] ${safe(e.message)}; kept at the KDC, delivered again at the next connection`
        : `REJECTED message from ${safe(e.from)} (key ${safe(e.serial)}): [${safe(e.code)}] ${safe(e.message)}`;
  }
}

/** describeKeyEvent plus the connection's own events (`kds client listen`). */
export function describeListenEvent(e: ListenEvent): string {
  switch (e.event) {
    case 'connected':
      return e.renewAt === undefined
        ? `connected as ${safe(e.name)} (certificate ${safe(e.serial)}) to ${safe(e.server)}`
        : `connected as ${safe(e.name)} (certificate ${safe(e.serial)}; renews itself on ${new Date(e.renewAt).toISOString()}) to ${safe(e.server)}`;
    case 'renewed':
      return `renewed the certificate: ${safe(e.serial)} valid until ${new Date(e.notAfter).toISOString()} replaces ${safe(e.previous)}; reconnecting with it`;
    case 'clock.skew':
      return `this machine's clock is ${describeSkew(e.skewMs)} (measured from the new certificate ${safe(e.serial)}): renewals are scheduled and keys expire by the local clock, so correct it (NTP); until then renewals are spaced by at least a third of the certificate's lifetime`;
    case 'renew.failed':
      return `automatic renewal failed (${safe(e.code)}): ${safe(e.message)}; trying again in ${Math.round(e.retryInMs / 1000)} s`;
    case 'disconnected':
      return `disconnected (${safe(e.code)}); reconnecting in ${e.retryInMs} ms`;
    case 'stopped':
      return e.code === undefined ? 'stopped' : `stopped (${safe(e.code)})`;
    default:
      return describeKeyEvent(e);
  }
}
