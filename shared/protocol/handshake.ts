// The kds v1 handshake (docs/protocol.md, "Handshake"): a SIGMA-style authenticated ephemeral
// Diffie-Hellman in one round trip, shaped like TLS 1.3 (RFC 8446 section 4.4):
//
//   client_hello  {v, mode, groups, group, nonce, share}                         C -> S
//   server_hello  {v, group, nonce, share, cert, sig, mac}                       S -> C
//   client_finish {cert, sig, mac} | {mac} (enroll) | {name, mac} (insecure)     C -> S
//
// and its resumed form (mode `resume`: no certificate, no signature, a fresh DH all the same):
//
//   client_hello  {v, mode, groups, group, nonce, share, ticket, binder}           C -> S
//   server_hello  {v, group, nonce, share, mac}                                    S -> C
//   client_finish {mac}                                                            C -> S
//
// Two pure state machines, ClientHandshake and ServerHandshake: bytes in, bytes out, no I/O. The caller
// (client/session.ts, server/kdc) moves the frames and supplies the policy callbacks: the certificate
// checks (chain, validity, usage, revocation) and the RSA-PSS signer for its own key.
//
// Checks run in a fixed order, cheapest and shape first, and the peer's data is used only once the
// step that authenticates it has passed (docs/protocol.md lists the order and each error code).
// Any failure throws a KdsError and leaves the object dead: a handshake is never resumed.
import { equalBytes } from '../crypto/ct.js';
import { DH_GROUPS, generateDhKeyPair, isDhGroup, type DhGroup, type DhKeyPair } from '../crypto/dh.js';
import { hmacSha256 } from '../crypto/hash.js';
import { publicRandomBytes } from '../crypto/random.js';
import type { KeyObject } from 'node:crypto';
import { toPublicKey, verifyPssAsync } from '../crypto/rsa.js';
import { PSS_SHA256, requireScheme, type PssSigner } from '../crypto/signer.js';
import { KdsError, InputError, PolicyError, AuthError, ProtocolError, toKdsError } from '../errors.js';
import { parseCertificate as parsePkiCertificate, type ParsedCertificate } from '../pki/x509.js';
import { encodeValue, type LabDecodeLimits } from './codec.js';
import { ALL_DEFENCES_ON, labOff, type Defences } from '../lab-switches.js';
import {
  binderKey,
  deriveHandshakeKeys,
  deriveTrafficKeys,
  resumptionIkm,
  type HandshakeKeys,
} from './key-schedule.js';
import { LAB_MAX_FRAME_BYTES, NONCE_BYTES, PROTOCOL_VERSION } from './limits.js';
import {
  ClientFinishCoreSchema,
  ClientHelloCoreSchema,
  decodeFrameWithLayout,
  encodeFrame,
  errorFromWire,
  ServerHelloCoreSchema,
  type ClientFinish,
  type ClientHello,
  type DecodedFrame,
  type HandshakeMode,
  type ServerHello,
} from './messages.js';
import { ClientChannel, ServerChannel } from './secure-channel.js';
import { openTicket, TICKET_INVALID, type TicketContents, type TicketKeyRing } from './ticket.js';
import { canonicalize } from './schema.js';
import {
  appendEntries,
  frameWithout,
  frameWithoutParts,
  signatureInput,
  transcriptHash,
} from './transcript.js';

export type { HandshakeMode } from './messages.js';

/** Verifies the peer's RSA-PSS signature with the key of its (already checked) certificate. */
export type SignatureVerifier = (
  data: Buffer,
  signature: Buffer,
  cert: ParsedCertificate,
) => boolean | Promise<boolean>;
/** Refuses a peer certificate by throwing a KdsError (cert_unknown_issuer, cert_revoked, ...). */
export type CertificateCheck = (cert: ParsedCertificate, mode: HandshakeMode) => void | Promise<void>;

export interface HandshakeCredentials {
  certificateDer: Buffer;
  /** RSA-PSS with the certificate's key (shared/crypto/signer.ts pssSigner). */
  sign: PssSigner;
}

