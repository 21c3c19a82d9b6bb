// What every part of the KDC's key service shares (server/keys/service.ts builds one per service): its
// collaborators (store, CA, live sessions, clock, limits, lab switches, node name), the KEK ring opened
// on first use, the certificate cache, and the three writes-and-pushes every part makes the same way:
// queue a notice (announced to the other nodes), append an audit row, push committed notices to the
// recipients' live sessions. One copy here, so the parts cannot drift apart in how they queue or push.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { AuthError } from '../../shared/errors.js';
import { ALL_DEFENCES_ON, type Defences } from '../../shared/lab-switches.js';
import { pemToDer } from '../../shared/pki/pem.js';
import type { DeliveryKind, DeliveryRecord } from '../store/store.js';
import type { AsyncStore, AsyncStoreTx } from '../store/async-store.js';
import { KeyCreationRate } from './creation-rate.js';
import { buildPush, DELIVERY_CHANNEL, encodeAnnouncement, type Push } from './deliveries.js';
import { KeyEncryptionKeys } from './kek.js';
import { DEFAULT_KEY_LIMITS, type KeyLimits } from './key-quotas.js';

/** Who is calling (the session's authenticated identity). */
export interface Caller {
  name: string;
  serialHex: string;
  role: string;
}

/** What the service needs from the CA (server/ca/authority.ts CertificateAuthority satisfies it). */
export interface RevocationSource {
  revocationOf(serialHex: string): { reason: string; revokedAt: number } | undefined;
}

/** Live sessions by identity name (server/kdc/session-table.ts SessionTable satisfies it). */
export interface LiveSessions {
  byName(
    name: string,
  ): { push(type: string, body: Record<string, unknown>): void; readonly closed: boolean }[];
}

export interface KeyServiceOptions {
  store: AsyncStore;
  ca: RevocationSource;
  sessions: LiveSessions;
  dataDir: string;
  /** The CA passphrase that protects the KEK files; asked for only when a KEK is first needed. */
  passphrase: () => string;
  /** Opens the KEK ring (the KDC shares one with its ticket keys); default KeyEncryptionKeys.open. */
  openKek?: () => Promise<KeyEncryptionKeys>;
  now?: () => number;
  /** Most pushes one key.sync sends (the client asks again while `remaining` > 0). */
  syncBatch?: number;
  /** The per-peer bounds (default DEFAULT_KEY_LIMITS; tests and special deployments may change them). */
  limits?: Partial<KeyLimits>;
  /** The MITM lab's ablation switches (shared/lab-switches.ts); default every defence on. */
  defences?: Defences;
  /**
   * This node's name among the KDC nodes sharing the store (PostgreSQL): every queued notice is then
   * also announced on DELIVERY_CHANNEL, in its transaction, for the node holding the recipient's
   * session (pushAnnounced). Unset (one node, SQLite): nothing is announced.
   */
  node?: string;
}

/**
 * key.reserve / key.create. `ack`: the caller's delivery ids to acknowledge in the same commit (as
 * key.ack), e.g. a sender's key.verified notices of earlier keys; applied only if the request succeeds
 * (otherwise they stay queued and come again: delivery is at-least-once).
 */
export interface NewKeyRequest {
  peer: string;
  ttl?: number;
  replaces?: string;
  ack?: readonly number[];
}

export class KeyContext {
  readonly store: AsyncStore;
  readonly ca: RevocationSource;
  readonly sessions: LiveSessions;
  readonly syncBatch: number;
  readonly limits: KeyLimits;
  readonly creation: KeyCreationRate;
  readonly defences: Defences;
  readonly node: string | undefined;
  readonly #now: () => number;
  readonly #dataDir: string;
  readonly #passphrase: () => string;
  readonly #openKek: (() => Promise<KeyEncryptionKeys>) | undefined;
  #kek: Promise<KeyEncryptionKeys> | undefined;
  #kekReady: KeyEncryptionKeys | undefined;
  /** Certificates by serial: the imported public key and the DER, for signature checks and e2e pushes. */
  readonly #certs = new Map<string, { key: KeyObject; der: Buffer }>();

  constructor(opts: KeyServiceOptions) {
    this.store = opts.store;
    this.ca = opts.ca;
    this.sessions = opts.sessions;
    this.#dataDir = opts.dataDir;
    this.#passphrase = opts.passphrase;
    this.#openKek = opts.openKek;
    this.#now = opts.now ?? Date.now;
    this.syncBatch = opts.syncBatch ?? 256;
    this.limits = { ...DEFAULT_KEY_LIMITS, ...opts.limits };
    this.creation = new KeyCreationRate(this.limits.creation, () => this.now());
    this.defences = opts.defences ?? ALL_DEFENCES_ON;
    this.node = opts.node;
  }

