// The KDC's resumption ticket keys (docs/protocol.md "Resumption"). A ticket must open on any node of the
// KDC and after a restart, so the keys live in the store (setting `ticket_keys`), each wrapped under the
// KDC's key-encryption key (server/keys/kek.ts: the CA passphrase protects it), never in clear at rest.
//
// Rotation: a key seals tickets for ROTATE_MS, then a new one takes over; a key is kept (opens tickets)
// until every ticket it sealed has expired: ROTATE_MS + TICKET_LIFETIME_MS after its creation. Every
// REFRESH_MS a node re-reads the setting, so keys another node created are picked up. Two nodes rotating
// in the same instant may each write their own key and one write wins; the tickets sealed under the
// losing key fail to open elsewhere (`ticket_invalid`), which costs those clients one full handshake and
// never a wrong answer.
import {
  newTicketKey,
  sealTicket,
  TICKET_INVALID,
  type TicketKey,
  type TicketKeyRing,
} from '../../shared/protocol/ticket.js';
import type { KeyEncryptionKeys } from '../keys/kek.js';
import { AuthError, InternalError, PolicyError } from '../../shared/errors.js';

/** How long a ticket lives. */
const TICKET_LIFETIME_MS = 12 * 3600_000;
/**
 * How long after a full handshake its chain of resumed sessions may go on: a ticket issued to a resumed
 * session inherits the full handshake's time, and none expires later than this after it. RFC 8446
 * section 4.6.1: "It is RECOMMENDED that implementations place limits on the total lifetime of such
 * keying material; these limits should take into account the lifetime of the peer's certificate, the
 * likelihood of intervening revocation, and the time since the peer's online CertificateVerify
 * signature." Revocation is checked at every resumption; this bounds the last: 7 days, the longest
 * ticket lifetime the RFC allows.
 */
export const MAX_RESUMPTION_CHAIN_MS = 7 * 86_400_000;
/** How long one key seals new tickets. */
const ROTATE_MS = 12 * 3600_000;
/** How often a node re-reads the keys (other nodes' rotations). */
export const REFRESH_MS = 5 * 60_000;
const SETTING = 'ticket_keys';

interface StoredKey {
  id: string;
  wrapped: string;
  version: number;
  createdAt: number;
}

/** The settings the ticket keys need from the store. */
export interface TicketKeySettings {
  getSetting<T>(key: string): Promise<T | undefined>;
  setSetting(key: string, value: unknown): Promise<void>;
}

export interface TicketIdentity {
  name: string;
  serialHex: string;
  role: 'client' | 'admin';
  /** The certificate's notAfter: no ticket outlives it. */
  notAfter: number;
  /** When the full handshake behind this session proved the key (the session's own, or its ticket's). */
  authenticatedAt: number;
}

export class TicketKeys {
  readonly #store: TicketKeySettings;
  readonly #kek: KeyEncryptionKeys;
  readonly #now: () => number;
  #ring: TicketKeyRing | undefined;

  private constructor(store: TicketKeySettings, kek: KeyEncryptionKeys, now: () => number) {
    this.#store = store;
    this.#kek = kek;
    this.#now = now;
  }

  /** Load the keys, creating the first one if there is none (or the current one is due). */
  static async open(
    store: TicketKeySettings,
    kek: KeyEncryptionKeys,
    now: () => number = Date.now,
  ): Promise<TicketKeys> {
    const keys = new TicketKeys(store, kek, now);
    await keys.refresh();
    return keys;
  }

  /** The keys that open tickets now; `current` seals new ones. */
  get ring(): TicketKeyRing {
    return this.#ring!;
  }

