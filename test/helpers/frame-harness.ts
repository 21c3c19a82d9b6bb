// The KDC's frame handler in-process, for fuzzing at volume (test/hardening/fuzz-*.test.ts).
//
// It runs the REAL server code path for one connection (server/kdc/connection.ts: handshake state
// machine, certificate checks, record layer, request dispatch through the real handler registry with
// the real services of a started KDC, fail()/close mapping) over a FakeSocket instead of TCP, so ten
// thousand hostile frames cost seconds, not minutes. The wiring mirrors server/kdc/kdc.ts serve() with
// one deliberate difference: the handshake's ephemeral values are FIXED on both sides (the `testing`
// option that exists for protocol vectors) and each side's RSA-PSS signature over a given input is
// computed once and reused. The whole handshake is then byte-for-byte identical on every connection,
// so one valid client_finish and one valid first record serve as mutation templates for every
// connection, and the traffic keys are known: a test can seal arbitrary plaintext as a record that
// authenticates, to fuzz the application layer behind the AEAD. The smaller live-server sample in the
// same tests covers the production wiring with real randomness.
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { WebSocket } from 'ws';
import { DH_GROUPS, generateDhKeyPair } from '../../shared/crypto/dh.js';
import { signPss, verifyPss } from '../../shared/crypto/rsa.js';
import { ClientHandshake, ServerHandshake, type HandshakeMode } from '../../shared/protocol/handshake.js';
import { deriveTrafficKeys, type TrafficKeys } from '../../shared/protocol/key-schedule.js';
import { decodeFrame, encodeFrame, type ServerHello } from '../../shared/protocol/messages.js';
import { RecordOpener, RecordSealer } from '../../shared/protocol/record-layer.js';
import { decodeValue } from '../../shared/protocol/codec.js';
import { transcriptHash } from '../../shared/protocol/transcript.js';
import { verifyCertificate, verdictToError } from '../../shared/pki/verify.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import { loadCredential } from '../../server/ca/credentials.js';
import { CertificateCache } from '../../shared/pki/certificate-cache.js';
import { checkClientCertificate } from '../../server/kdc/cert-check.js';
import { Connection, type ConnectionHost } from '../../server/kdc/connection.js';
import type { UnsentBudget } from '../../server/kdc/unsent-budget.js';
import { HandlerRegistry } from '../../server/kdc/dispatch.js';
import { KDC_HANDLERS } from '../../server/kdc-handlers/index.js';
import { DEFAULT_ANONYMOUS_SESSION_MS, type Kdc } from '../../server/kdc/kdc.js';
import { FakeSocket } from './fake-socket.js';
import type { Outcome } from './fuzz-judge.js';
import { issueTestClient, type TestClient } from './kdc-in-process.js';
import { TEST_CA_PASSPHRASE } from './kds-process.js';
import { asPssSigner, type PssSigner } from '../../shared/crypto/signer.js';

const CLIENT_NONCE = Buffer.alloc(32, 0x11);
const CLIENT_DH = Buffer.alloc(32, 0x22);
const SERVER_NONCE = Buffer.alloc(32, 0x33);
const SERVER_DH = Buffer.alloc(32, 0x44);
/** Signatures remembered per side: the fixed transcript needs one; mutated-but-valid hellos get fresh ones. */
const SIGNATURE_MEMO_LIMIT = 16;

/** An established fuzzing session: seal any plaintext as a record that authenticates. */
export interface FakeSession {
  sock: FakeSocket;
  conn: Connection;
  /** Seal `plaintext` (any bytes) as the next client record frame. */
  seal(plaintext: Buffer): Buffer;
  send(frame: Buffer): void;
  /** The next server message, decrypted and decoded; undefined when the connection closed. */
  next(timeoutMs?: number): Promise<Record<string, unknown> | undefined | 'hang'>;
  close(): Promise<void>;
}

export interface FixedHandshake {
  mode: HandshakeMode;
  identity: TestClient | undefined;
  clientHello: Buffer;
  serverHello: Buffer;
  clientFinish: Buffer;
  keys: TrafficKeys;
  /** A new connection through the whole fixed handshake, up to and including the `ready` push. */
  open(): Promise<FakeSession>;
}

