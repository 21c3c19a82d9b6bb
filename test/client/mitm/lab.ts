// An in-process lab for the MITM unit tests (not a test file): a KDC that also accepts insecure
// sessions (startKdc allowInsecure, as `kds server start --insecure-dh`), clients whose certificates
// its CA issues directly, and Mallory (startMitm) in the same process. RSA keys come from the run's pool.
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { generateRsaKeyPair, type RsaKeyPair } from '../../../shared/crypto/rsa.js';
import { createCsr } from '../../../shared/pki/csr.js';
import { startKdc, type Kdc } from '../../../server/kdc/kdc.js';
import { writeClientHome, readClientHome } from '../../../client/home.js';
import { openSession, type ClientSession } from '../../../client/session.js';
import { startMitm, type Mitm, type MitmOptions } from '../../../client/mitm/proxy.js';
import { findAttack } from '../../../client/mitm/catalog.js';
import { loadIdentity } from '../../../client/mitm/identity.js';
import type { MitmEvent } from '../../../client/mitm/context.js';
import type { Defences } from '../../../shared/lab-switches.js';
import { initDataDir, TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { pooledKeyPair } from '../../helpers/template.js';

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

/**
 * Pool slots of the lab's usual names (the named clients' slots, test/helpers/template.ts, as in
 * test/e2e/mitm-helpers.ts): one key pair per name; another name gets a key generated once per process.
 */
const POOLED = new Map([
  ['alice', 1],
  ['bob', 2],
  ['mallory', 3],
]);
const keyCache = new Map<string, Promise<RsaKeyPair>>();
function keysFor(name: string): Promise<RsaKeyPair> {
  let p = keyCache.get(name);
  if (p === undefined) {
    const slot = POOLED.get(name);
    keyCache.set(name, (p = slot === undefined ? generateRsaKeyPair(2048) : pooledKeyPair(slot)));
  }
  return p;
}

export interface MitmLab {
  kdc: Kdc;
  home(name: string): string;
  /** An authenticated (or, with `insecure`, an insecure) session of `name` to `server`. */
  session(name: string, server: string, opts?: { insecure?: boolean }): Promise<ClientSession>;
  /** Mallory in-process with `attack`; closed at teardown. `events` collects everything she emits. */
  mallory(
    attack: string,
    opts?: Omit<Partial<MitmOptions>, 'identity'> & { identity?: string },
  ): Promise<Mitm & { events: MitmEvent[] }>;
}

/** `defences`: the KDC's lab switches (shared/lab-switches.ts; default every defence on). */
export async function mitmLab(
  t: TestLike,
  names: readonly string[],
  opts: { defences?: Defences } = {},
): Promise<MitmLab> {
  const dataDir = await initDataDir(t);
  const kdc = await startKdc({
    ...(opts.defences === undefined ? {} : { defences: opts.defences }),
    dataDir,
    host: '127.0.0.1',
    port: 0,
    passphrase: TEST_CA_PASSPHRASE,
    rateLimit: false,
    allowInsecure: true,
    log: () => {},
  });
  t.teardown(() => kdc.close());
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
  return {
    kdc,
    home,
    async session(name, server, opts = {}) {
      if (opts.insecure === true)
        return openSession({ server, mode: 'insecure', insecureName: name, connectTimeoutMs: 10_000 });
      const files = readClientHome(home(name), undefined);
      return openSession({
        server,
        mode: 'auth',
        credentials: { privateKey: files.privateKey, certPem: files.certPem },
        caCertPem: files.caPem,
        connectTimeoutMs: 10_000,
      });
    },
    async mallory(attack, opts = {}) {
      const events: MitmEvent[] = [];
      const { identity, ...rest } = opts;
      const m = await startMitm({
        attack: findAttack(attack),
        target: kdc.url,
        ...(identity === undefined ? {} : { identity: loadIdentity(home(identity)) }),
        ...rest,
        onEvent: (e) => events.push(e),
      });
      t.teardown(() => m.close().then(() => undefined));
      return Object.assign(m, { events });
    },
  };
}
