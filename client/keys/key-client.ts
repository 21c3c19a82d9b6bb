// The client side of key distribution (docs/keys.md) on one authenticated session: it keeps the prekey stock
// at the KDC topped up, receives and verifies delivered keys, applies revocation notices, and offers
// send-key / verify-key / revoke-key / rotate-key / keys / send. Every CLI command and `listen` use it.
//
// Local key states (client/keys/key-store.ts): a key is `pending` until the exchange is confirmed end
// to end, then `active` (the only usable state):
// - the receiver marks it active when the KDC's verdict on his digest and signature is `valid`
//   (a key is usable only once its receiver acknowledged it);
// - the sender marks it active when the KDC tells her the receiver verified it (`key.verified` push,
//   or `peerVerified` in a key.verify answer). So a relay that breaks the exchange on Bob's side
//   leaves no usable key anywhere: Bob rejects (and revokes) it, Alice's copy never leaves `pending`.
// Notices from the KDC are processed one at a time in arrival order and acknowledged (`key.ack`) once
// applied, so a notice is never lost and a duplicate (at-least-once delivery) changes nothing. A
// delivered key is acknowledged inside its key.verify (`ack`, one request fewer per key), sent only
// once the key is stored; if we stop between that verify and storing its verdict, the key is left
// `pending` locally with its notice gone, so start() verifies such keys again.
import type { KeyObject } from 'node:crypto';
import { StateError, InputError, toKdsError, errorFor } from '../../shared/errors.js';
import { signPss } from '../../shared/crypto/rsa.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import { acceptKdcKey, runReceiverExchange, runSenderExchange } from '../../shared/keys/exchange.js';
import { kdcKeyDigest, keyFingerprint } from '../../shared/keys/digest.js';
import {
  generatePrekey,
  LAST_RESORT_PREKEY_MAX_AGE_MS,
  PREKEY_UPLOAD_GRACE_MS,
} from '../../shared/keys/prekey.js';
import { MAX_KEYS_ACCEPTED_PER_SENDER } from '../../shared/keys/quotas.js';
import { assertMessageSeq, MAX_MESSAGE_SEQ } from '../../shared/keys/replay-window.js';
import { signedContent } from '../../shared/keys/transcript.js';
import { e2eDeliveryOf, kdcDeliveryOf, reservationOf, wireBytes } from '../../shared/keys/wire.js';
import { openMessage, sealMessage } from '../../shared/keys/message.js';
import type { Verdict } from '../../shared/keys/verdict.js';
import { ALL_DEFENCES_ON, labOff, type Defences } from '../../shared/lab-switches.js';
import type { ClientKeyStore, LocalKeyState, StoredKey } from './key-store.js';

/** The part of a ClientSession the key client uses (tests wrap it to play a malicious relay). */
export interface KeySession {
  request(type: string, body: Record<string, unknown>): Promise<Record<string, unknown>>;
  onPush(type: string, fn: (body: Record<string, unknown>, type: string) => void): () => void;
}

export type KeyEvent =
  | {
      event: 'key';
      serial: string;
      from: string;
      mode: string;
      fingerprint: string;
      verdict: Verdict;
      state: LocalKeyState;
      expiresAt: number;
    }
  | { event: 'key.rejected'; serial: string; from: string; code: string; message: string }
  | { event: 'key.verified'; serial: string; peer: string; state: LocalKeyState }
  | { event: 'key.revoked'; serial: string; state: string; reason: string; revokedAt: number }
  | { event: 'message'; serial: string; from: string; text: string; sentAt: number }
  | {
      event: 'message.rejected';
      serial: string;
      from: string;
      code: string;
      message: string;
      /**
       * true: a local failure that may pass (`io_error`, `timeout`: the key store could not be read or
       * written, its counter lock stayed held); the message was NOT acknowledged, so the KDC delivers it
       * again at this client's next session. Otherwise it is refused for good (and acknowledged).
       */
      kept?: true;
    };

export interface KeyClientOptions {
  session: KeySession;
  name: string;
  certSerial: string;
  identityKey: KeyObject;
  /** The pinned root CA (the home's ca.pem). */
  ca: ParsedCertificate;
  store: ClientKeyStore;
  /** Decrypt and acknowledge `msg` pushes (listen). Other commands leave messages queued for listen. */
  acceptMessages?: boolean;
  onEvent?: (event: KeyEvent) => void;
  now?: () => number;
  /** The MITM lab's ablation switches (shared/lab-switches.ts; `--lab-disable`); default all on. */
  defences?: Defences;
}

