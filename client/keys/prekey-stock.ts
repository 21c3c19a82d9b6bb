// This client's one-time prekeys at the KDC (docs/keys.md "Prekeys", "Prekey housekeeping"): keep the
// stock full, renew the last-resort prekey, and delete the privates the KDC no longer holds. Privates
// are saved in the encrypted key store BEFORE their upload, so a prekey the KDC holds always has its
// private here.
import {
  generatePrekey,
  LAST_RESORT_PREKEY_MAX_AGE_MS,
  MAX_PREKEY_STOCK,
  PREKEY_UPLOAD_GRACE_MS,
} from '../../shared/keys/prekey.js';
import type { KeyParty } from './key-party.js';

export class PrekeyStock {
  readonly #party: KeyParty;
  /** topUp runs one at a time in this process (its housekeeping reads the store it writes). */
  #topUps: Promise<unknown> = Promise.resolve();
  /** Prekey ids whose delivery is being accepted right now: never housekept. */
  readonly #inUse = new Set<string>();
  /** A top-up asked for by `key.prekeys.low` and not started yet: further notices join it. */
  #lowTopUp: Promise<unknown> | undefined;

  constructor(party: KeyParty) {
    this.#party = party;
  }

  /** Keep `id` from housekeeping while `use` runs (a delivery made with it is being accepted). */
  async using<T>(id: string, use: () => Promise<T>): Promise<T> {
    this.#inUse.add(id);
    try {
      return await use();
    } finally {
      this.#inUse.delete(id);
    }
  }

  /** The KDC says our one-time stock runs low (`key.prekeys.low`): refill it now, once. */
  onLow(): Promise<unknown> {
    this.#lowTopUp ??= this.topUp()
      .catch(() => undefined)
      .finally(() => {
        this.#lowTopUp = undefined;
      });
    return this.#lowTopUp;
  }

  /**
   * Keep the stock of one-time prekeys at the KDC full (privates saved locally BEFORE upload), and with
   * `housekeeping` (start() asks for it: once per session) delete the privates the KDC no longer holds
   * (see #dropOrphans). Returns how many were made.
   */
  topUp(opts: { housekeeping?: boolean } = {}): Promise<number> {
    const housekeeping = opts.housekeeping === true;
    const run = this.#topUps.then(
      () => this.#topUp(housekeeping),
      () => this.#topUp(housekeeping),
    );
    this.#topUps = run.catch(() => undefined);
    return run;
  }

  async #topUp(housekeeping: boolean): Promise<number> {
    const { session, store, name, certSerial, identityKey, now } = this.#party;
    const asked = now();
    const status = await session.request('key.prekeys', {
      prekeys: [],
      ...(housekeeping ? { listHeld: true } : {}),
    });
    if (status.held !== undefined) this.#dropOrphans(new Set(status.held), asked);
    // The schema bounds `wanted` on the wire (MAX_PREKEY_STOCK); what a session hands us is bounded
    // again here, so no reply can make this client generate, sign and store more than one upload holds.
    const wanted = Math.min(status.wanted, MAX_PREKEY_STOCK);
    const renewLastResort = this.#lastResortDue(status.lastResort);
    if (!(wanted > 0) && !renewLastResort) return 0;
    const owner = { name, certSerial };
    const made = await Promise.all(
      Array.from({ length: Math.max(0, wanted) }, () => generatePrekey(owner, identityKey)),
    );
    const lastResort = renewLastResort
      ? await generatePrekey(owner, identityKey, { lastResort: true })
      : undefined;
    // Privates first, in our encrypted store, then the upload: a prekey the KDC holds always has its
    // private here (an upload that fails leaves an orphan, which housekeeping deletes later).
    for (const p of lastResort === undefined ? made : [...made, lastResort]) {
      store.putPrekey({
        id: p.id,
        certSerial,
        publicKey: p.publicKey.toString('base64'),
        privateKey: p.privateKey.toString('base64'),
        createdAt: now(),
        ...(p.lastResort === true ? { lastResort: true as const } : {}),
      });
    }
    const wire = (p: { id: string; publicKey: Buffer; signature: Buffer }) => ({
      id: p.id,
      publicKey: p.publicKey,
      signature: p.signature,
    });
    await session.request('key.prekeys', {
      prekeys: made.map(wire),
      ...(lastResort === undefined ? {} : { lastResort: wire(lastResort) }),
    });
    return made.length;
  }

  /**
   * Does the KDC need a new last-resort prekey from us? Yes when it holds none for our certificate,
   * when ours of that id is not in our store (another home, a lost file: nobody could open exchanges
   * made with it), or when it is older than LAST_RESORT_PREKEY_MAX_AGE_MS (rotation: bounds how long one
   * private opens exchanges, docs/keys.md "Last-resort prekey").
   */
  #lastResortDue(heldId: string | undefined): boolean {
    if (heldId === undefined) return true;
    const mine = this.#party.store.getPrekey(heldId);
    return (
      mine === undefined ||
      mine.lastResort !== true ||
      mine.certSerial !== this.#party.certSerial ||
      !(mine.createdAt > this.#party.now() - LAST_RESORT_PREKEY_MAX_AGE_MS)
    );
  }

  /**
   * Prekey housekeeping (docs/keys.md): the KDC's status reply lists every prekey id of ours it still
   * holds (stock, open reservations, queued deliveries). A private that is not listed can never be
   * needed again (its public half was never stocked, or was claimed by a reservation that expired, or
   * dropped with an older certificate, or its key was delivered and acknowledged), so it is key material
   * kept longer than needed: delete it, unless it is being used right now or was saved less than
   * PREKEY_UPLOAD_GRACE_MS before we asked (its upload may still be in flight). A file that does not
   * open with this identity is not ours to judge and stays.
   */
  #dropOrphans(held: ReadonlySet<string>, asked: number): number {
    const { store } = this.#party;
    let dropped = 0;
    for (const id of store.prekeyIds()) {
      if (held.has(id) || this.#inUse.has(id)) continue;
      const p = store.getPrekey(id);
      if (p === undefined || !(p.createdAt <= asked - PREKEY_UPLOAD_GRACE_MS)) continue;
      store.deletePrekey(id);
      dropped += 1;
    }
    return dropped;
  }
}
