// The client side of a kds session: connect to the KDC's WebSocket, drive the pure ClientHandshake of
// shared/protocol (client_hello -> server_hello -> client_finish), wait for the server's `ready` push,
// then offer request/response over the record layer plus server pushes. The KDC certificate is checked
// against the pinned root (the client's ca.pem): chain, validity, serverAuth, and its name `kdc`.
//
// Every failure is a KdsError: an alert or a `session.closing` push from the server carries the
// server's code; a close without either is mapped from its close reason (the server puts the error code
// there) or becomes `session_closed` / `unavailable`.
import type { KeyObject } from 'node:crypto';
import WebSocket from 'ws';
import { DH_GROUPS, type DhGroup } from '../shared/crypto/dh.js';
import { pssSigner } from '../shared/crypto/signer.js';
import {
  KdsError,
  InputError,
  AuthError,
  ProtocolError,
  StateError,
  EnvironmentError,
  InternalError,
  isErrorCode,
  closeCodeFor,
} from '../shared/errors.js';
import { inHandshakePhase } from '../shared/defences.js';
import { labOff, type Defences } from '../shared/lab-switches.js';
import { ClientHandshake, type HandshakeMode } from '../shared/protocol/handshake.js';
import { MAX_FRAME_BYTES } from '../shared/protocol/limits.js';
import { decodeFrame, errorFromWire } from '../shared/protocol/messages.js';
import type { ClientChannel, ServerMessage } from '../shared/protocol/secure-channel.js';
import type { RequestBody, RequestType, ResponseBody } from '../shared/protocol/catalog.js';
import { verifyCertificate, verdictToError } from '../shared/pki/verify.js';
import { CertificateCache } from '../shared/pki/certificate-cache.js';
import type { ParsedCertificate } from '../shared/pki/x509.js';
import { readClientHome, resolveHome, type HomeLocation } from './home.js';
import { withFailover } from './failover.js';
import { discardTicket, readTicket, saveTicket } from './ticket-file.js';
import { wantsNewTicket } from './ticket-renewal.js';

/** The KDC's certificate names it `kdc` (io/ca-files.ts KDC_NAME). */
const KDC_CERT_NAME = 'kdc';
const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** How long close() waits for this session's ticket request, at most (see close()). */
const TICKET_CLOSE_WAIT_MS = 2_000;

export interface SessionCredentials {
  privateKey: KeyObject;
  certPem: string;
}

export interface OpenSessionOptions {
  /** ws://host:port/kds, or several nodes' URLs separated by commas (tried in order). */
  server: string;
  mode?: HandshakeMode;
  /** Required for 'auth'. */
  credentials?: SessionCredentials;
  /** The pinned root CA (PEM): the trust anchor for the KDC certificate. Required unless 'insecure'. */
  caCertPem?: string;
  /** The group of the key share; the other supported group is offered after it. */
  dh?: DhGroup;
  /** 'insecure' mode only: the (unauthenticated) name to claim. */
  insecureName?: string;
  /** Expected name in the KDC certificate (default `kdc`). */
  expectServerName?: string;
  connectTimeoutMs?: number;
  /**
   * Local address to connect from (a multi-homed host; tests play many hosts from 127.0.0.0/8, each with
   * its own per-IP handshake budget at the KDC).
   */
  localAddress?: string;
  requestTimeoutMs?: number;
  /** The MITM lab's ablation switches (shared/lab-switches.ts; `--lab-disable`); default all on. */
  defences?: Defences;
  /**
   * Mode 'resume': the ticket and its psk (client/ticket-file.ts), and its expiry when known: a resumed
   * session asks for a new ticket only when this one is due (client/ticket-renewal.ts).
   */
  resumption?: { ticket: Buffer; psk: Buffer; expiresAt?: number };
  /**
   * Called with each ticket the KDC gives this session (`session.ticket`, asked for when
   * client/ticket-renewal.ts says so), with this session's psk for it.
   */
  onTicket?: (t: { ticket: Buffer; psk: Buffer; expiresAt: number }) => void;
  /**
   * How long close() waits for this session's ticket request at most (default 2 s): a short command
   * should not linger for a ticket, which only saves the next session's signatures.
   */
  ticketWaitOnCloseMs?: number;
}

export interface CertificateFacts {
  subjectCN: string;
  serialHex: string;
  fingerprint256: string;
  notBefore: number;
  notAfter: number;
}