export interface FrameHarness {
  kdc: Kdc;
  /** Lines the harness's connections logged (an `internal error` here is a bug). */
  logs: string[];
  /** A fresh, admitted server Connection over a FakeSocket. */
  connection(): { sock: FakeSocket; conn: Connection };
  /** The fixed handshake for a new identity (`client`, `admin`) or an anonymous enrollment session. */
  fixedHandshake(kind: 'client' | 'admin' | 'enroll', name?: string): Promise<FixedHandshake>;
}

function memoSigner(key: KeyObject): PssSigner {
  const memo = new Map<string, Promise<Buffer>>();
  return asPssSigner((data) => {
    const k = data.toString('hex');
    let p = memo.get(k);
    if (p === undefined) {
      p = signPss(data, key);
      if (memo.size < SIGNATURE_MEMO_LIMIT) memo.set(k, p);
    }
    return p;
  });
}

/** Wait for `p` at most `ms`; 'hang' otherwise. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'hang'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), ms))),
  ]).finally(() => clearTimeout(timer));
}

/** Classify the server's answer to a plaintext (pre-handshake) frame. */
export async function plaintextOutcome(sock: FakeSocket, timeoutMs = 5_000): Promise<Outcome> {
  const frame = await within(sock.next(), timeoutMs);
  if (frame === 'hang') return { kind: 'hang' };
  if (frame === undefined)
    return { kind: 'closed-silently', closeCode: sock.closeCode, closeReason: sock.closeReason };
  let decoded: Record<string, unknown>;
  try {
    decoded = decodeFrame(frame) as unknown as Record<string, unknown>;
  } catch {
    return { kind: 'progress' }; // a record (the `ready` push): the handshake completed
  }
  if (decoded.t === 'alert') {
    const closed = await within(sock.closed, timeoutMs);
    return { kind: 'alert', code: String(decoded.code), closeCode: closed === 'hang' ? undefined : closed };
  }
  return { kind: 'progress' }; // server_hello
}

export interface FrameHarnessOptions {
  /** The handlers to serve (default: the KDC's own, server/kdc-handlers/index.ts). */
  registry?: HandlerRegistry;
  /** The clock the connections read (default Date.now). */
  now?: () => number;
  /** The unread-output budget the connections share (server/kdc/unsent-budget.ts); default none. */
  unsent?: UnsentBudget<Connection>;
}