export interface CommonHandshakeOptions {
  /** Default: shared/pki parseCertificate. Servers pass one that caches by fingerprint. */
  parseCertificate?: (der: Buffer) => ParsedCertificate;
  /**
   * Default: verifyPssAsync(data, signature, cert.publicKeyPem) (on the thread pool: the signature came
   * from the network). Must use salt length 32 explicitly.
   */
  verifySignature?: SignatureVerifier;
  /** Records per direction for the resulting channel (default SEQUENCE_LIMIT). */
  sequenceLimit?: number;
  /**
   * The MITM lab's ablation switches (shared/lab-switches.ts), for this handshake and its channel.
   * Default ALL_DEFENCES_ON. An 'enroll' handshake always runs with every defence on.
   */
  defences?: Defences;
  /** Fixed nonce and ephemeral private key: protocol test vectors ONLY. */
  testing?: { nonce?: Buffer; dhPrivateKey?: Buffer };
}

export interface ClientHandshakeOptions extends CommonHandshakeOptions {
  mode: HandshakeMode;
  /** Offered groups, in preference order (default ['x25519', 'ffdhe2048']). */
  groups?: readonly DhGroup[];
  /** The group of the key share sent (default groups[0]); must be one of `groups`. */
  group?: DhGroup;
  /** Required in 'auth'. */
  credentials?: HandshakeCredentials;
  /** 'insecure' only: the name claimed (unauthenticated). */
  name?: string;
  /** Required unless 'insecure' or 'resume': chain to the pinned root, validity, serverAuth. */
  checkServerCertificate?: CertificateCheck;
  /** Required in 'resume': the ticket and its secret, from an earlier session's `session.ticket`. */
  resumption?: { ticket: Buffer; psk: Buffer };
}

export interface ServerHandshakeOptions extends CommonHandshakeOptions {
  /** Supported groups (default both). */
  groups?: readonly DhGroup[];
  credentials: HandshakeCredentials;
  /** Chain, validity, clientAuth, revocation: run for every 'auth' handshake. */
  checkClientCertificate: CertificateCheck;
  /** Accept the MITM lab's unauthenticated mode (default false: insecure_refused). */
  allowInsecure?: boolean;
  /** Accept anonymous clients that only enroll (default true). */
  allowEnroll?: boolean;
  /**
   * Accept resumed sessions (absent: every `resume` hello is `ticket_invalid`, and the client falls back
   * to a full handshake). `keys` opens tickets; `check` refuses the ticket's identity by throwing (the
   * certificate revoked, expired or superseded since), exactly as checkClientCertificate would. `keys`
   * may answer later (a KDC derives them after it started listening, server/kdc/ticket-keys.ts).
   */
  resumption?: {
    keys: () => TicketKeyRing | Promise<TicketKeyRing>;
    check: (ticket: TicketContents) => void | Promise<void>;
    now?: () => number;
  };
}

export interface HandshakeResult {
  mode: HandshakeMode;
  group: DhGroup;
  cipher: 'AES-256-GCM';
  /** Hex of the 16-byte session id from the key schedule. */
  sessionId: string;
  /** TH_final: SHA-256 over the three handshake messages as sent. */
  transcriptHash: Buffer;
  /** 'auth' and 'resume': the psk of the ticket this session may issue (docs/protocol.md "Resumption"). */
  resumptionSecret?: Buffer;
}

export interface ClientHandshakeResult extends HandshakeResult {
  /** The server's certificate ('auth' and 'enroll'). */
  serverCertificate?: ParsedCertificate;
  channel: ClientChannel;
}

export interface ServerHandshakeResult extends HandshakeResult {
  /** The client's certificate, checked and proven ('auth' only). */
  clientCertificate?: ParsedCertificate;
  /** 'insecure' only: whatever name the client claimed. NOT authenticated. */
  claimedName?: string;
  /** 'resume' only: the ticket's identity (proven by the binder and the Finished MAC), without its psk. */
  resumed?: Omit<TicketContents, 'psk'>;
  channel: ServerChannel;
}

const SIGNATURE_FAILED = 'signature verification failed';
const BINDER_FAILED = 'resumption binder verification failed';
const MAC_FAILED = 'MAC verification failed';

// Imported public keys per parsed certificate: importing a PEM costs more than the RSA verification
// itself, and servers cache ParsedCertificate objects by fingerprint, so this hits for returning clients.
const publicKeys = new WeakMap<ParsedCertificate, KeyObject>();

