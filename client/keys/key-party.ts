// Who this key client is and what it talks through: the parts of client/keys (the command facade in
// key-client.ts, the inbox of KDC notices in key-inbox.ts, the prekey stock in prekey-stock.ts) share
// one of these instead of reaching into each other.
import type { KeyObject } from 'node:crypto';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import type { Defences } from '../../shared/lab-switches.js';
import type { ClientKeyStore } from './key-store.js';

/** The part of a ClientSession the key client uses (tests wrap it to play a malicious relay). */
export interface KeySession {
  request(type: string, body: Record<string, unknown>): Promise<Record<string, unknown>>;
  onPush(type: string, fn: (body: Record<string, unknown>, type: string) => void): () => void;
}

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
