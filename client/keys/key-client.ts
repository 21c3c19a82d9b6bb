// The client side of key distribution (docs/keys.md) on one authenticated session: the commands
// send-key / verify-key / revoke-key / rotate-key / keys / send, which every CLI command and `listen`
// call. What the KDC pushes to us is the inbox's (key-inbox.ts); the prekey stock at the KDC is
// prekey-stock.ts's; both share this client's identity and session (key-party.ts).
//
// Local key states (client/keys/key-store.ts): a key is `pending` until the exchange is confirmed end
// to end, then `active` (the only usable state):
// - the receiver marks it active when the KDC's verdict on his digest and signature is `valid`
//   (a key is usable only once its receiver acknowledged it);
// - the sender marks it active when the KDC tells her the receiver verified it (`key.verified` push,
//   or `peerVerified` in a key.verify answer). So a relay that breaks the exchange on Bob's side
//   leaves no usable key anywhere: Bob rejects (and revokes) it, Alice's copy never leaves `pending`.
import type { KeyObject } from 'node:crypto';
import { InputError, errorFor } from '../../shared/errors.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import { runSenderExchange } from '../../shared/keys/exchange.js';
import { kdcKeyDigest } from '../../shared/keys/digest.js';
import { MAX_MESSAGE_SEQ } from '../../shared/keys/replay-window.js';
import { reservationOf } from '../../shared/keys/wire.js';
import type { KeyState } from '../../shared/keys/verdict.js';
import type { RequestBody, ResponseBody } from '../../shared/protocol/catalog.js';
import { sealMessage } from '../../shared/keys/message.js';
import { ALL_DEFENCES_ON, type Defences } from '../../shared/lab-switches.js';
import { KeyInbox, type KeyEvent } from './key-inbox.js';
import type { KeyParty, KeySession } from './key-party.js';
import {
  localState,
  newestKeyWith,
  newRecord,
  usableKey,
  verifyAtKdc,
  type VerifyKeyResult,
} from './key-records.js';
import type { ClientKeyStore, LocalKeyState, StoredKey } from './key-store.js';
import { PrekeyStock } from './prekey-stock.js';

export type { KeyEvent } from './key-inbox.js';
export type { KeySession } from './key-party.js';

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

export interface KeyListing {
  serial: string;
  mode: 'e2e' | 'kdc';
  owner: string;
  peer: string;
  /** The KDC's state of the key; the local one when the KDC was not asked (local-keys.ts). */
  state: KeyState | LocalKeyState;
  local: LocalKeyState | 'none';
  createdAt: number;
  expiresAt: number;
  peerVerified: boolean;
  fingerprint?: string;
  reason?: string;
  revokedAt?: number;
}

export class KeyClient {
  readonly name: string;
  readonly store: ClientKeyStore;
  readonly #party: KeyParty;
  readonly #prekeys: PrekeyStock;
  readonly #inbox: KeyInbox;