export interface SendKeyResult {
  serial: string;
  mode: 'e2e' | 'kdc';
  peer: string;
  fingerprint: string;
  createdAt: number;
  expiresAt: number;
  state: LocalKeyState;
  replaces?: string;
}

export interface VerifyKeyResult {
  serial: string;
  verdict: Verdict;
  peerVerified: boolean;
  state: LocalKeyState | 'none';
  reason?: string;
}

export interface KeyListing {
  serial: string;
  mode: string;
  owner: string;
  peer: string;
  state: string;
  local: LocalKeyState | 'none';
  createdAt: number;
  expiresAt: number;
  peerVerified: boolean;
  fingerprint?: string;
  reason?: string;
  revokedAt?: number;
}

const ZERO_DIGEST = Buffer.alloc(32);

/** A notice handler's outcome: acknowledge it (true), leave it queued (false), or already acknowledged. */
type Handled = boolean | 'acknowledged';

/** After a prune of a sender's keys found it still at the bound, refuse without re-reading for this long. */
const SENDER_RECOUNT_MS = 10_000;

export class KeyClient {
  readonly name: string;
  readonly store: ClientKeyStore;
  readonly #session: KeySession;
  readonly #certSerial: string;
  readonly #identityKey: KeyObject;
  readonly #ca: ParsedCertificate;
  readonly #acceptMessages: boolean;
  readonly #onEvent: (event: KeyEvent) => void;
  readonly #now: () => number;
  readonly #defences: Defences;
  readonly #unsubscribe: (() => void)[] = [];
  #chain: Promise<void> = Promise.resolve();
  /** topUpPrekeys runs one at a time in this process (its housekeeping reads the store it writes). */
  #topUps: Promise<unknown> = Promise.resolve();
  /** Prekey ids whose delivery is being accepted right now: never housekept. */
  readonly #prekeysInUse = new Set<string>();
  /** A top-up asked for by `key.prekeys.low` and not started yet: further notices join it. */
  #lowTopUp: Promise<unknown> | undefined;
  /**
   * Usable keys received from each sender (built from the store on first use), for the bound on what one
   * sender can put in our home; `recountedAt`: when a prune last found the sender still at the bound.
   */
  #fromSender: Map<string, { serials: Set<string>; recountedAt: number }> | undefined;

