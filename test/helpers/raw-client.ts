// A protocol-level kds client over a real WebSocket, for attacks a well-behaved client cannot make:
// it drives the pure ClientHandshake itself and keeps every byte it sent, so a test can replay frames,
// send a mutated client_finish, or seal ANY plaintext as a record that authenticates (through the
// channel's record sealer). Connections can come from any loopback address (127.0.0.0/8 is all local
// on Linux): the flood and fuzz tests play many hosts, each with its own per-IP rate-limit bucket.
import type { KeyObject } from 'node:crypto';
import WebSocket from 'ws';
import { DH_GROUPS, type DhGroup } from '../../shared/crypto/dh.js';
import { ClientHandshake, type HandshakeMode } from '../../shared/protocol/handshake.js';
import { decodeValue, encodeValue } from '../../shared/protocol/codec.js';
import { decodeFrame, encodeFrame } from '../../shared/protocol/messages.js';
import type { RecordOpener, RecordSealer } from '../../shared/protocol/record-layer.js';
import type { ClientChannel, ServerMessage } from '../../shared/protocol/secure-channel.js';
import '../../shared/protocol/catalog.js';
import { verifyCertificate, verdictToError } from '../../shared/pki/verify.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import { pssSigner } from '../../shared/crypto/signer.js';

/** 127.0.0.2 .. 127.0.0.251: a different "host" per index (127.0.0.1 is left to honest clients). */
export function loopbackAddress(i: number): string {
  return `127.0.0.${2 + (i % 250)}`;
}

export interface RawConnection {
  ws: WebSocket;
  /** Send bytes as one binary message (or a text message). */
  send(data: Buffer, binary?: boolean): void;
  /** The next message from the server (received ones first); undefined once closed; 'hang' after timeoutMs. */
  next(timeoutMs?: number): Promise<Buffer | undefined | 'hang'>;
  /** Resolves with the close code and reason. */
  closed: Promise<{ code: number; reason: string }>;
  /** Drop the TCP connection without a close handshake. */
  destroy(): void;
}

export function rawConnect(
  url: string,
  opts: { localAddress?: string; timeoutMs?: number } = {},
): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload: 1 << 20,
      handshakeTimeout: opts.timeoutMs ?? 10_000,
      ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
    });
    ws.binaryType = 'nodebuffer';
    const received: Buffer[] = [];
    const waiters: ((b: Buffer | undefined) => void)[] = [];
    let isClosed = false;
    ws.on('message', (data: Buffer) => {
      const w = waiters.shift();
      if (w !== undefined) w(data);
      else received.push(data);
    });
    ws.on('error', () => {});
    const closed = new Promise<{ code: number; reason: string }>((res) =>
      ws.on('close', (code: number, reason: Buffer) => {
        isClosed = true;
        for (const w of waiters.splice(0)) w(undefined);
        res({ code, reason: reason.toString('utf8') });
      }),
    );
    ws.once('open', () =>
      resolve({
        ws,
        send: (data, binary = true) => {
          if (ws.readyState === ws.OPEN) ws.send(data, { binary });
        },
        next: (timeoutMs = 5_000) => {
          if (received.length > 0) return Promise.resolve(received.shift());
          if (isClosed) return Promise.resolve(undefined);
          return new Promise((res) => {
            const timer = setTimeout(() => {
              const i = waiters.indexOf(onFrame);
              if (i >= 0) waiters.splice(i, 1);
              res('hang');
            }, timeoutMs);
            const onFrame = (b: Buffer | undefined): void => {
              clearTimeout(timer);
              res(b);
            };
            waiters.push(onFrame);
          });
        },
        closed,
        destroy: () => ws.terminate(),
      }),
    );
    ws.once('error', (err) => reject(err));
  });
}

export interface RawHandshakeOptions {
  url: string;
  mode?: HandshakeMode;
  credentials?: { privateKey: KeyObject; certPem: string };
  caCertPem: string;
  group?: DhGroup;
  localAddress?: string;
}

