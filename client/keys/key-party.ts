// Who this key client is and what it talks through: the parts of client/keys (the command facade in
// key-client.ts, the inbox of KDC notices in key-inbox.ts, the prekey stock in prekey-stock.ts) share
// one of these instead of reaching into each other.
import type { KeyObject } from 'node:crypto';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import type { Defences } from '../../shared/lab-switches.js';
import type { ClientSession } from '../session.js';
import type { ClientKeyStore } from './key-store.js';

/**
 * The part of a ClientSession the key client uses (tests wrap it to play a malicious relay): requests
 * typed by the catalog, so what the client reads of a reply is what its response schema validated.
 */
export type KeySession = Pick<ClientSession, 'request' | 'onPush'>;

export interface KeyParty {
  readonly session: KeySession;
  readonly store: ClientKeyStore;
  readonly name: string;
  readonly certSerial: string;
  readonly identityKey: KeyObject;
  /** The pinned root CA (the home's ca.pem). */
  readonly ca: ParsedCertificate;
  readonly now: () => number;
  /** The MITM lab's ablation switches (shared/lab-switches.ts; `--lab-disable`). */
  readonly defences: Defences;
}