export async function startFrameHarness(
  kdc: Kdc,
  dataDir: string,
  opts: FrameHarnessOptions = {},
): Promise<FrameHarness> {
  const logs: string[] = [];
  const credential = loadCredential(dataDir, 'server', TEST_CA_PASSPHRASE);
  const serverSign = memoSigner(credential.privateKey);
  const certCache = new CertificateCache(64);
  const publicKeys = new WeakMap<ParsedCertificate, KeyObject>();

  const host: ConnectionHost = {
    registry: opts.registry ?? new HandlerRegistry(KDC_HANDLERS),
    ...(opts.now === undefined ? {} : { now: opts.now }),
    ...(opts.unsent === undefined ? {} : { unsent: opts.unsent }),
    services: kdc.services,
    handshakeTimeoutMs: 10_000,
    anonymousSessionMs: DEFAULT_ANONYMOUS_SESSION_MS,
    createHandshake: (onChecked) =>
      new ServerHandshake({
        groups: DH_GROUPS,
        credentials: { certificateDer: credential.cert.der, sign: serverSign },
        allowInsecure: false,
        parseCertificate: (der) => certCache.parse(der),
        verifySignature: (data, signature, cert) => {
          let key = publicKeys.get(cert);
          if (key === undefined) {
            key = createPublicKey(cert.publicKeyPem);
            publicKeys.set(cert, key);
          }
          return verifyPss(data, signature, key);
        },
        checkClientCertificate: async (cert, mode) => {
          if (mode !== 'auth') return;
          onChecked(await checkClientCertificate(kdc.ca, cert));
        },
        testing: { nonce: SERVER_NONCE, dhPrivateKey: SERVER_DH },
      }),
    authenticated: (conn) => {
      if (conn.identity.serialHex !== '') kdc.sessions.add(conn);
    },
    closed: (conn) => kdc.sessions.delete(conn),
    log: (line) => logs.push(line),
  };

  const connection = (): { sock: FakeSocket; conn: Connection } => {
    const sock = new FakeSocket();
    const conn = new Connection(sock as unknown as WebSocket, '127.0.0.1', host);
    conn.start();
    return { sock, conn };
  };

  const fixedHandshake = async (
    kind: 'client' | 'admin' | 'enroll',
    name?: string,
  ): Promise<FixedHandshake> => {
    const mode: HandshakeMode = kind === 'enroll' ? 'enroll' : 'auth';
    const identity =
      kind === 'enroll'
        ? undefined
        : await issueTestClient(kdc.ca, name ?? `fuzz-${kind}`, kind === 'admin' ? { role: 'admin' } : {});
    const clientSign = identity === undefined ? undefined : memoSigner(identity.privateKey);
    const ca = kdc.ca.caCert;
    const newClient = (): ClientHandshake =>
      new ClientHandshake({
        mode,
        groups: DH_GROUPS,
        group: 'x25519',
        ...(identity === undefined
          ? {}
          : { credentials: { certificateDer: identity.cert.der, sign: clientSign! } }),
        checkServerCertificate: (cert) => {
          const verdict = verifyCertificate(cert, ca, { usage: 'serverAuth', expectName: 'kdc' });
          if (verdict.code !== 'ok') throw verdictToError(verdict);
        },
        testing: { nonce: CLIENT_NONCE, dhPrivateKey: CLIENT_DH },
      });

    // Run it once for real to learn the fixed frames.
    const first = connection();
    const hs = newClient();
    const clientHello = hs.clientHello();
    first.sock.deliver(clientHello);
    const serverHello = await first.sock.next();
    if (serverHello === undefined)
      throw new Error(`fixed handshake refused at hello: close ${first.sock.closeCode}`);
    const { clientFinish } = await hs.receiveServerHello(serverHello);
    const sh = decodeFrame(serverHello) as ServerHello;
    const z = generateDhKeyPair('x25519', CLIENT_DH).deriveSharedSecret(sh.share);
    const keys = deriveTrafficKeys(z, transcriptHash(clientHello, serverHello, clientFinish));
    first.sock.deliver(clientFinish);
    const ready = await first.sock.next();
    if (ready === undefined)
      throw new Error(`fixed handshake refused at finish: close ${first.sock.closeCode}`);
    first.sock.peerClose();

    const open = async (): Promise<FakeSession> => {
      const { sock, conn } = connection();
      sock.deliver(clientHello);
      const again = await sock.next();
      if (again === undefined || !again.equals(serverHello))
        throw new Error('the fixed handshake is not reproducible');
      sock.deliver(clientFinish);
      const sealer = new RecordSealer(keys.c2sKey, keys.c2sIv, 'c2s');
      const opener = new RecordOpener(keys.s2cKey, keys.s2cIv, 's2c');
      const readNext = async (timeoutMs = 5_000): Promise<Record<string, unknown> | undefined | 'hang'> => {
        const frame = await within(sock.next(), timeoutMs);
        if (frame === 'hang' || frame === undefined) return frame;
        const record = decodeFrame(frame);
        if (record.t === 'alert') return { t: 'alert', code: record.code, message: record.message };
        if (record.t !== 'r') throw new Error(`unexpected frame ${record.t} after the handshake`);
        return decodeValue(opener.open(record.c)).value;
      };
      const readyPush = await readNext();
      if (readyPush === 'hang' || readyPush === undefined || readyPush.t !== 'ready') {
        throw new Error(`no ready push: ${JSON.stringify(readyPush)} (close ${sock.closeCode})`);
      }
      return {
        sock,
        conn,
        seal: (plaintext) => encodeFrame({ t: 'r', c: sealer.seal(plaintext) }),
        send: (frame) => sock.deliver(frame),
        next: readNext,
        close: async () => {
          sock.peerClose();
          await sock.closed;
        },
      };
    };
    return { mode, identity, clientHello, serverHello, clientFinish, keys, open };
  };

  return { kdc, logs, connection, fixedHandshake };
}