function defaultVerify(data: Buffer, signature: Buffer, cert: ParsedCertificate): Promise<boolean> {
  let key = publicKeys.get(cert);
  if (key === undefined) {
    key = toPublicKey(cert.publicKeyPem);
    publicKeys.set(cert, key);
  }
  return verifyPssAsync(data, signature, key);
}

function peerFrame(
  raw: Uint8Array,
  expected: 'client_hello' | 'server_hello' | 'client_finish',
  lab: LabDecodeLimits = {},
): DecodedFrame {
  // A private copy: the transcript must hash exactly these bytes even if the caller reuses its buffer
  // while we wait for a signature (decoded fields are views into it).
  const decoded = decodeFrameWithLayout(Buffer.from(raw), lab);
  const { frame } = decoded;
  // An alert in place of the next handshake message is the peer's refusal: surface its code.
  if (frame.t === 'alert') throw errorFromWire(frame.code, frame.message);
  if (frame.t !== expected)
    throw new ProtocolError('unexpected_message', `expected ${expected}, got ${frame.t}`);
  return decoded;
}

function mac(key: Buffer, th: Buffer): Buffer {
  return hmacSha256(key, th);
}

/**
 * Parse, then the caller's policy; a non-KdsError from either is reported without internals. A key kds
 * refuses (an RSA public exponent other than 65537) is `unsupported_key`; anything else that does not
 * parse is `cert_malformed`.
 */
async function checkPeerCertificate(
  der: Buffer,
  parse: (der: Buffer) => ParsedCertificate,
  check: CertificateCheck,
  mode: HandshakeMode,
): Promise<ParsedCertificate> {
  let cert: ParsedCertificate;
  try {
    cert = parse(der);
  } catch (err) {
    if (err instanceof KdsError && err.code === 'unsupported_key') throw err;
    throw new AuthError('cert_malformed', 'certificate could not be parsed');
  }
  try {
    await check(cert, mode);
  } catch (err) {
    throw toKdsError(err);
  }
  return cert;
}

async function verifyOrThrow(
  verify: SignatureVerifier,
  data: Buffer,
  signature: Buffer,
  cert: ParsedCertificate,
): Promise<void> {
  let ok = false;
  try {
    ok = await verify(data, signature, cert);
  } catch {
    ok = false; // e.g. a non-RSA key: same fixed answer
  }
  if (!ok) throw new AuthError('bad_signature', SIGNATURE_FAILED);
}

abstract class HandshakeBase {
  protected state: string;
  protected readonly parse: (der: Buffer) => ParsedCertificate;
  protected readonly verify: SignatureVerifier;

  constructor(
    protected readonly common: CommonHandshakeOptions,
    initial: string,
  ) {
    this.state = initial;
    this.parse = common.parseCertificate ?? ((der) => parsePkiCertificate(der));
    this.verify = common.verifySignature ?? defaultVerify;
  }

  /** The switches for a handshake in `mode`: enrollment always runs with every defence on. */
  protected defencesFor(mode: HandshakeMode): Defences {
    return mode === 'enroll' ? ALL_DEFENCES_ON : (this.common.defences ?? ALL_DEFENCES_ON);
  }

  protected expectState(state: string, action: string): void {
    if (this.state !== state) {
      throw new ProtocolError(
        'unexpected_message',
        `${action} is not allowed in handshake state ${this.state}`,
      );
    }
  }

  /** Runs one step; any failure kills the handshake. A second call while one is running is refused. */
  protected async step<T>(next: string, fn: () => Promise<T>): Promise<T> {
    this.state = 'busy';
    try {
      const out = await fn();
      this.state = next;
      return out;
    } catch (err) {
      this.state = 'failed';
      throw err instanceof KdsError ? err : toKdsError(err);
    }
  }

  protected nonce(): Buffer {
    const fixed = this.common.testing?.nonce;
    if (fixed !== undefined && fixed.length !== NONCE_BYTES)
      throw new InputError('bad_request', 'testing nonce must be 32 bytes');
    // Sent in the clear: cut from the pooled CSPRNG output (shared/crypto/random.ts).
    return fixed ?? publicRandomBytes(NONCE_BYTES);
  }
}