  now(): number {
    return this.#now();
  }

  /** The KEK ring, opened (or created) on first use. */
  kek(): Promise<KeyEncryptionKeys> {
    if (this.#kek === undefined) {
      const opening = this.#openKek?.() ?? KeyEncryptionKeys.open(this.#dataDir, this.#passphrase());
      this.#kek = opening.then((ring) => {
        this.#kekReady = ring;
        return ring;
      });
      this.#kek.catch(() => {
        this.#kek = undefined; // a wrong passphrase must not poison every later attempt
      });
    }
    return this.#kek;
  }

  /** The KEK ring if it is open already (pushes never open it themselves). */
  kekReady(): KeyEncryptionKeys | undefined {
    return this.#kekReady;
  }

  /** Open the KEK ring if one of these keys is KDC-generated (its push carries the unwrapped key). */
  async kekIfKdcKeys(serials: string[]): Promise<void> {
    for (const serial of serials) {
      if ((await this.store.getSymKey(serial))?.mode === 'kdc') {
        await this.kek();
        return;
      }
    }
  }

  async certificateKey(serialHex: string): Promise<KeyObject> {
    return (await this.certificate(serialHex)).key;
  }

  /**
   * A certificate's public key and DER by serial, cached: a certificate's content never changes (its
   * status does, and every caller checks revocation through the CA separately).
   */
  async certificate(serialHex: string): Promise<{ key: KeyObject; der: Buffer }> {
    let entry = this.#certs.get(serialHex);
    if (entry === undefined) {
      const cert = await this.store.getCertificate(serialHex);
      if (cert?.pem === null || cert?.pem === undefined)
        throw new AuthError('bad_signature', 'signature verification failed');
      // createPublicKey takes the certificate's SubjectPublicKeyInfo.
      entry = { key: createPublicKey(cert.pem), der: pemToDer(cert.pem, 'CERTIFICATE') };
      if (this.#certs.size > 4096) this.#certs.clear();
      this.#certs.set(serialHex, entry);
    }
    return entry;
  }

  /** `sender`: the client whose quota the notice counts against (null: the KDC or the admin). */
  async enqueue(
    tx: AsyncStoreTx,
    recipient: string,
    kind: DeliveryKind,
    keySerial: string,
    payload: Buffer | null,
    sender: string | null,
  ): Promise<DeliveryRecord> {
    const delivery = { recipient, kind, keySerial, payload, sender, createdAt: this.now() };
    const id = await tx.enqueueDelivery(delivery);
    if (this.node !== undefined)
      await tx.notify(DELIVERY_CHANNEL, encodeAnnouncement({ node: this.node, id, recipient }));
    return { ...delivery, id };
  }

  /** Audit rows name serials, parties, reasons: never key material (the store refuses secret-looking keys). */
  async audit(
    tx: AsyncStoreTx,
    actor: string,
    action: string,
    subject: string,
    detail: Record<string, unknown>,
  ): Promise<void> {
    await tx.appendAudit({ at: this.now(), actor, action, subject, detail });
  }

  hasLiveSession(name: string): boolean {
    return this.sessions.byName(name).some((s) => !s.closed);
  }

  /**
   * After commit: push each queued delivery to its recipient's live sessions. Returns sessions reached.
   * A row is a queued delivery (its push rebuilt from the store) or a push built from the data in hand
   * by the request that just committed it (no second read of the record, no second unwrap).
   */
  async pushAll(rows: readonly (DeliveryRecord | Push)[]): Promise<number> {
    let reached = 0;
    for (const row of rows) {
      const sessions = this.sessions.byName(row.recipient).filter((s) => !s.closed);
      if (sessions.length === 0) continue;
      const p = 'body' in row ? row : await buildPush(row, this.store, () => this.#kekReady);
      if (p === undefined) continue;
      for (const session of sessions) {
        // The change is committed and the notice queued: a push that fails (a socket closing right now)
        // must not turn the acknowledged request into an error. The queue redelivers it on key.sync.
        try {
          session.push(p.type, p.body);
          reached += 1;
        } catch {
          // left to the queue
        }
      }
    }
    return reached;
  }
}