export interface RawSession {
  conn: RawConnection;
  clientHello: Buffer;
  serverHello: Buffer;
  clientFinish: Buffer;
  channel: ClientChannel;
  /** The body of the server's `ready` push. */
  ready: Record<string, unknown>;
  /** Seal a request with the channel (validated) and send it; returns the exact frame sent. */
  request(type: string, id: number, body: Record<string, unknown>): Buffer;
  /** Seal ANY plaintext bytes as the next record (bypassing request validation); returns the frame. */
  sealRaw(plaintext: Buffer): Buffer;
  /** Next server message through the channel; an `alert` frame is returned as { kind: 'alert' }. */
  read(
    timeoutMs?: number,
  ): Promise<ServerMessage | { kind: 'alert'; code: string; message: string } | undefined | 'hang'>;
  /** Next server message decrypted and decoded WITHOUT the channel's request-id bookkeeping (for sealRaw). */
  readValue(timeoutMs?: number): Promise<Record<string, unknown> | undefined | 'hang'>;
}

/** A fresh ClientHandshake for these options (no connection yet). */
export function newClientHandshake(opts: Omit<RawHandshakeOptions, 'url' | 'localAddress'>): ClientHandshake {
  const ca = parseCertificate(opts.caCertPem);
  const creds = opts.credentials;
  const own = creds === undefined ? undefined : parseCertificate(creds.certPem);
  const group = opts.group ?? 'x25519';
  return new ClientHandshake({
    mode: opts.mode ?? 'auth',
    groups: [group, ...DH_GROUPS.filter((g) => g !== group)],
    group,
    ...(own === undefined || creds === undefined
      ? {}
      : { credentials: { certificateDer: own.der, sign: pssSigner(creds.privateKey) } }),
    checkServerCertificate: (cert) => {
      const verdict = verifyCertificate(cert, ca, { usage: 'serverAuth', expectName: 'kdc' });
      if (verdict.code !== 'ok') throw verdictToError(verdict);
    },
  });
}

/** The first half of a handshake: connect and send a fresh client_hello. */
export async function rawHello(
  opts: RawHandshakeOptions,
): Promise<{ conn: RawConnection; hs: ClientHandshake; clientHello: Buffer }> {
  const hs = newClientHandshake(opts);
  const conn = await rawConnect(
    opts.url,
    opts.localAddress === undefined ? {} : { localAddress: opts.localAddress },
  );
  const clientHello = hs.clientHello();
  conn.send(clientHello);
  return { conn, hs, clientHello };
}

/** A complete handshake up to the `ready` push, keeping every frame. */
export async function rawHandshake(opts: RawHandshakeOptions): Promise<RawSession> {
  const { conn, hs, clientHello } = await rawHello(opts);
  const serverHello = await conn.next(10_000);
  if (serverHello === undefined || serverHello === 'hang')
    throw new Error(`no server_hello (${String(serverHello)})`);
  const { clientFinish, result } = await hs.receiveServerHello(serverHello);
  conn.send(clientFinish);
  const channel = result.channel;
  const read: RawSession['read'] = async (timeoutMs = 5_000) => {
    const frame = await conn.next(timeoutMs);
    if (frame === undefined || frame === 'hang') return frame;
    const plain = decodeFrame(frame);
    if (plain.t === 'alert') return { kind: 'alert', code: plain.code, message: plain.message };
    return channel.open(frame);
  };
  const first = await read(10_000);
  if (first === undefined || first === 'hang' || first.kind !== 'push' || first.type !== 'ready') {
    throw new Error(`no ready push: ${JSON.stringify(first)}`);
  }
  // The record sealer is protected inside ClientChannel: a hostile test client reaches for it to seal
  // plaintext that sealRequest would refuse to build.
  const { sealer, opener } = channel as unknown as { sealer: RecordSealer; opener: RecordOpener };
  return {
    conn,
    clientHello,
    serverHello,
    clientFinish,
    channel,
    ready: first.body as Record<string, unknown>,
    request: (type, id, body) => {
      const frame = channel.sealRequest(type, id, body);
      conn.send(frame);
      return frame;
    },
    sealRaw: (plaintext) => encodeFrame({ t: 'r', c: sealer.seal(plaintext) }),
    read,
    readValue: async (timeoutMs = 5_000) => {
      const frame = await conn.next(timeoutMs);
      if (frame === undefined || frame === 'hang') return frame;
      const plain = decodeFrame(frame);
      if (plain.t === 'alert') return { t: 'alert', code: plain.code, message: plain.message };
      if (plain.t !== 'r') throw new Error(`unexpected ${plain.t} frame after the handshake`);
      return decodeValue(opener.open(plain.c)).value;
    },
  };
}

/** msgpack of an application request envelope (for sealRaw). */
export function requestPlaintext(type: string, id: number, body: Record<string, unknown>): Buffer {
  return encodeValue({ t: type, id, b: body });
}