export class ClientHandshake extends HandshakeBase {
  readonly #opts: ClientHandshakeOptions;
  readonly #offered: readonly DhGroup[];
  readonly #group: DhGroup;
  #keyPair: DhKeyPair | undefined;
  #clientHelloRaw: Buffer | undefined;

  constructor(opts: ClientHandshakeOptions) {
    super(opts, 'start');
    this.#opts = opts;
    this.#offered = opts.groups ?? DH_GROUPS;
    this.#group = opts.group ?? this.#offered[0]!;
    if (
      this.#offered.length === 0 ||
      !this.#offered.every(isDhGroup) ||
      !this.#offered.includes(this.#group)
    ) {
      throw new InputError('bad_request', 'the key share group must be one of the offered groups');
    }
    if (opts.mode === 'auth' && opts.credentials === undefined) {
      throw new InputError('bad_request', "mode 'auth' needs client credentials");
    }
    if (opts.mode !== 'insecure' && opts.mode !== 'resume' && opts.checkServerCertificate === undefined) {
      throw new InputError('bad_request', `mode '${opts.mode}' needs checkServerCertificate`);
    }
    if ((opts.mode === 'resume') !== (opts.resumption !== undefined)) {
      throw new InputError('bad_request', "a ticket and its psk are given exactly in mode 'resume'");
    }
  }