  constructor(opts: KeyClientOptions) {
    this.name = opts.name;
    this.store = opts.store;
    this.#session = opts.session;
    this.#certSerial = opts.certSerial;
    this.#identityKey = opts.identityKey;
    this.#ca = opts.ca;
    this.#acceptMessages = opts.acceptMessages === true;
    this.#onEvent = opts.onEvent ?? (() => {});
    this.#now = opts.now ?? Date.now;
    this.#defences = opts.defences ?? ALL_DEFENCES_ON;
    const handlers: Record<string, (body: Record<string, unknown>) => Promise<Handled>> = {
      'key.delivered': (b) => this.#onDelivered(b),
      'key.revoked': (b) => this.#onRevoked(b),
      'key.verified': (b) => this.#onVerified(b),
      msg: (b) => this.#onMessage(b),
    };
    for (const [type, handle] of Object.entries(handlers)) {
      this.#unsubscribe.push(
        this.#session.onPush(type, (body) => {
          this.#chain = this.#chain.then(() => this.#process(body, handle));
        }),
      );
    }
    // Not a queued notice (no `d`): the KDC says our one-time stock runs low; refill it now, so that
    // senders keep getting one-time prekeys rather than the last-resort one.
    this.#unsubscribe.push(this.#session.onPush('key.prekeys.low', () => void this.#onPrekeysLow()));
  }

  #onPrekeysLow(): Promise<unknown> {
    this.#lowTopUp ??= this.topUpPrekeys()
      .catch(() => undefined)
      .finally(() => {
        this.#lowTopUp = undefined;
      });
    return this.#lowTopUp;
  }

  /** What every session does first: publish prekeys, then take the queued notices. */
  async start(): Promise<void> {
    await this.topUpPrekeys({ housekeeping: true });
    await this.sync();
    await this.#recheckPending();
  }

  /**
   * Received keys still `pending` whose notice is no longer queued (see the header): ask for the
   * verdict again. A key whose notice was redelivered by sync() was verified there already.
   */
  async #recheckPending(): Promise<void> {
    for (const rec of this.store.listKeys()) {
      if (rec.role === 'receiver' && rec.state === 'pending' && rec.transcriptHash !== undefined) {
        await this.#verify(rec.serial).catch(() => undefined);
      }
    }
  }

  /**
   * Keep the stock of one-time prekeys at the KDC full (privates saved locally BEFORE upload), and with
   * `housekeeping` (start() asks for it: once per session) delete the privates the KDC no longer holds
   * (see #dropOrphanedPrekeys). Returns how many were made.
   */
  topUpPrekeys(opts: { housekeeping?: boolean } = {}): Promise<number> {
    const housekeeping = opts.housekeeping === true;
    const run = this.#topUps.then(
      () => this.#topUpPrekeys(housekeeping),
      () => this.#topUpPrekeys(housekeeping),
    );
    this.#topUps = run.catch(() => undefined);
    return run;
  }

  async #topUpPrekeys(housekeeping: boolean): Promise<number> {
    const asked = this.#now();
    const status = await this.#session.request('key.prekeys', {
      prekeys: [],
      ...(housekeeping ? { listHeld: true } : {}),
    });
    if (Array.isArray(status.held)) this.#dropOrphanedPrekeys(new Set(status.held.map(String)), asked);
    const wanted = Number(status.wanted);
    const renewLastResort = this.#lastResortDue(
      typeof status.lastResort === 'string' ? status.lastResort : undefined,
    );
    if (!(wanted > 0) && !renewLastResort) return 0;
    const owner = { name: this.name, certSerial: this.#certSerial };
    const made = await Promise.all(
      Array.from({ length: Math.max(0, wanted) }, () => generatePrekey(owner, this.#identityKey)),
    );
    const lastResort = renewLastResort
      ? await generatePrekey(owner, this.#identityKey, { lastResort: true })
      : undefined;
    // Privates first, in our encrypted store, then the upload: a prekey the KDC holds always has its
    // private here (an upload that fails leaves an orphan, which housekeeping deletes later).
    for (const p of lastResort === undefined ? made : [...made, lastResort]) {
      this.store.putPrekey({
        id: p.id,
        certSerial: this.#certSerial,
        publicKey: p.publicKey.toString('base64'),
        privateKey: p.privateKey.toString('base64'),
        createdAt: this.#now(),
        ...(p.lastResort === true ? { lastResort: true as const } : {}),
      });
    }
    const wire = (p: { id: string; publicKey: Buffer; signature: Buffer }) => ({
      id: p.id,
      publicKey: p.publicKey,
      signature: p.signature,
    });
    await this.#session.request('key.prekeys', {
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
    const mine = this.store.getPrekey(heldId);
    return (
      mine === undefined ||
      mine.lastResort !== true ||
      mine.certSerial !== this.#certSerial ||
      !(mine.createdAt > this.#now() - LAST_RESORT_PREKEY_MAX_AGE_MS)
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
  #dropOrphanedPrekeys(held: ReadonlySet<string>, asked: number): number {
    let dropped = 0;
    for (const id of this.store.prekeyIds()) {
      if (held.has(id) || this.#prekeysInUse.has(id)) continue;
      const p = this.store.getPrekey(id);
      if (p === undefined || !(p.createdAt <= asked - PREKEY_UPLOAD_GRACE_MS)) continue;
      this.store.deletePrekey(id);
      dropped += 1;
    }
    return dropped;
  }

  /** Ask for the queued notices until none remain, and wait until they are applied. */
  async sync(): Promise<void> {
    for (let round = 0; round < 100; round += 1) {
      const r = await this.#session.request('key.sync', {});
      await this.idle();
      if (Number(r.remaining) === 0 || Number(r.pushed) === 0) return;
    }
  }

  /** Resolves once every push received so far has been processed. */
  async idle(): Promise<void> {
    let current: Promise<void>;
    do {
      current = this.#chain;
      await current;
    } while (current !== this.#chain);
  }

  detach(): void {
    for (const off of this.#unsubscribe.splice(0)) off();
  }

  // -- commands ----------------------------------------------------------------------------------

  /** `kds client send-key`: end-to-end (default) or KDC-generated. */
  async sendKey(req: {
    to: string;
    mode?: 'e2e' | 'kdc';
    ttlMs?: number;
    replaces?: string;
  }): Promise<SendKeyResult> {
    const mode = req.mode ?? 'e2e';
    const extra = {
      ...(req.ttlMs === undefined ? {} : { ttl: req.ttlMs }),
      ...(req.replaces === undefined ? {} : { replaces: req.replaces }),
    };
    let record: StoredKey;
    if (mode === 'kdc') {
      const c = await this.#session.request('key.create', { peer: req.to, ...extra });
      const serial = String(c.serial);
      const key = wireBytes(c.key);
      record = this.#newRecord({
        serial,
        mode,
        role: 'sender',
        owner: this.name,
        peer: req.to,
        createdAt: Number(c.createdAt),
        expiresAt: Number(c.expiresAt),
        key,
        digest: kdcKeyDigest(serial, key),
      });
    } else {
      // Flow 1 step 1 (docs/keys.md): the peer's certificate and revocation status (refused peers fail here,
      // before a prekey is consumed).
      await this.#session.request('key.peer', { name: req.to });
      const r = await this.#session.request('key.reserve', { peer: req.to, ...extra });
      const sent = await runSenderExchange(
        { name: this.name, certSerial: this.#certSerial, privateKey: this.#identityKey },
        reservationOf(r),
        { ca: this.#ca, now: this.#now(), defences: this.#defences },
      );
      if (String(r.peer) !== req.to)
        throw new InputError('bad_request', 'the KDC reserved a key for another peer');
      const d = await this.#session.request('key.deposit', { ...sent.deposit });
      if (!wireBytes(d.digest).equals(sent.digest))
        throw errorFor('key_mismatch', 'the KDC stored another ciphertext');
      record = this.#newRecord({
        serial: sent.deposit.serial,
        mode,
        role: 'sender',
        owner: this.name,
        peer: req.to,
        createdAt: Number(r.createdAt),
        expiresAt: Number(r.expiresAt),
        key: sent.key,
        digest: sent.digest,
        transcriptHash: sent.transcriptHash,
      });
    }
    this.store.putKey(record);
    if (req.replaces !== undefined)
      this.store.retire(req.replaces, 'superseded', { reason: 'superseded', revokedAt: record.createdAt });
    return {
      serial: record.serial,
      mode,
      peer: req.to,
      fingerprint: record.fingerprint,
      createdAt: record.createdAt,
      expiresAt: record.expiresAt,
      state: record.state,
      ...(req.replaces === undefined ? {} : { replaces: req.replaces }),
    };
  }

  /** `kds client verify-key`: ask the KDC for its verdict on our copy, and apply it locally. */
  async verifyKey(serial: string): Promise<VerifyKeyResult> {
    await this.idle();
    return this.#verify(serial);
  }

  /**
   * verifyKey without waiting for queued pushes (it runs inside push processing too); `ack`: delivery
   * ids the KDC forgets in the same commit (the key.delivered notice of this key, once stored).
   */
  async #verify(serial: string, ack?: number): Promise<VerifyKeyResult> {
    const rec = this.store.getKey(serial);
    const digest = rec === undefined ? ZERO_DIGEST : Buffer.from(rec.digest, 'hex');
    const body: Record<string, unknown> = { serial, digest };
    if (ack !== undefined) body.ack = [ack];
    if (
      rec !== undefined &&
      rec.role === 'receiver' &&
      rec.transcriptHash !== undefined &&
      rec.key !== undefined
    ) {
      body.signature = await signPss(
        signedContent('receiver', Buffer.from(rec.transcriptHash, 'hex'), digest),
        this.#identityKey,
      );
    }
    const v = await this.#session.request('key.verify', body);
    const verdict = v.verdict as Verdict;
    const after = rec === undefined ? undefined : this.#applyVerdict(rec, verdict, v);
    return {
      serial,
      verdict,
      peerVerified: v.peerVerified === true,
      state: after?.state ?? 'none',
      ...(typeof v.reason === 'string' ? { reason: v.reason } : {}),
    };
  }

  /** `kds client revoke-key`: durable at the KDC before it answers; our material goes at once. */
  async revokeKey(serial: string, reason: string): Promise<Record<string, unknown>> {
    const r = await this.#session.request('key.revoke', { serial, reason });
    this.store.retire(serial, 'revoked', { reason: String(r.reason), revokedAt: Number(r.revokedAt) });
    return r;
  }

  /** `kds client rotate-key`: a new key with the same peer and mode; the old one becomes superseded. */
  async rotateKey(serial: string, ttlMs?: number): Promise<SendKeyResult> {
    const old = await this.#session.request('key.get', { serial });
    const peer = old.owner === this.name ? String(old.peer) : String(old.owner);
    return this.sendKey({
      to: peer,
      mode: old.mode === 'kdc' ? 'kdc' : 'e2e',
      replaces: serial,
      ...(ttlMs === undefined ? {} : { ttlMs }),
    });
  }

  /** `kds client keys`: the KDC's records of our keys, with the local state of each. */
  async listKeys(): Promise<KeyListing[]> {
    await this.idle();
    const r = await this.#session.request('key.list', {});
    const local = new Map(this.store.listKeys().map((k) => [k.serial, k]));
    return (r.keys as Record<string, unknown>[]).map((k) => {
      const mine = local.get(String(k.serial));
      return {
        serial: String(k.serial),
        mode: String(k.mode),
        owner: String(k.owner),
        peer: String(k.peer),
        state: String(k.state),
        local: mine === undefined ? 'none' : this.#localState(mine).state,
        createdAt: Number(k.createdAt),
        expiresAt: Number(k.expiresAt),
        peerVerified: k.peerVerified === true,
        ...(mine === undefined ? {} : { fingerprint: mine.fingerprint }),
        ...(typeof k.reason === 'string' ? { reason: k.reason } : {}),
        ...(typeof k.revokedAt === 'number' ? { revokedAt: k.revokedAt } : {}),
      };
    });
  }

  /** `kds client send`: encrypt with the newest active key shared with `to` (or the given serial). */
  async sendMessage(req: {
    to: string;
    text: string;
    serial?: string;
  }): Promise<{ serial: string; delivered: number; sentAt: number }> {
    await this.idle();
    const rec = req.serial === undefined ? this.#newestKeyWith(req.to) : this.#usable(req.serial);
    if (rec.owner !== req.to && rec.peer !== req.to) {
      throw new InputError('bad_request', `key ${rec.serial} is not shared with ${req.to}`);
    }
    // The next sequence number is stored BEFORE the message leaves, under the counter's lock (two sends,
    // of this process or of two, never share one): a crash after this costs a gap, never a reused number.
    const seq = this.store.nextSentSeq(rec.serial, MAX_MESSAGE_SEQ);
    const sealed = sealMessage(
      Buffer.from(rec.key!, 'base64'),
      { serial: rec.serial, from: this.name, to: req.to, seq },
      Buffer.from(req.text, 'utf8'),
    );
    const r = await this.#session.request('msg.send', { to: req.to, serial: rec.serial, ...sealed });
    return { serial: rec.serial, delivered: Number(r.delivered), sentAt: Number(r.sentAt) };
  }

  // -- pushes ------------------------------------------------------------------------------------

  async #process(
    body: Record<string, unknown>,
    handle: (body: Record<string, unknown>) => Promise<Handled>,
  ): Promise<void> {
    let ack: Handled = true;
    try {
      ack = await handle(body);
    } catch {
      // A notice we cannot apply now (e.g. the session dropped mid-way) stays queued at the KDC.
      ack = false;
    }
    if (ack === true && typeof body.d === 'number') {
      try {
        await this.#session.request('key.ack', { ids: [body.d] });
      } catch {
        // Not acknowledged: it comes again on the next sync, and applying it twice changes nothing.
      }
    }
  }

  async #onDelivered(b: Record<string, unknown>): Promise<Handled> {
    const serial = String(b.serial);
    const from = String(b.from);
    const existing = this.store.getKey(serial);
    if (existing !== undefined && existing.state !== 'pending') return true; // a duplicate
    let record = existing;
    if (record === undefined) {
      const refusal = this.#overSenderBound(from);
      if (refusal !== undefined) {
        // Acknowledged, not kept: a KDC that enforces its bound never sends this (docs/keys.md "Quotas").
        this.#onEvent({ event: 'key.rejected', serial, from, code: refusal.code, message: refusal.message });
        return true;
      }
      try {
        record = await this.#accept(b);
        this.#fromSender?.get(from)?.serials.add(serial);
      } catch (err) {
        const e = toKdsError(err);
        this.#onEvent({ event: 'key.rejected', serial, from, code: e.code, message: e.message });
        if (
          e.code === 'bad_signature' ||
          e.code === 'bad_mac' ||
          e.code === 'bad_dh_public' ||
          e.code === 'peer_revoked'
        ) {
          // Tell the KDC (and so the sender) this exchange failed: the key must not be used by anyone.
          await this.#session
            .request('key.revoke', { serial, reason: 'keyCompromise' })
            .catch(() => undefined);
        }
        return true;
      }
    }
    // The key is stored (pending): acknowledge its notice inside the verification.
    const d = typeof b.d === 'number' ? b.d : undefined;
    const v = await this.#verify(serial, d);
    const now = this.store.getKey(serial)!;
    this.#onEvent({
      event: 'key',
      serial,
      from,
      mode: now.mode,
      fingerprint: now.fingerprint,
      verdict: v.verdict,
      state: now.state,
      expiresAt: now.expiresAt,
    });
    // A long-lived listener must not run dry: replace the prekey this sender consumed.
    if (now.mode === 'e2e') await this.topUpPrekeys().catch(() => undefined);
    return d === undefined ? true : 'acknowledged';
  }

  /** Check, decrypt and store a delivered key as `pending`. */
  async #accept(b: Record<string, unknown>): Promise<StoredKey> {
    const serial = String(b.serial);
    const me = { name: this.name, certSerial: this.#certSerial, privateKey: this.#identityKey };
    const common = {
      serial,
      role: 'receiver' as const,
      owner: String(b.from),
      peer: this.name,
      createdAt: Number(b.createdAt),
      expiresAt: Number(b.expiresAt),
    };
    if (b.mode === 'kdc') {
      const r = await acceptKdcKey(me, kdcDeliveryOf(b));
      const rec = this.#newRecord({
        ...common,
        mode: 'kdc',
        key: r.key,
        digest: r.digest,
        transcriptHash: r.transcriptHash,
      });
      this.store.putKey(rec);
      return rec;
    }
    const delivery = e2eDeliveryOf(b);
    const prekeyId = delivery.prekeyId;
    this.#prekeysInUse.add(prekeyId);
    try {
      return await this.#acceptE2e(me, common, delivery);
    } finally {
      this.#prekeysInUse.delete(prekeyId);
    }
  }

  async #acceptE2e(
    me: { name: string; certSerial: string; privateKey: KeyObject },
    common: {
      serial: string;
      role: 'receiver';
      owner: string;
      peer: string;
      createdAt: number;
      expiresAt: number;
    },
    delivery: ReturnType<typeof e2eDeliveryOf>,
  ): Promise<StoredKey> {
    const prekeyId = delivery.prekeyId;
    const prekey = this.store.getPrekey(prekeyId);
    if (prekey === undefined)
      throw new StateError('not_found', 'the prekey of this delivery is unknown or already used');
    const r = await runReceiverExchange(
      me,
      delivery,
      {
        id: prekey.id,
        certSerial: prekey.certSerial,
        publicKey: Buffer.from(prekey.publicKey, 'base64'),
        privateKey: Buffer.from(prekey.privateKey, 'base64'),
      },
      { ca: this.#ca, now: this.#now(), defences: this.#defences },
    );
    const rec = this.#newRecord({
      ...common,
      mode: 'e2e',
      key: r.key,
      digest: r.digest,
      transcriptHash: r.transcriptHash,
    });
    this.store.putKey(rec);
    // One-time: the private half is gone once used. The last-resort one serves every exchange made while
    // the stock was empty; it goes when it is replaced and no longer held (housekeeping).
    if (prekey.lastResort !== true) this.store.deletePrekey(prekeyId);
    return rec;
  }

  /**
   * The bound on what one sender can put in our home: refuse a new key from `from` while we hold
   * MAX_KEYS_ACCEPTED_PER_SENDER usable (pending or active, unexpired) keys received from it. Counted in
   * memory; at the bound the sender's keys are re-read once (some may have been revoked or expired since),
   * and a sender still at the bound is refused without re-reading for SENDER_RECOUNT_MS.
   */
  #overSenderBound(from: string): { code: 'quota_exceeded'; message: string } | undefined {
    if (this.#fromSender === undefined) {
      this.#fromSender = new Map();
      for (const k of this.store.listKeys()) {
        if (k.role === 'receiver' && this.#usableState(k)) this.#senderEntry(k.owner).serials.add(k.serial);
      }
    }
    const entry = this.#senderEntry(from);
    if (entry.serials.size < MAX_KEYS_ACCEPTED_PER_SENDER) return undefined;
    const now = this.#now();
    if (now - entry.recountedAt >= SENDER_RECOUNT_MS) {
      for (const serial of entry.serials) {
        const k = this.store.getKey(serial);
        if (k === undefined || !this.#usableState(k)) entry.serials.delete(serial);
      }
      if (entry.serials.size < MAX_KEYS_ACCEPTED_PER_SENDER) return undefined;
      entry.recountedAt = now;
    }
    return {
      code: 'quota_exceeded',
      message: `${from} already gave us ${entry.serials.size} usable keys (at most ${MAX_KEYS_ACCEPTED_PER_SENDER}); this one is refused`,
    };
  }

  #senderEntry(from: string): { serials: Set<string>; recountedAt: number } {
    let entry = this.#fromSender!.get(from);
    if (entry === undefined) {
      entry = { serials: new Set(), recountedAt: -Infinity };
      this.#fromSender!.set(from, entry);
    }
    return entry;
  }

  #usableState(k: StoredKey): boolean {
    return (k.state === 'pending' || k.state === 'active') && k.expiresAt > this.#now();
  }

  async #onRevoked(b: Record<string, unknown>): Promise<boolean> {
    const serial = String(b.serial);
    const state = b.state === 'superseded' ? 'superseded' : 'revoked';
    const info = { reason: String(b.reason), revokedAt: Number(b.revokedAt) };
    this.store.retire(serial, state, info);
    this.#onEvent({ event: 'key.revoked', serial, state, ...info });
    return true;
  }

  async #onVerified(b: Record<string, unknown>): Promise<boolean> {
    const serial = String(b.serial);
    const rec = this.store.getKey(serial);
    if (rec !== undefined && rec.state === 'pending' && rec.role === 'sender' && rec.key !== undefined) {
      this.store.putKey({ ...rec, state: 'active', updatedAt: this.#now() });
    }
    const after = this.store.getKey(serial);
    this.#onEvent({ event: 'key.verified', serial, peer: rec?.peer ?? '', state: after?.state ?? 'pending' });
    return true;
  }

  async #onMessage(b: Record<string, unknown>): Promise<boolean> {
    if (!this.#acceptMessages) return false; // left queued for `kds client listen`
    const serial = String(b.serial);
    const from = String(b.from);
    try {
      if (b.to !== this.name) throw new InputError('bad_request', 'a message for someone else');
      const seq = assertMessageSeq(b.seq);
      const rec = this.#usable(serial);
      if (from !== rec.owner && from !== rec.peer) throw new StateError('not_found', 'no such key');
      const text = openMessage(
        Buffer.from(rec.key!, 'base64'),
        { serial, from, to: this.name, seq },
        { nonce: wireBytes(b.nonce), ciphertext: wireBytes(b.ciphertext) },
      );
      // `seq` is authentic now (it is in the AAD). Refuse it if already accepted (`replayed`), and make
      // the acceptance durable BEFORE showing the text: a crash after this line cannot show it twice.
      // (Under the window's lock: a second `listen` of this client cannot lose this update either.)
      // LAB SWITCH replay-window: a message number already accepted under this key is accepted again.
      if (!labOff(this.#defences, 'replay-window')) this.store.acceptReceivedSeq(serial, seq);
      this.#onEvent({
        event: 'message',
        serial,
        from,
        text: text.toString('utf8'),
        sentAt: Number(b.sentAt),
      });
    } catch (err) {
      const e = toKdsError(err);
      // Acknowledging would drop the message at the KDC: only for what no retry can change (a forged,
      // replayed or unknown-key message). A store that could not be read or written keeps it queued.
      const kept = e.code === 'io_error' || e.code === 'timeout';
      this.#onEvent({
        event: 'message.rejected',
        serial,
        from,
        code: e.code,
        message: e.message,
        ...(kept ? { kept: true as const } : {}),
      });
      return !kept;
    }
    return true;
  }

  // -- local state -------------------------------------------------------------------------------

  #applyVerdict(rec: StoredKey, verdict: Verdict, v: Record<string, unknown>): StoredKey | undefined {
    const reason = typeof v.reason === 'string' ? v.reason : undefined;
    const revokedAt = typeof v.revokedAt === 'number' ? v.revokedAt : undefined;
    const info = {
      ...(reason === undefined ? {} : { reason }),
      ...(revokedAt === undefined ? {} : { revokedAt }),
    };
    switch (verdict) {
      case 'valid': {
        const confirmed = rec.role === 'receiver' || v.peerVerified === true;
        if (confirmed && rec.state === 'pending' && rec.key !== undefined) {
          this.store.putKey({ ...rec, state: 'active', updatedAt: this.#now() });
        }
        return this.store.getKey(rec.serial);
      }
      case 'revoked':
        return this.store.retire(rec.serial, v.state === 'superseded' ? 'superseded' : 'revoked', info);
      case 'expired':
        return this.store.retire(rec.serial, 'expired', info);
      case 'mismatch':
        // Fail closed: what the KDC holds is not what we hold, so nobody can vouch for this key.
        return this.store.retire(rec.serial, 'mismatch', { reason: 'digest mismatch' });
      case 'not_found':
        return rec;
    }
  }

  /** The local record with expiry applied. */
  #localState(rec: StoredKey): StoredKey {
    if ((rec.state === 'active' || rec.state === 'pending') && rec.expiresAt <= this.#now()) {
      return this.store.retire(rec.serial, 'expired', { revokedAt: rec.expiresAt }) ?? rec;
    }
    return rec;
  }

  /** A key we may encrypt or decrypt with: present, active, unexpired. */
  #usable(serial: string): StoredKey {
    const found = this.store.getKey(serial);
    if (found === undefined) throw new StateError('not_found', 'no such key in this client');
    const rec = this.#localState(found);
    if (rec.state === 'revoked' || rec.state === 'superseded' || rec.state === 'mismatch') {
      throw new StateError('key_revoked', `key ${serial} is ${rec.state}`);
    }
    if (rec.state === 'expired') throw new StateError('key_expired', `key ${serial} has expired`);
    if (rec.state !== 'active' || rec.key === undefined) {
      throw new StateError('key_unverified', `key ${serial} is not verified yet by its receiver`);
    }
    return rec;
  }

  #newestKeyWith(peer: string): StoredKey {
    const shared = this.store
      .listKeys()
      .filter((k) => k.owner === peer || k.peer === peer)
      .map((k) => this.#localState(k));
    const active = shared.filter((k) => k.state === 'active' && k.key !== undefined);
    if (active.length > 0) return active[active.length - 1]!;
    if (shared.some((k) => k.state === 'pending')) {
      throw new StateError(
        'key_unverified',
        `the key shared with ${peer} is not verified yet by its receiver`,
      );
    }
    throw new StateError(
      'not_found',
      `no active key shared with ${peer}: run kds client send-key --to ${peer}`,
    );
  }

  #newRecord(r: {
    serial: string;
    mode: 'e2e' | 'kdc';
    role: 'sender' | 'receiver';
    owner: string;
    peer: string;
    createdAt: number;
    expiresAt: number;
    key: Buffer;
    digest: Buffer;
    transcriptHash?: Buffer;
  }): StoredKey {
    return {
      serial: r.serial,
      mode: r.mode,
      role: r.role,
      owner: r.owner,
      peer: r.peer,
      state: 'pending',
      createdAt: r.createdAt,
      expiresAt: r.expiresAt,
      digest: r.digest.toString('hex'),
      fingerprint: keyFingerprint(r.key),
      ...(r.transcriptHash === undefined ? {} : { transcriptHash: r.transcriptHash.toString('hex') }),
      key: r.key.toString('base64'),
      updatedAt: this.#now(),
    };
  }
}
