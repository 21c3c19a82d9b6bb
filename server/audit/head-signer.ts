// The KDC signs the audit chain's head (the last entry's id and hash, shared/audit/chain.ts) with its
// certificate key: at start, every AUDIT_HEAD_INTERVAL_MS while new entries arrive, and at stop. A
// signed head is what makes a rewrite of the whole chain (every hash recomputed from some entry on)
// detectable by `kds admin audit verify`; between two heads the entries are protected by their links.
import type { AsyncStoreData } from '../store/async-store.js';
import type { EventBus } from '../events/bus.js';
import { auditHeadSignedData } from '../../shared/audit/chain.js';
import type { PssSigner } from '../../shared/crypto/signer.js';

/** How often a new head is signed while entries keep arriving (nothing is signed when none did). */
const AUDIT_HEAD_INTERVAL_MS = 60_000;

export interface AuditHeadSignerOptions {
  store: Pick<AsyncStoreData, 'lastSignedAuditEntry' | 'auditTail' | 'appendAuditHead'>;
  /** RSA-PSS SHA-256 with the KDC certificate's key (pssSigner: the callback form, the thread pool). */
  sign: PssSigner;
  certSerial: string;
  events: EventBus;
  now?: () => number;
  intervalMs?: number;
}

export class AuditHeadSigner {
  readonly #opts: AuditHeadSignerOptions;
  #timer: NodeJS.Timeout | undefined;
  /** The last entry a head covers; read from the store at the first signing. */
  #signed: number | undefined;
  #running: Promise<void> | undefined;

  constructor(opts: AuditHeadSignerOptions) {
    this.#opts = opts;
  }

  start(): void {
    void this.signHead().catch(() => undefined);
    this.#timer = setInterval(() => {
      void this.signHead().catch(() => undefined);
    }, this.#opts.intervalMs ?? AUDIT_HEAD_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Sign the current head if entries were added since the last one (one signing at a time). */
  signHead(): Promise<void> {
    this.#running ??= this.#signNow().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** At stop: the last head, after every entry of this run. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
    await this.signHead();
  }

  async #signNow(): Promise<void> {
    const { store, events } = this.#opts;
    // From the index (migration 8): reading every head to find it cost 6.9 s at a year of heads.
    this.#signed ??= await store.lastSignedAuditEntry();
    const tail = await store.auditTail();
    if (tail === undefined || tail.hash === null || tail.id <= this.#signed) return;
    const head = { entryId: tail.id, hash: tail.hash, signedAt: (this.#opts.now ?? Date.now)() };
    const signature = await this.#opts.sign(auditHeadSignedData(head));
    await store.appendAuditHead({ ...head, certSerial: this.#opts.certSerial, signature });
    this.#signed = head.entryId;
    events.emit({ type: 'audit.signed', entry: head.entryId, hash: head.hash });
  }
}
