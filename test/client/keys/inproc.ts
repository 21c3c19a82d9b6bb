// An in-process KDC for key-distribution tests that need to reach inside (a malicious relay wrapping a
// session, many quick restarts for the property test): a data dir from `kds server init` (the shared
// test template), startKdc on 127.0.0.1 port 0, and clients whose certificates the KDC's own CA
// issues directly (no enrollment round trip). RSA keys come from the run's pool (test/helpers/template.ts:
// generated once per tap run, distinct per name), or are generated once per test process for other names.
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { generateRsaKeyPair, type RsaKeyPair } from '../../../shared/crypto/rsa.js';
import { createCsr } from '../../../shared/pki/csr.js';
import { parseCertificate } from '../../../shared/pki/x509.js';
import { startKdc, type Kdc, type KdcOptions } from '../../../server/kdc/kdc.js';
import { writeClientHome, readClientHome } from '../../../client/home.js';
import { openSession, type ClientSession } from '../../../client/session.js';
import { ClientKeyStore } from '../../../client/keys/key-store.js';
import { KeyClient, type KeyEvent, type KeySession } from '../../../client/keys/key-client.js';
import { initDataDir, TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { pooledKeyPair } from '../../helpers/template.js';

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

/** Pool slots of the usual names (slot 0 is test/helpers/kdc-in-process.ts's): one key pair per name. */
const POOLED = new Map([
  ['alice', 1],
  ['bob', 2],
  ['carol', 3],
  ['eve', 4],
]);
const keyCache = new Map<string, Promise<RsaKeyPair>>();
function keysFor(name: string): Promise<RsaKeyPair> {
  let p = keyCache.get(name);
  if (p === undefined) {
    const slot = POOLED.get(name);
    p = slot === undefined ? generateRsaKeyPair(2048) : pooledKeyPair(slot);
    keyCache.set(name, p);
  }
  return p;
}

type Body = Record<string, unknown>;

/**
 * The request function of a test relay that answers or rewrites replies itself. The catalog's types
 * bind the client's own code; a relay playing a hostile KDC answers whatever it likes (the client under
 * test must cope), so what it returns is a plain map: the one place the relays' replies are cast.
 * `forward` sends the request on to the real session.
 */
export function relayRequest(
  s: KeySession,
  fn: (type: string, body: Body, forward: () => Promise<Body>) => Promise<Body>,
): KeySession['request'] {
  return (type, body) => fn(type, body as Body, () => s.request(type, body)) as Promise<never>;
}

export interface OpenedClient {
  client: KeyClient;
  session: ClientSession;
  events: KeyEvent[];
  close(): Promise<void>;
}

export interface Env {
  dataDir: string;
  kdc: Kdc;
  url: string;
  home(name: string): string;
  /** Open a KeyClient for `name`; `wrap` lets a test play a relay between it and its session. */
  open(
    name: string,
    opts?: {
      wrap?: (s: ClientSession) => KeySession;
      acceptMessages?: boolean;
      start?: boolean;
      /** The client's clock (prekey housekeeping tests move it past PREKEY_UPLOAD_GRACE_MS). */
      now?: () => number;
    },
  ): Promise<OpenedClient>;
  /** Stop the KDC and start it again on the same port and data dir. */
  restart(): Promise<void>;
}

export async function inProcessKdc(
  t: TestLike,
  names: readonly string[],
  opts: { keyLimits?: KdcOptions['keyLimits']; events?: KdcOptions['events'] } = {},
): Promise<Env> {
  const dataDir = await initDataDir(t);
  const start = (port = 0): Promise<Kdc> =>
    startKdc({
      dataDir,
      host: '127.0.0.1',
      port,
      passphrase: TEST_CA_PASSPHRASE,
      rateLimit: false,
      log: () => {},
      ...(opts.keyLimits === undefined ? {} : { keyLimits: opts.keyLimits }),
      ...(opts.events === undefined ? {} : { events: opts.events }),
    });
  let kdc = await start();
  const port = kdc.port;
  const opened = new Set<OpenedClient>();
  t.teardown(async () => {
    for (const o of opened) await o.close().catch(() => undefined);
    await kdc.close();
  });
  const home = (name: string): string => join(dataDir, 'clients', name);
  for (const name of names) {
    const keys = await keysFor(name);
    const csr = await createCsr(name, keys.privateKeyPem, keys.publicKeyPem);
    const cert = await kdc.ca.issueFromCsr(csr, { name, actor: 'test' });
    writeClientHome(
      home(name),
      { privateKey: createPrivateKey(keys.privateKeyPem), certPem: cert.pem, caPem: kdc.ca.caCertPem },
      undefined,
    );
  }
  const env: Env = {
    dataDir,
    get kdc() {
      return kdc;
    },
    get url() {
      return kdc.url;
    },
    home,
    async open(name, opts = {}) {
      const files = readClientHome(home(name), undefined);
      const session = await openSession({
        server: kdc.url,
        mode: 'auth',
        credentials: { privateKey: files.privateKey, certPem: files.certPem },
        caCertPem: files.caPem,
      });
      const events: KeyEvent[] = [];
      const client = new KeyClient({
        session: opts.wrap === undefined ? session : opts.wrap(session),
        name,
        certSerial: session.facts.identity.serialHex,
        identityKey: files.privateKey,
        ca: parseCertificate(files.caPem),
        store: ClientKeyStore.open(home(name), name, files.privateKey),
        acceptMessages: opts.acceptMessages ?? true,
        onEvent: (e) => events.push(e),
        ...(opts.now === undefined ? {} : { now: opts.now }),
      });
      if (opts.start !== false) await client.start();
      const o: OpenedClient = {
        client,
        session,
        events,
        close: async () => {
          opened.delete(o);
          await client.idle().catch(() => undefined);
          client.detach();
          await session.close().catch(() => undefined);
        },
      };
      opened.add(o);
      return o;
    },
    async restart() {
      await kdc.close();
      for (let attempt = 0; ; attempt += 1) {
        try {
          kdc = await start(port);
          return;
        } catch (err) {
          if (attempt > 20 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
  return env;
}