  /** The first message. */
  clientHello(): Buffer {
    this.expectState('start', 'clientHello');
    try {
      this.#keyPair = generateDhKeyPair(this.#group, this.#opts.testing?.dhPrivateKey);
      const hello: ClientHello = {
        t: 'client_hello',
        v: PROTOCOL_VERSION,
        mode: this.#opts.mode,
        groups: [...this.#offered],
        group: this.#group,
        nonce: this.nonce(),
        share: this.#keyPair.publicKey,
      };
      const resumption = this.#opts.resumption;
      if (resumption === undefined) {
        this.#clientHelloRaw = encodeFrame(hello);
      } else {
        // The binder proves we hold the ticket's psk, over the hello cut before the binder itself.
        hello.ticket = resumption.ticket;
        const core = encodeValue(canonicalize(ClientHelloCoreSchema, hello, 'client_hello'));
        const binder = mac(binderKey(resumption.psk), transcriptHash(core));
        this.#clientHelloRaw = appendEntries(core, [['binder', binder]]);
      }
      this.state = 'wait_server_hello';
      return Buffer.from(this.#clientHelloRaw); // the caller's copy; ours stays as hashed
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
  }

  /** Verifies the server's flight; returns the client_finish to send and the established session. */
  async receiveServerHello(
    raw: Uint8Array,
  ): Promise<{ clientFinish: Buffer; result: ClientHandshakeResult }> {
    this.expectState('wait_server_hello', 'receiveServerHello');
    return this.step('done', async () => {
      const { frame, raw: shRaw, layout } = peerFrame(raw, 'server_hello');
      const sh = frame as ServerHello;
      const ch = this.#clientHelloRaw!;
      const mode = this.#opts.mode;
      const defences = this.defencesFor(mode);
      // The server must answer with the group of our key share (no retry in v1).
      if (sh.group !== this.#group) {
        throw new ProtocolError(
          'no_common_group',
          `server chose ${sh.group.slice(0, 32)}, which was not the key share sent`,
        );
      }
      if (mode === 'insecure' || mode === 'resume') {
        if (sh.cert !== undefined)
          throw new ProtocolError('schema', `server_hello.cert: not allowed in ${mode} mode`);
      } else if (sh.cert === undefined || sh.sig === undefined) {
        // A server_hello without certificate and signature in auth/enroll mode is a downgrade to
        // the insecure mode: refuse (the MITM lab's "strip authentication" attack stops here).
        // LAB SWITCH downgrade-protection: the unauthenticated reply is taken as it is.
        if (!labOff(defences, 'downgrade-protection'))
          throw new AuthError('insecure_refused', 'server did not authenticate');
      }

      const dh = this.#keyPair!.deriveSharedSecret(sh.share);
      // Resumed: the keys need both the fresh DH secret and the ticket's psk (key-schedule.ts).
      const resumption = this.#opts.resumption;
      const z = resumption === undefined ? dh : resumptionIkm(dh, resumption.psk);
      if (resumption !== undefined) dh.fill(0); // copied into z
      const core = frameWithout(shRaw, layout, sh.sig !== undefined ? 'sig' : 'mac');
      const thHello = transcriptHash(ch, core);
      const keys = deriveHandshakeKeys(z, thHello);

      let serverCertificate: ParsedCertificate | undefined;
      if (sh.cert !== undefined && sh.sig !== undefined) {
        serverCertificate = await checkPeerCertificate(
          sh.cert,
          this.parse,
          this.#opts.checkServerCertificate!,
          mode,
        );
        // LAB SWITCH transcript-signature: the server's signature over the transcript is not verified.
        if (!labOff(defences, 'transcript-signature'))
          await verifyOrThrow(this.verify, signatureInput('server', thHello), sh.sig, serverCertificate);
      }
      const thServerMac = transcriptHash(ch, frameWithout(shRaw, layout, 'mac'));
      // LAB SWITCH finished-mac: the server's Finished MAC is not compared.
      if (!labOff(defences, 'finished-mac') && !equalBytes(mac(keys.serverFinishedKey, thServerMac), sh.mac))
        throw new AuthError('bad_mac', MAC_FAILED);

      const clientFinish = await this.#buildClientFinish(ch, shRaw, keys);
      const thFinal = transcriptHash(ch, shRaw, clientFinish);
      const traffic = deriveTrafficKeys(z, thFinal);
      z.fill(0);
      keys.clientFinishedKey.fill(0);
      keys.serverFinishedKey.fill(0);
      const channel = new ClientChannel(traffic, { sequenceLimit: this.#opts.sequenceLimit, defences });
      const result: ClientHandshakeResult = {
        mode,
        group: this.#group,
        cipher: 'AES-256-GCM',
        sessionId: channel.sessionId,
        transcriptHash: thFinal,
        channel,
      };
      if (mode === 'auth' || mode === 'resume') result.resumptionSecret = traffic.resumptionSecret;
      else traffic.resumptionSecret.fill(0);
      if (serverCertificate !== undefined) result.serverCertificate = serverCertificate;
      return { clientFinish: Buffer.from(clientFinish), result };
    });
  }

  async #buildClientFinish(ch: Buffer, shRaw: Buffer, keys: HandshakeKeys): Promise<Buffer> {
    const { mode } = this.#opts;
    const base: Omit<ClientFinish, 'mac'> = { t: 'client_finish' };
    if (mode === 'auth') base.cert = this.#opts.credentials!.certificateDer;
    if (mode === 'insecure' && this.#opts.name !== undefined) base.name = this.#opts.name;
    // Validate the fields we send (name syntax, certificate size) before any signing.
    const core = encodeValue(canonicalize(ClientFinishCoreSchema, base, 'client_finish'));
    let withSig = core;
    if (mode === 'auth') {
      const thSig = transcriptHash(ch, shRaw, core);
      const { sign } = this.#opts.credentials!;
      requireScheme(sign, PSS_SHA256, 'a handshake');
      const signature = await sign(signatureInput('client', thSig));
      withSig = appendEntries(core, [['sig', signature]]);
    }
    const thMac = transcriptHash(ch, shRaw, withSig);
    return appendEntries(withSig, [['mac', mac(keys.clientFinishedKey, thMac)]]);
  }
}

export class ServerHandshake extends HandshakeBase {
  readonly #opts: ServerHandshakeOptions;
  readonly #supported: readonly DhGroup[];
  #mode: HandshakeMode | undefined;
  #group: DhGroup | undefined;
  #z: Buffer | undefined;
  #keys: HandshakeKeys | undefined;
  #clientHelloRaw: Buffer | undefined;
  #serverHelloRaw: Buffer | undefined;
  #resumed: TicketContents | undefined;

  constructor(opts: ServerHandshakeOptions) {
    super(opts, 'wait_client_hello');
    this.#opts = opts;
    this.#supported = opts.groups ?? DH_GROUPS;
    if (this.#supported.length === 0 || !this.#supported.every(isDhGroup)) {
      throw new InputError('bad_request', 'server groups must be known DH groups');
    }
  }

  /** The DH group of the client_hello once it was accepted (undefined before). */
  get negotiatedGroup(): DhGroup | undefined {
    return this.#group;
  }

  /** The mode the client_hello asked for, once it was accepted (nothing proven yet). */
  get requestedMode(): HandshakeMode | undefined {
    return this.#mode;
  }

  /** Checks the client_hello; returns the server_hello to send. */
  async receiveClientHello(raw: Uint8Array): Promise<Buffer> {
    this.expectState('wait_client_hello', 'receiveClientHello');
    return this.step('wait_client_finish', async () => {
      const { frame, raw: chRaw, layout } = this.#decodeClientHello(raw);
      const ch = frame as ClientHello;
      if (!ch.groups.includes(ch.group)) {
        throw new ProtocolError('no_common_group', 'client_hello.group is not one of client_hello.groups');
      }
      const group = ch.group;
      if (!isDhGroup(group) || !this.#supported.includes(group)) {
        throw new ProtocolError(
          'no_common_group',
          `group ${group} is not supported (supported: ${this.#supported.join(', ')})`,
        );
      }
      if (ch.mode === 'insecure' && this.#opts.allowInsecure !== true) {
        throw new AuthError('insecure_refused', 'this server does not accept insecure sessions');
      }
      if (ch.mode === 'enroll' && this.#opts.allowEnroll === false) {
        throw new PolicyError('forbidden', 'this server does not accept enrollment sessions');
      }
      // Resumed: the ticket must open (cheap: one AES-GCM), the binder prove its psk, and the identity
      // it names must still stand, all before any Diffie-Hellman is computed.
      let ticket: TicketContents | undefined;
      if (ch.mode === 'resume') {
        const resumption = this.#opts.resumption;
        if (resumption === undefined) throw new AuthError('ticket_invalid', TICKET_INVALID);
        const ring = resumption.keys();
        ticket = openTicket(
          ring instanceof Promise ? await ring : ring,
          ch.ticket!,
          (resumption.now ?? Date.now)(),
        );
        const expected = mac(binderKey(ticket.psk), transcriptHash(frameWithout(chRaw, layout, 'binder')));
        if (!equalBytes(expected, ch.binder!)) throw new AuthError('ticket_invalid', BINDER_FAILED);
        try {
          await resumption.check(ticket);
        } catch (err) {
          throw toKdsError(err);
        }
      }
      const keyPair = generateDhKeyPair(group, this.#opts.testing?.dhPrivateKey);
      const dh = keyPair.deriveSharedSecret(ch.share);
      const z = ticket === undefined ? dh : resumptionIkm(dh, ticket.psk);
      if (ticket !== undefined) dh.fill(0); // copied into z

      const authenticated = ch.mode !== 'insecure' && ch.mode !== 'resume';
      const hello = canonicalize(
        ServerHelloCoreSchema,
        {
          t: 'server_hello',
          v: PROTOCOL_VERSION,
          group,
          nonce: this.nonce(),
          share: keyPair.publicKey,
          cert: authenticated ? this.#opts.credentials.certificateDer : undefined,
        },
        'server_hello',
      );
      const core = encodeValue(hello);
      const thHello = transcriptHash(chRaw, core);
      const keys = deriveHandshakeKeys(z, thHello);
      let withSig = core;
      if (authenticated) {
        const { sign } = this.#opts.credentials;
        requireScheme(sign, PSS_SHA256, 'a handshake');
        const signature = await sign(signatureInput('server', thHello));
        withSig = appendEntries(core, [['sig', signature]]);
      }
      const serverMac = mac(keys.serverFinishedKey, transcriptHash(chRaw, withSig));
      const serverHello = appendEntries(withSig, [['mac', serverMac]]);

      this.#mode = ch.mode;
      this.#group = group;
      this.#resumed = ticket;
      this.#z = z;
      this.#keys = keys;
      this.#clientHelloRaw = chRaw;
      this.#serverHelloRaw = serverHello;
      return Buffer.from(serverHello);
    });
  }

  /**
   * The client_hello, decoded with every limit; only when that fails with the code of a switched-off
   * defence (MITM lab) is it decoded again without that limit, and never for an enrollment.
   */
  #decodeClientHello(raw: Uint8Array): DecodedFrame {
    try {
      return peerFrame(raw, 'client_hello');
    } catch (err) {
      const defences = this.common.defences;
      const lab: LabDecodeLimits = {};
      // LAB SWITCH frame-limits: a hello over 64 KiB is read (up to LAB_MAX_FRAME_BYTES).
      if (labOff(defences, 'frame-limits')) lab.maxBytes = LAB_MAX_FRAME_BYTES;
      // LAB SWITCH input-validation: bytes after the hello's map are ignored instead of refused.
      if (labOff(defences, 'input-validation')) lab.ignoreTrailing = true;
      if (Object.keys(lab).length === 0 || !(err instanceof ProtocolError)) throw err;
      if (err.code !== 'frame_too_large' && err.code !== 'bad_frame') throw err;
      const relaxed = peerFrame(raw, 'client_hello', lab);
      if ((relaxed.frame as ClientHello).mode === 'enroll') throw err; // enrollment: every defence on
      return relaxed;
    }
  }

  /** Checks the client_finish; returns the established session. */
  async receiveClientFinish(raw: Uint8Array): Promise<ServerHandshakeResult> {
    this.expectState('wait_client_finish', 'receiveClientFinish');
    return this.step('done', async () => {
      const { frame, raw: cfRaw, layout } = peerFrame(raw, 'client_finish');
      const cf = frame as ClientFinish;
      const mode = this.#mode!;
      const ch = this.#clientHelloRaw!;
      const sh = this.#serverHelloRaw!;
      const keys = this.#keys!;
      const defences = this.defencesFor(mode);
      if (mode === 'auth') {
        if (cf.cert === undefined)
          throw new ProtocolError('schema', 'client_finish.cert: missing (required in auth mode)');
        if (cf.name !== undefined)
          throw new ProtocolError('schema', 'client_finish.name: only allowed in insecure mode');
      } else {
        if (cf.cert !== undefined)
          throw new ProtocolError('schema', `client_finish.cert: not allowed in ${mode} mode`);
        if ((mode === 'enroll' || mode === 'resume') && cf.name !== undefined) {
          throw new ProtocolError('schema', 'client_finish.name: only allowed in insecure mode');
        }
      }

      let clientCertificate: ParsedCertificate | undefined;
      if (cf.cert !== undefined && cf.sig !== undefined) {
        clientCertificate = await checkPeerCertificate(
          cf.cert,
          this.parse,
          this.#opts.checkClientCertificate,
          mode,
        );
        const thSig = transcriptHash(ch, sh, ...frameWithoutParts(cfRaw, layout, 'sig'));
        // LAB SWITCH transcript-signature: the client's signature over the transcript is not verified.
        if (!labOff(defences, 'transcript-signature'))
          await verifyOrThrow(this.verify, signatureInput('client', thSig), cf.sig, clientCertificate);
      }
      const thMac = transcriptHash(ch, sh, ...frameWithoutParts(cfRaw, layout, 'mac'));
      // LAB SWITCH finished-mac: the client's Finished MAC is not compared.
      if (!labOff(defences, 'finished-mac') && !equalBytes(mac(keys.clientFinishedKey, thMac), cf.mac))
        throw new AuthError('bad_mac', MAC_FAILED);

      const thFinal = transcriptHash(ch, sh, cfRaw);
      const z = this.#z!;
      const traffic = deriveTrafficKeys(z, thFinal);
      z.fill(0);
      keys.clientFinishedKey.fill(0);
      keys.serverFinishedKey.fill(0);
      this.#z = undefined;
      this.#keys = undefined;
      const channel = new ServerChannel(traffic, { sequenceLimit: this.#opts.sequenceLimit, defences });
      const result: ServerHandshakeResult = {
        mode,
        group: this.#group!,
        cipher: 'AES-256-GCM',
        sessionId: channel.sessionId,
        transcriptHash: thFinal,
        channel,
      };
      if (mode === 'auth' || mode === 'resume') result.resumptionSecret = traffic.resumptionSecret;
      else traffic.resumptionSecret.fill(0);
      if (this.#resumed !== undefined) {
        const { psk, ...identity } = this.#resumed;
        psk.fill(0);
        result.resumed = identity;
        this.#resumed = undefined;
      }
      if (clientCertificate !== undefined) result.clientCertificate = clientCertificate;
      if (mode === 'insecure' && cf.name !== undefined) result.claimedName = cf.name;
      return result;
    });
  }
}