export interface SessionFacts {
  sessionId: string;
  mode: HandshakeMode;
  group: DhGroup;
  cipher: string;
  /** The KDC's certificate (absent in 'insecure' mode). */
  serverCertificate: CertificateFacts;
  /** Who the server says we are (its `ready` push). */
  identity: { name: string; serialHex: string; role: string; expiresAt: number };
  /** Our own certificate ('auth'). */
  clientCertificate?: CertificateFacts;
}

export interface CloseInfo {
  code: number;
  /** The error that ended the session (server's code when it gave one); undefined for a clean close we asked for. */
  error?: KdsError;
}

export interface ClientSession {
  readonly facts: SessionFacts;
  /** The KDC node this session is with (one URL, also when several were given). */
  readonly server: string;
  /**
   * Send a request; resolves with the response body, rejects with the KdsError the server returned. The
   * body is typed by `type`'s request schema and the reply by its response schema, which the channel
   * validated the reply against before it resolves (ClientChannel.open).
   */
  request<T extends RequestType>(
    type: T,
    body: RequestBody<T>,
    opts?: { timeoutMs?: number },
  ): Promise<ResponseBody<T>>;
  /** Subscribe to a push type (`*` for every push). Returns the unsubscribe function. */
  onPush(type: string, fn: (body: Record<string, unknown>, type: string) => void): () => void;
  /** Resolves when the session ends, for whatever reason. */
  readonly closed: Promise<CloseInfo>;
  readonly isOpen: boolean;
  /** Client-initiated close (1000). Resolves when the socket is closed. */
  close(): Promise<void>;
  /** Export keying material bound to this session (exporter secret). */
  exportKeyingMaterial(label: string, length: number): Buffer;
}

/**
 * The certificates a client parses at every session it opens (the pinned CA, its own, the KDC's):
 * parsed once, then found by their PEM text or the SHA-256 of their DER. Verdicts are not cached: the
 * KDC's certificate is verified against the CA at every full handshake.
 */
const certificates = new CertificateCache(64);

