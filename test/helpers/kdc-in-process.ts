// In-process KDC fixtures for tests: start a KDC on 127.0.0.1 port 0 over a fresh data directory,
// issue client certificates straight from the CA (one RSA key per test process, reused: keygen is the
// slow part), and a raw WebSocket that records every frame and the close, for feeding the server
// bytes no honest client would send. Everything is closed in t.teardown.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import WebSocket from 'ws';
import type { RsaKeyPair } from '../../shared/crypto/rsa.js';
import { createCsr } from '../../shared/pki/csr.js';
import { decodeFrame } from '../../shared/protocol/messages.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import type { CertificateAuthority } from '../../server/ca/authority.js';
import { startKdc, type Kdc, type KdcOptions } from '../../server/kdc/kdc.js';
import { openSession, type ClientSession } from '../../client/session.js';
import { initDataDir, TEST_CA_PASSPHRASE } from './kds-process.js';
import { pooledKeyPair } from './template.js';

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

/** One RSA-2048 key pair per test process (from the run's pool), shared by every test certificate. */
export function testKeyPair(): Promise<RsaKeyPair> {
  return pooledKeyPair(0);
}

export interface TestKdc {
  kdc: Kdc;
  dataDir: string;
  logs: string[];
}

export async function startTestKdc(
  t: TestLike,
  opts: Partial<KdcOptions> & { dataDir?: string } = {},
): Promise<TestKdc> {
  const dataDir = opts.dataDir ?? (await initDataDir(t));
  const logs: string[] = [];
  const kdc = await startKdc({
    port: 0,
    passphrase: TEST_CA_PASSPHRASE,
    log: (line) => logs.push(line),
    ...opts,
    dataDir,
  });
  t.teardown(() => kdc.close());
  return { kdc, dataDir, logs };
}

export interface TestClient {
  name: string;
  cert: ParsedCertificate;
  privateKey: KeyObject;
  certPem: string;
}

/** A client certificate issued directly by the CA (role client unless told), for the shared key. */
export async function issueTestClient(
  ca: CertificateAuthority,
  name: string,
  opts: { role?: 'client' | 'admin'; validity?: { notBefore: number; notAfter: number } } = {},
): Promise<TestClient> {
  const pair = await testKeyPair();
  const csr = await createCsr(name, pair.privateKeyPem, pair.publicKeyPem);
  const cert = await ca.issueFromCsr(csr, {
    name,
    actor: 'test',
    ...(opts.role === undefined ? {} : { role: opts.role }),
    ...(opts.validity === undefined ? {} : { validity: opts.validity }),
  });
  return { name, cert, certPem: cert.pem, privateKey: createPrivateKey(pair.privateKeyPem) };
}

/** An authenticated session for a TestClient against a test KDC. */
export function sessionFor(
  kdc: Kdc,
  client: { privateKey: KeyObject; certPem: string },
  extra: { dh?: 'x25519' | 'ffdhe2048' } = {},
): Promise<ClientSession> {
  return openSession({
    server: kdc.url,
    mode: 'auth',
    credentials: { privateKey: client.privateKey, certPem: client.certPem },
    caCertPem: kdc.ca.caCertPem,
    ...extra,
  });
}

export interface RawSocket {
  ws: WebSocket;
  /** Decoded frames received so far (alerts and handshake frames are plaintext maps). */
  frames: Record<string, unknown>[];
  /** The same frames as received, undecoded. */
  raws: Buffer[];
  /** Resolves with the close code and reason. */
  closed: Promise<{ code: number; reason: string }>;
  send(data: Buffer | string, binary?: boolean): void;
  /** The next frame received (already received ones first). */
  next(): Promise<Record<string, unknown>>;
}

/** A WebSocket with no protocol logic: send arbitrary bytes, observe alerts and the close. */
export async function rawSocket(
  t: TestLike,
  url: string,
  opts: { maxPayload?: number } = {},
): Promise<RawSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: opts.maxPayload ?? 1024 * 1024 });
  t.teardown(() => ws.terminate());
  const frames: Record<string, unknown>[] = [];
  const raws: Buffer[] = [];
  const waiters: ((f: Record<string, unknown>) => void)[] = [];
  let read = 0;
  ws.on('message', (data: Buffer) => {
    let frame: Record<string, unknown>;
    try {
      frame = decodeFrame(data) as unknown as Record<string, unknown>;
    } catch {
      frame = { t: '<undecodable>', bytes: data };
    }
    frames.push(frame);
    raws.push(data);
    const waiter = waiters.shift();
    if (waiter !== undefined) {
      read += 1;
      waiter(frame);
    }
  });
  ws.on('error', () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString('utf8') })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    frames,
    raws,
    closed,
    send: (data, binary = true) => ws.send(data, { binary }),
    next: () =>
      new Promise((resolve) => {
        if (read < frames.length) resolve(frames[read++]!);
        else waiters.push(resolve);
      }),
  };
}
