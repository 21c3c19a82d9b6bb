// One line of text per key-client event, for people: `kds client listen` prints these, the menu shows
// them as notices. Serials, names and fingerprints only: never key material.
import type { KeyEvent } from './key-client.js';
import type { ListenEvent } from './listen.js';

export function describeKeyEvent(e: KeyEvent): string {
  switch (e.event) {
    case 'key':
      return `key ${e.serial} received from ${e.from} (${e.mode}), fingerprint ${e.fingerprint}: ${e.verdict}, now ${e.state}`;
    case 'key.rejected':
      return `REJECTED key ${e.serial} from ${e.from}: [${e.code}] ${e.message}`;
    case 'key.verified':
      return `key ${e.serial} verified by ${e.peer}: now ${e.state}`;
    case 'key.revoked':
      return `key ${e.serial} ${e.state} (${e.reason}); its material is deleted`;
    case 'message':
      return `message from ${e.from} (key ${e.serial}): ${e.text}`;
    case 'message.rejected':
      return e.kept === true
        ? `NOT SHOWN YET message from ${e.from} (key ${e.serial}): [${e.code}] ${e.message}; kept at the KDC, delivered again at the next connection`
        : `REJECTED message from ${e.from} (key ${e.serial}): [${e.code}] ${e.message}`;
  }
}

/** describeKeyEvent plus the connection's own events (`kds client listen`). */
export function describeListenEvent(e: ListenEvent): string {
  switch (e.event) {
    case 'connected':
      return `connected as ${e.name} (certificate ${e.serial})`;
    case 'disconnected':
      return `disconnected (${e.code}); reconnecting in ${e.retryInMs} ms`;
    case 'stopped':
      return e.code === undefined ? 'stopped' : `stopped (${e.code})`;
    default:
      return describeKeyEvent(e);
  }
}