function certificateFacts(cert: ParsedCertificate): CertificateFacts {
  return {
    subjectCN: cert.subjectCN,
    serialHex: cert.serialHex,
    fingerprint256: cert.fingerprint256,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

/** ws://h:p/kds -> http://h:p (wss -> https). */
export function httpUrlOf(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new InputError('bad_request', `invalid server URL ${JSON.stringify(server)}`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new InputError('bad_request', `server URL must start with ws:// or wss://, got ${url.protocol}`);
  }
  return `${url.protocol === 'wss:' ? 'https:' : 'http:'}//${url.host}`;
}

/**
 * Open a session with the credentials stored in a client home (key.pem, cert.pem, ca.pem). With a
 * ticket from an earlier session (client/ticket-file.ts) the session is resumed: no RSA on either side
 * (docs/protocol.md "Resumption"); a ticket the KDC no longer opens (`ticket_invalid`) is discarded and
 * the session falls back to a full handshake, every other refusal stands. `resume: false` always runs the
 * full handshake (e.g. `kds client status`, which shows the KDC's certificate). The ticket stays in the
 * home for the next sessions until a session is given a new one (client/ticket-renewal.ts).
 */
export async function openHomeSession(
  opts: HomeLocation &
    Omit<OpenSessionOptions, 'credentials' | 'caCertPem' | 'mode' | 'resumption' | 'onTicket'> & {
      resume?: boolean;
    },
): Promise<ClientSession> {
  const home = resolveHome(opts);
  const files = readClientHome(home);
  const { name: _n, home: _h, dataDir: _d, resume = true, ...rest } = opts;
  const ownSerial = certificates.parsePem(files.certPem).serialHex;
  const keepTicket = (t: { ticket: Buffer; psk: Buffer; expiresAt: number }): void => {
    try {
      saveTicket(home, opts.name, files.privateKey, { ...t, serialHex: ownSerial });
    } catch {
      // A ticket we cannot keep only costs the next session a full handshake.
    }
  };
  const base = {
    ...rest,
    credentials: { privateKey: files.privateKey, certPem: files.certPem },
    caCertPem: files.caPem,
    onTicket: keepTicket,
  };
  const stored = resume ? readTicket(home, opts.name, files.privateKey, ownSerial) : undefined;
  let session: ClientSession | undefined;
  if (stored !== undefined) {
    try {
      session = await openSession({
        ...base,
        mode: 'resume',
        resumption: { ticket: stored.ticket, psk: stored.psk, expiresAt: stored.expiresAt },
      });
    } catch (err) {
      // The KDC no longer opens this ticket (its keys rotated past it, another KDC): a full handshake,
      // which brings a new one.
      if (!(err instanceof KdsError && err.code === 'ticket_invalid')) throw err;
      discardTicket(home);
    } finally {
      stored.psk.fill(0);
    }
  }
  session ??= await openSession({ ...base, mode: 'auth' });
  if (session.facts.identity.name !== opts.name) {
    // The home holds another identity's certificate: refuse rather than act under the wrong name.
    await session.close();
    throw new AuthError('cert_wrong_name', 'certificate is for another name', {
      expected: opts.name,
      actual: session.facts.identity.name,
    });
  }
  return session;
}

/**
 * Open a session with the KDC. `opts.server` may list several nodes (client/failover.ts): they are
 * tried in order, each with a fresh handshake, and the session says which one answered.
 */
export function openSession(opts: OpenSessionOptions): Promise<ClientSession> {
  return withFailover(opts.server, (server) => openSessionWith({ ...opts, server }));
}

async function openSessionWith(opts: OpenSessionOptions): Promise<ClientSession> {
  const mode = opts.mode ?? 'auth';
  const group = opts.dh ?? DH_GROUPS[0]!;
  const groups = [group, ...DH_GROUPS.filter((g) => g !== group)];
  let ca: ParsedCertificate | undefined;
  if (mode !== 'insecure') {
    if (opts.caCertPem === undefined)
      throw new InputError('bad_request', `mode ${mode} needs the pinned CA certificate`);
    ca = certificates.parsePem(opts.caCertPem);
  }
  let ownCert: ParsedCertificate | undefined;
  const expectName = opts.expectServerName ?? KDC_CERT_NAME;
  const handshake = new ClientHandshake({
    mode,
    groups,
    group,
    parseCertificate: (der) => certificates.parse(der),
    ...(opts.defences === undefined ? {} : { defences: opts.defences }),
    ...(mode === 'insecure' && opts.insecureName !== undefined ? { name: opts.insecureName } : {}),
    ...(mode === 'resume' && opts.resumption !== undefined
      ? { resumption: { ticket: opts.resumption.ticket, psk: opts.resumption.psk } }
      : {}),
    ...(mode === 'auth' || mode === 'resume'
      ? (() => {
          if (opts.credentials === undefined)
            throw new InputError('bad_request', `${mode} mode needs credentials`);
          ownCert = certificates.parsePem(opts.credentials.certPem);
          const key = opts.credentials.privateKey;
          return { credentials: { certificateDer: ownCert.der, sign: pssSigner(key) } };
        })()
      : {}),
    ...(ca !== undefined
      ? {
          checkServerCertificate: (cert: ParsedCertificate) => {
            // LAB SWITCH certificate-chain: any certificate is taken as the KDC's (its key still signs).
            if (labOff(opts.defences, 'certificate-chain')) return;
            const now = Date.now();
            const verdict = verifyCertificate(cert, ca!, { now, usage: 'serverAuth', expectName });
            // On this machine's clock: a refusal names the certificate at fault (the KDC's or the
            // root's) and, for one not valid yet, how far behind the local clock looks.
            if (verdict.code !== 'ok') throw verdictToError(verdict, { localNow: now });
          },
        }
      : {}),
  });
  const conn = await connect(
    opts.server,
    opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    opts.localAddress,
  );
  // Errors before `ready` are handshake failures: marked so the CLI names the defence (shared/defences.ts).
  return establish(conn, handshake, opts, ownCert).catch((err: unknown) => {
    throw inHandshakePhase(err);
  });
}

function connect(server: string, timeoutMs: number, localAddress?: string): Promise<WebSocket> {
  httpUrlOf(server); // validates the URL shape
  return new Promise((resolve, reject) => {
    // No compression (see server/kdc/kdc.ts); the same frame limit as the server.
    const ws = new WebSocket(server, {
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: timeoutMs,
      ...(localAddress === undefined ? {} : { localAddress }),
    });
    ws.binaryType = 'nodebuffer';
    const onError = (err: Error): void => {
      cleanup();
      ws.terminate();
      reject(
        new EnvironmentError(
          'unavailable',
          `cannot connect to ${server}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
        ),
      );
    };
    const onOpen = (): void => {
      cleanup();
      resolve(ws);
    };
    const cleanup = (): void => {
      ws.off('error', onError);
      ws.off('open', onOpen);
    };
    ws.on('error', onError);
    ws.on('open', onOpen);
  });
}

/** The error a close without an alert/push stands for: the server puts the error code in the reason. */
function errorFromClose(code: number, reason: string): KdsError {
  if (isErrorCode(reason)) return errorFromWire(reason, 'connection closed by the server');
  if (code === 1009) return new ProtocolError('frame_too_large', 'frame too large');
  if (code === 1001) return new EnvironmentError('unavailable', 'server going away');
  return new StateError('session_closed', `connection closed (${code})`);
}

async function establish(
  ws: WebSocket,
  handshake: ClientHandshake,
  opts: OpenSessionOptions,
  ownCert: ParsedCertificate | undefined,
): Promise<ClientSession> {
  // Frames are handled strictly in order through one chain (the handshake step is asynchronous).
  let chain: Promise<void> = Promise.resolve();
  let channel: ClientChannel | undefined;
  let phase: 'hello' | 'ready' | 'open' | 'closed' = 'hello';
  let serverError: KdsError | undefined;
  let weClosed = false;
  /** The `session.ticket` request of this session, until it is answered (or fails). */
  let ticketInFlight: Promise<void> | undefined;
  let result: Awaited<ReturnType<ClientHandshake['receiveServerHello']>>['result'] | undefined;
  const pending = new Map<
    number,
    { resolve: (b: unknown) => void; reject: (e: KdsError) => void; timer: NodeJS.Timeout }
  >();
  const listeners = new Map<string, Set<(body: Record<string, unknown>, type: string) => void>>();
  let nextId = 1;

  let settleReady!: { resolve: (facts: SessionFacts) => void; reject: (e: KdsError) => void };
  const ready = new Promise<SessionFacts>((resolve, reject) => (settleReady = { resolve, reject }));
  let resolveClosed!: (info: CloseInfo) => void;
  const closed = new Promise<CloseInfo>((resolve) => (resolveClosed = resolve));
  const timeout = setTimeout(
    () => abort(new EnvironmentError('timeout', 'the server did not complete the handshake in time')),
    opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  );

  /**
   * Ends the session with `err`. A failure this side detected closes with its code's close code and the
   * code as reason (docs/protocol.md "Transport": a record that fails authentication is not answered,
   * the close says why); one the server reported (alert, session.closing) closes normally.
   */
  const abort = (err: KdsError, local = false): void => {
    serverError ??= err;
    if (phase !== 'closed') {
      try {
        if (local && err.code !== 'internal') ws.close(closeCodeFor(err.code), err.code);
        else ws.close(1000);
      } catch {
        ws.terminate();
      }
      const t = setTimeout(() => ws.terminate(), 2_000);
      t.unref();
    }
    settleReady.reject(err);
  };

  const onServerMessage = (msg: ServerMessage): void => {
    if (msg.kind === 'push') {
      const body = msg.body as Record<string, unknown>;
      if (msg.type === 'session.closing') serverError = errorFromWire(String(body.code), String(body.reason));
      if (phase === 'ready') {
        if (msg.type !== 'ready') {
          abort(serverError ?? new ProtocolError('unexpected_message', `expected ready, got ${msg.type}`));
          return;
        }
        phase = 'open';
        clearTimeout(timeout);
        const facts: SessionFacts = {
          sessionId: result!.sessionId,
          mode: result!.mode,
          group: result!.group,
          cipher: result!.cipher,
          serverCertificate: result!.serverCertificate
            ? certificateFacts(result!.serverCertificate)
            : { subjectCN: '', serialHex: '', fingerprint256: '', notBefore: 0, notAfter: 0 },
          identity: {
            name: typeof body.name === 'string' ? body.name : '',
            serialHex: typeof body.serial === 'string' ? body.serial : '',
            role: String(body.role),
            expiresAt: typeof body.expiresAt === 'number' ? body.expiresAt : 0,
          },
        };
        if (ownCert !== undefined) facts.clientCertificate = certificateFacts(ownCert);
        settleReady.resolve(facts);
        return;
      }
      for (const key of [msg.type, '*']) {
        for (const fn of listeners.get(key) ?? []) {
          try {
            fn(body, msg.type);
          } catch {
            // a listener's bug must not break the session
          }
        }
      }
      return;
    }
    const waiter = pending.get(msg.id);
    if (waiter === undefined) return;
    pending.delete(msg.id);
    clearTimeout(waiter.timer);
    if (msg.kind === 'ok') waiter.resolve(msg.body);
    else waiter.reject(msg.error);
  };

  const onFrame = async (frame: Buffer): Promise<void> => {
    if (phase === 'closed') return;
    try {
      if (phase === 'hello') {
        const out = await handshake.receiveServerHello(frame);
        result = out.result;
        channel = out.result.channel;
        phase = 'ready';
        ws.send(out.clientFinish, { binary: true });
        return;
      }
      if (phase === 'ready') {
        // The server refuses our client_finish (certificate, signature) with a plaintext alert.
        const peek = decodeFrame(frame);
        if (peek.t === 'alert') {
          abort(errorFromWire(peek.code, peek.message));
          return;
        }
      }
      onServerMessage(channel!.open(frame));
    } catch (err) {
      abort(
        err instanceof KdsError
          ? err
          : new InternalError('internal', 'internal error', undefined, { cause: err }),
        err instanceof KdsError && err.details?.remote !== true,
      );
    }
  };

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      chain = chain.then(() => abort(new ProtocolError('bad_frame', 'the server sent a text frame')));
      return;
    }
    chain = chain.then(() => onFrame(data));
  });
  ws.on('error', () => {});
  ws.on('close', (code: number, reasonBuf: Buffer) => {
    clearTimeout(timeout);
    const wasOpen = phase === 'open';
    phase = 'closed';
    const err = serverError ?? (weClosed ? undefined : errorFromClose(code, reasonBuf.toString('utf8')));
    // Built only when someone is waiting: an Error's stack trace costs more than the rest of a clean close.
    let failure: KdsError | undefined;
    const failed = (): KdsError => (failure ??= err ?? new StateError('session_closed', 'session closed'));
    for (const [, waiter] of pending) {
      clearTimeout(waiter.timer);
      waiter.reject(failed());
    }
    pending.clear();
    if (!wasOpen) settleReady.reject(failed());
    resolveClosed(err === undefined ? { code } : { code, error: err });
  });

  try {
    ws.send(handshake.clientHello(), { binary: true });
  } catch (err) {
    abort(err instanceof KdsError ? err : new InternalError('internal', 'internal error'));
  }
  const facts = await ready;
  const session: ClientSession = {
    facts,
    server: opts.server,
    closed,
    get isOpen() {
      return phase === 'open';
    },
    request<T extends RequestType>(
      type: T,
      body: RequestBody<T>,
      ropts?: { timeoutMs?: number },
    ): Promise<ResponseBody<T>> {
      if (phase !== 'open')
        return Promise.reject(serverError ?? new StateError('session_closed', 'session closed'));
      const id = nextId++;
      let frame: Buffer;
      try {
        frame = channel!.sealRequest(type, id, body);
      } catch (err) {
        return Promise.reject(err);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => {
            pending.delete(id);
            reject(new EnvironmentError('timeout', `no reply to ${type} in time`));
          },
          ropts?.timeoutMs ?? opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
        );
        timer.unref();
        // ClientChannel.open validated the reply against the response schema of the type it recorded for
        // this id, `type`'s: the one place the reply's type is asserted.
        pending.set(id, { resolve: (b) => resolve(b as ResponseBody<T>), reject, timer });
        ws.send(frame, { binary: true });
      });
    },
    onPush(type, fn) {
      let set = listeners.get(type);
      if (set === undefined) listeners.set(type, (set = new Set()));
      set.add(fn);
      return () => set!.delete(fn);
    },
    async close() {
      // A ticket asked for at the start of this session may still be on its way (the KDC opens its
      // ticket keys once it listens, so a session right after a KDC start waits for them): a short
      // command closes before the answer and its next session would pay a full handshake. Wait for it,
      // briefly: a ticket saves the next session's signatures, not this one's work.
      if (ticketInFlight !== undefined && phase !== 'closed') {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          ticketInFlight,
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, opts.ticketWaitOnCloseMs ?? TICKET_CLOSE_WAIT_MS);
          }),
        ]);
        clearTimeout(timer);
      }
      if (phase !== 'closed') {
        weClosed = true;
        ws.close(1000);
        const t = setTimeout(() => ws.terminate(), 2_000);
        t.unref();
        await closed;
        clearTimeout(t);
      }
    },
    exportKeyingMaterial(label, length) {
      return channel!.exportKeyingMaterial(label, length);
    },
  };
  // Ask for the ticket of the next session at once when one is due (docs/protocol.md "Resumption",
  // client/ticket-renewal.ts); the psk is this session's resumption secret, which never travels. Failing
  // to get one costs nothing but the next session's full handshake.
  const psk = result?.resumptionSecret;
  if (
    opts.onTicket !== undefined &&
    psk !== undefined &&
    wantsNewTicket(facts.mode, opts.resumption, facts.identity.expiresAt, Date.now())
  ) {
    const onTicket = opts.onTicket;
    ticketInFlight = session
      .request('session.ticket', {})
      .then((r) => onTicket({ ticket: r.ticket, psk, expiresAt: r.expiresAt }))
      .catch(() => undefined)
      .finally(() => {
        ticketInFlight = undefined;
      });
  }

  return session;
}