  /** Re-read the stored keys; rotate when the current one has sealed for ROTATE_MS. */
  async refresh(): Promise<void> {
    const now = this.#now();
    await this.#kek.reload(); // a KEK version another process created since
    const live = (await this.#read()).filter((k) => now - k.createdAt < ROTATE_MS + TICKET_LIFETIME_MS);
    const newest = live.reduce<StoredKey | undefined>(
      (a, k) => (a === undefined || k.createdAt > a.createdAt ? k : a),
      undefined,
    );
    if (newest === undefined || now - newest.createdAt >= ROTATE_MS) {
      const key = newTicketKey();
      const { wrapped, version } = this.#kek.wrap(key.id.toString('hex'), key.key);
      live.push({ id: key.id.toString('hex'), wrapped: wrapped.toString('base64'), version, createdAt: now });
      await this.#store.setSetting(SETTING, { keys: live });
    }
    const opened: { key: TicketKey; createdAt: number }[] = [];
    for (const k of live) {
      try {
        const key = this.#kek.unwrap(k.id, Buffer.from(k.wrapped, 'base64'), k.version);
        opened.push({ key: { id: Buffer.from(k.id, 'hex'), key }, createdAt: k.createdAt });
      } catch {
        // A key this node cannot unwrap (a KEK version it does not have) opens nothing here.
      }
    }
    opened.sort((a, b) => b.createdAt - a.createdAt);
    const current = opened[0];
    if (current === undefined) throw new InternalError('internal', 'no usable ticket key');
    this.#ring = { current: current.key, all: opened.map((o) => o.key) };
  }

  /** A ticket for a session of `who` whose resumption secret is `psk`. */
  issue(who: TicketIdentity, psk: Buffer): { ticket: Buffer; expiresAt: number } {
    const now = this.#now();
    const expiresAt = Math.min(
      now + TICKET_LIFETIME_MS,
      who.notAfter,
      who.authenticatedAt + MAX_RESUMPTION_CHAIN_MS,
    );
    if (expiresAt <= now) {
      throw new PolicyError('forbidden', 'no ticket: the full handshake behind this session is too old');
    }
    const ticket = sealTicket(this.ring, {
      v: 1,
      name: who.name,
      serial: who.serialHex,
      role: who.role,
      notAfter: who.notAfter,
      issuedAt: now,
      expiresAt,
      psk,
      authAt: who.authenticatedAt,
    });
    return { ticket, expiresAt };
  }

  async #read(): Promise<StoredKey[]> {
    const value = await this.#store.getSetting<{ keys?: unknown }>(SETTING);
    const keys = Array.isArray(value?.keys) ? (value.keys as unknown[]) : [];
    return keys.filter(
      (k): k is StoredKey =>
        typeof k === 'object' &&
        k !== null &&
        typeof (k as StoredKey).id === 'string' &&
        /^[0-9a-f]{32}$/.test((k as StoredKey).id) &&
        typeof (k as StoredKey).wrapped === 'string' &&
        Number.isInteger((k as StoredKey).version) &&
        Number.isFinite((k as StoredKey).createdAt),
    );
  }
}

/** After a failed opening of the ticket keys, how long every use answers that failure without a retry. */
export const RETRY_OPENING_MS = 30_000;

/**
 * The ticket keys of a running KDC, opened after it started listening rather than before: opening
 * derives the KEK from the CA passphrase (scrypt, N = 2^15: ~0.1 s of CPU and 32 MiB here), a fifth
 * of what `kds server start` cost before it listened (docs/performance.md "startup"). A resumed hello or a
 * `session.ticket` request that arrives first waits for it (the same answer, later); a failed opening
 * is reported by `open()`'s caller and retried by the first use or refresh RETRY_OPENING_MS after it; a
 * resumed hello it fails is `ticket_invalid`, so that its client falls back to a full handshake.
 */
export class DeferredTicketKeys {
  readonly #open: () => Promise<TicketKeys>;
  readonly #now: () => number;
  #opening: Promise<TicketKeys> | undefined;
  #keys: TicketKeys | undefined;
  /** The last failed opening, which every use answers until RETRY_OPENING_MS have passed. */
  #failed: { at: number; err: unknown } | undefined;

  constructor(open: () => Promise<TicketKeys>, now: () => number = Date.now) {
    this.#open = open;
    this.#now = now;
  }

  /**
   * Open the keys (once; again after a failure, but not sooner than RETRY_OPENING_MS after it). An
   * opening that fails (a KEK the passphrase does not open, a store that does not answer) would fail
   * the same way at once, and each attempt costs a scrypt (~0.1-0.25 s of CPU, 32 MiB): retried by every
   * resumed hello, any peer on the network could keep a core busy with hellos that need no valid ticket.
   */
  open(): Promise<TicketKeys> {
    if (this.#keys !== undefined) return Promise.resolve(this.#keys);
    const failed = this.#failed;
    if (this.#opening === undefined && failed !== undefined && this.#now() - failed.at < RETRY_OPENING_MS) {
      return Promise.reject(failed.err);
    }
    this.#opening ??= this.#open().then(
      (keys) => {
        this.#failed = undefined;
        return (this.#keys = keys);
      },
      (err: unknown) => {
        this.#opening = undefined;
        this.#failed = { at: this.#now(), err };
        throw err;
      },
    );
    return this.#opening;
  }

  /** The ring that opens tickets: at once when the keys are open, else when they are. */
  ring(): TicketKeyRing | Promise<TicketKeyRing> {
    if (this.#keys !== undefined) return this.#keys.ring;
    return this.open().then(
      (keys) => keys.ring,
      () => {
        throw new AuthError('ticket_invalid', TICKET_INVALID);
      },
    );
  }

  async issue(who: TicketIdentity, psk: Buffer): Promise<{ ticket: Buffer; expiresAt: number }> {
    return (this.#keys ?? (await this.open())).issue(who, psk);
  }

  /** Re-read the stored keys (opens them first if that has not happened yet). */
  async refresh(): Promise<void> {
    if (this.#keys === undefined) await this.open();
    else await this.#keys.refresh();
  }
}