  constructor(opts: KeyClientOptions) {
    this.name = opts.name;
    this.store = opts.store;
    this.#party = {
      session: opts.session,
      store: opts.store,
      name: opts.name,
      certSerial: opts.certSerial,
      identityKey: opts.identityKey,
      ca: opts.ca,
      now: opts.now ?? Date.now,
      defences: opts.defences ?? ALL_DEFENCES_ON,
    };
    this.#prekeys = new PrekeyStock(this.#party);
    this.#inbox = new KeyInbox(this.#party, this.#prekeys, {
      acceptMessages: opts.acceptMessages === true,
      onEvent: opts.onEvent ?? (() => {}),
    });
  }

  /** What every session does first: publish prekeys, then take the queued notices. */
  async start(): Promise<void> {
    await this.topUpPrekeys({ housekeeping: true });
    await this.sync();
    await this.#inbox.recheckPending();
  }

  /** prekey-stock.ts: refill the stock at the KDC; `housekeeping` also deletes privates it no longer holds. */
  topUpPrekeys(opts: { housekeeping?: boolean } = {}): Promise<number> {
    return this.#prekeys.topUp(opts);
  }

  /** Ask for the queued notices until none remain, and wait until they are applied. */
  sync(): Promise<void> {
    return this.#inbox.sync();
  }

  /**
   * What a long session (listen) runs now and then: retire the keys that expired meanwhile, and the
   * prekey housekeeping start() runs (delete the privates the KDC no longer holds, top the stock up).
   */
  async housekeeping(): Promise<void> {
    await this.#inbox.retireExpired();
    await this.topUpPrekeys({ housekeeping: true });
  }

  /** Resolves once every push received so far has been processed. */
  idle(): Promise<void> {
    return this.#inbox.idle();
  }

  detach(): void {
    this.#inbox.detach();
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
      const c = await this.#party.session.request('key.create', { peer: req.to, ...extra });
      record = newRecord(this.#party.now(), {
        serial: c.serial,
        mode,
        role: 'sender',
        owner: this.name,
        peer: req.to,
        createdAt: c.createdAt,
        expiresAt: c.expiresAt,
        key: c.key,
        digest: kdcKeyDigest(c.serial, c.key),
      });
    } else {
      // Flow 1 step 1 (docs/keys.md): the peer's certificate and revocation status (refused peers fail here,
      // before a prekey is consumed).
      await this.#party.session.request('key.peer', { name: req.to });
      const r = await this.#party.session.request('key.reserve', { peer: req.to, ...extra });
      const sent = await runSenderExchange(
        { name: this.name, certSerial: this.#party.certSerial, privateKey: this.#party.identityKey },
        reservationOf(r),
        { ca: this.#party.ca, now: this.#party.now(), defences: this.#party.defences },
      );
      if (r.peer !== req.to) throw new InputError('bad_request', 'the KDC reserved a key for another peer');
      const d = await this.#party.session.request('key.deposit', { ...sent.deposit });
      if (!d.digest.equals(sent.digest)) throw errorFor('key_mismatch', 'the KDC stored another ciphertext');
      record = newRecord(this.#party.now(), {
        serial: sent.deposit.serial,
        mode,
        role: 'sender',
        owner: this.name,
        peer: req.to,
        createdAt: r.createdAt,
        expiresAt: r.expiresAt,
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

  /**
   * `kds client send-key --mode kdc --count N`: N KDC-generated keys for `to` in one key.create.batch
   * (docs/keys.md "Batches"), all or nothing; each stored `pending` as sendKey stores one.
   */
  async sendKdcKeys(req: { to: string; count: number; ttlMs?: number }): Promise<SendKeyResult[]> {
    const body: RequestBody<'key.create.batch'> = { peer: req.to, count: req.count };
    if (req.ttlMs !== undefined) body.ttl = req.ttlMs;
    const c = await this.#party.session.request('key.create.batch', body);
    if (c.peer !== req.to || c.keys.length !== req.count) {
      throw new InputError('bad_request', 'the KDC created other keys than were asked for');
    }
    return c.keys.map((k) => {
      const record = newRecord(this.#party.now(), {
        serial: k.serial,
        mode: 'kdc',
        role: 'sender',
        owner: this.name,
        peer: req.to,
        createdAt: c.createdAt,
        expiresAt: c.expiresAt,
        key: k.key,
        digest: kdcKeyDigest(k.serial, k.key),
      });
      this.store.putKey(record);
      return {
        serial: record.serial,
        mode: 'kdc' as const,
        peer: req.to,
        fingerprint: record.fingerprint,
        createdAt: record.createdAt,
        expiresAt: record.expiresAt,
        state: record.state,
      };
    });
  }

  /** `kds client verify-key`: ask the KDC for its verdict on our copy, and apply it locally. */
  async verifyKey(serial: string): Promise<VerifyKeyResult> {
    await this.idle();
    return verifyAtKdc(this.#party, serial);
  }

  /** `kds client revoke-key`: durable at the KDC before it answers; our material goes at once. */
  async revokeKey(
    serial: string,
    reason: RequestBody<'key.revoke'>['reason'],
  ): Promise<ResponseBody<'key.revoke'>> {
    const r = await this.#party.session.request('key.revoke', { serial, reason });
    this.store.retire(serial, 'revoked', { reason: r.reason, revokedAt: r.revokedAt });
    return r;
  }

  /** `kds client rotate-key`: a new key with the same peer and mode; the old one becomes superseded. */
  async rotateKey(serial: string, ttlMs?: number): Promise<SendKeyResult> {
    const old = await this.#party.session.request('key.get', { serial });
    return this.sendKey({
      to: old.owner === this.name ? old.peer : old.owner,
      mode: old.mode,
      replaces: serial,
      ...(ttlMs === undefined ? {} : { ttlMs }),
    });
  }

  /** `kds client keys`: the KDC's records of our keys, with the local state of each. */
  async listKeys(): Promise<KeyListing[]> {
    await this.idle();
    const r = await this.#party.session.request('key.list', {});
    return r.keys.map((k) => {
      const mine = this.store.getKey(k.serial);
      return {
        serial: k.serial,
        mode: k.mode,
        owner: k.owner,
        peer: k.peer,
        state: k.state,
        local: mine === undefined ? 'none' : localState(this.#party, mine).state,
        createdAt: k.createdAt,
        expiresAt: k.expiresAt,
        peerVerified: k.peerVerified,
        ...(mine === undefined ? {} : { fingerprint: mine.fingerprint }),
        ...(k.reason === undefined ? {} : { reason: k.reason }),
        ...(k.revokedAt === undefined ? {} : { revokedAt: k.revokedAt }),
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
    const rec =
      req.serial === undefined ? newestKeyWith(this.#party, req.to) : usableKey(this.#party, req.serial);
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
    const r = await this.#party.session.request('msg.send', { to: req.to, serial: rec.serial, ...sealed });
    return { serial: rec.serial, delivered: r.delivered, sentAt: r.sentAt };
  }
}
