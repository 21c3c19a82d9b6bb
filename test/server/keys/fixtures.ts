// Fixtures for the key-service tests: a store with three enrolled clients (real certificates from a
// test CA built with shared/pki), a revocation map standing in for the CA, and recording sessions.
import type { RsaKeyPair } from '../../../shared/crypto/rsa.js';
import { parseCertificate, type ParsedCertificate } from '../../../shared/pki/x509.js';
import { SqliteStore } from '../../../server/store/sqlite-store.js';
import type { KeyLimits } from '../../../server/keys/key-quotas.js';
import { KeyService } from '../../../server/keys/service.js';
import { makeCa, issue } from '../../shared/pki/pki-fixtures.js';
import { tempDir } from '../../helpers/tmp.js';
import { pooledKeyPair } from '../../helpers/template.js';
import { asyncSqliteStore } from '../../../server/store/sqlite-async-store.js';
import type { AsyncStore } from '../../../server/store/async-store.js';
import { PgStore } from '../../../server/store/pg-store.js';
import { pgTestSchema } from '../../helpers/pg.js';

export interface Client {
  name: string;
  keys: RsaKeyPair;
  cert: ParsedCertificate;
  caller: { name: string; serialHex: string; role: string };
}

export interface Pushed {
  type: string;
  body: Record<string, unknown>;
}

const ADMIN_SERIAL = 'ad';

let material: Promise<{ ca: ParsedCertificate; clients: Client[] }> | undefined;

/**
 * One CA and three client identities per test process, their keys from the run's pool (slots 6-9,
 * test/helpers/template.ts): RSA keygen is slow, and some twenty files import this.
 */
function identities(): Promise<{ ca: ParsedCertificate; clients: Client[] }> {
  material ??= (async () => {
    const keys = await Promise.all([6, 7, 8, 9].map((slot) => pooledKeyPair(slot)));
    const ca = await makeCa('kds test root', keys[0]);
    const clients: Client[] = [];
    for (const [i, name] of ['alice', 'bob', 'carol'].entries()) {
      const cert = parseCertificate(await issue(ca, 'client', name, keys[i + 1]!.publicKeyPem));
      clients.push({
        name,
        keys: keys[i + 1]!,
        cert,
        caller: { name, serialHex: cert.serialHex, role: 'client' },
      });
    }
    return { ca: parseCertificate(ca.certPem), clients };
  })();
  return material;
}

export interface Harness {
  dir: string;
  store: SqliteStore;
  service: KeyService;
  revocations: Map<string, { reason: string; revokedAt: number }>;
  online: Map<string, Pushed[]>;
  clock: { now: number };
  ca: ParsedCertificate;
  alice: Client;
  bob: Client;
  carol: Client;
  admin: { name: string; serialHex: string; role: string };
  /** A new KeyService on the same store (a server restart). */
  restart(): KeyService;
  /** The async view of the store the services use. */
  asyncStore: AsyncStore;
  /** Another node's KeyService on the same store: announcing as `name`, its own sessions `online`. */
  node(name: string, online: Map<string, Pushed[]>): KeyService;
}

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

export async function harness(t: TestLike, opts: { limits?: Partial<KeyLimits> } = {}): Promise<Harness> {
  const { ca, clients } = await identities();
  const dir = tempDir(t);
  const store = SqliteStore.open(dir);
  t.teardown(() => store.close());
  for (const c of clients) {
    store.insertIssuedCertificate({
      serialHex: c.cert.serialHex,
      name: c.name,
      role: 'client',
      notBefore: c.cert.notBefore,
      notAfter: c.cert.notAfter,
      issuedAt: c.cert.notBefore,
      pem: c.cert.pem,
      fingerprint256: c.cert.fingerprint256,
    });
  }
  // The admin caller below: every write re-checks its caller's certificate row (server/kdc/caller-status.ts).
  store.insertIssuedCertificate({
    serialHex: ADMIN_SERIAL,
    name: 'admin',
    role: 'admin',
    notBefore: Date.now() - 60_000,
    notAfter: Date.now() + 365 * 24 * 3600 * 1000,
    issuedAt: Date.now() - 60_000,
    pem: 'an admin certificate (never parsed by the key-service tests)',
    fingerprint256: ADMIN_SERIAL,
  });
  const revocations = new Map<string, { reason: string; revokedAt: number }>();
  const online = new Map<string, Pushed[]>();
  const clock = { now: Date.now() };
  const asyncStore = asyncSqliteStore(store);
  const make = (node?: string, sessions = online): KeyService =>
    new KeyService({
      store: asyncStore,
      ca: { revocationOf: (s) => revocations.get(s) },
      sessions: {
        byName: (name) => {
          const box = sessions.get(name);
          return box === undefined ? [] : [{ closed: false, push: (type, body) => box.push({ type, body }) }];
        },
      },
      dataDir: dir,
      passphrase: () => 'test-passphrase',
      now: () => clock.now,
      ...(opts.limits === undefined ? {} : { limits: opts.limits }),
      ...(node === undefined ? {} : { node }),
    });
  const [alice, bob, carol] = clients as [Client, Client, Client];
  return {
    dir,
    store,
    service: make(),
    revocations,
    online,
    clock,
    ca,
    alice,
    bob,
    carol,
    admin: { name: 'admin', serialHex: ADMIN_SERIAL, role: 'admin' },
    restart: () => make(),
    asyncStore,
    node: make,
  };
}

export interface PgHarness {
  store: PgStore;
  service: KeyService;
  online: Map<string, Pushed[]>;
  alice: Client;
  bob: Client;
  carol: Client;
}

/**
 * The key service on PostgreSQL (a schema of its own in the test database, dropped at teardown), with
 * the same three clients: for the paths whose rollback or commit the engine itself carries.
 */
export async function pgHarness(t: TestLike, opts: { limits?: Partial<KeyLimits> } = {}): Promise<PgHarness> {
  const { clients } = await identities();
  const { url } = pgTestSchema(t);
  const store = await PgStore.open(url);
  t.teardown(() => store.close());
  for (const c of clients) {
    await store.insertIssuedCertificate({
      serialHex: c.cert.serialHex,
      name: c.name,
      role: 'client',
      notBefore: c.cert.notBefore,
      notAfter: c.cert.notAfter,
      issuedAt: c.cert.notBefore,
      pem: c.cert.pem,
      fingerprint256: c.cert.fingerprint256,
    });
  }
  const online = new Map<string, Pushed[]>();
  const service = new KeyService({
    store,
    ca: { revocationOf: () => undefined },
    sessions: {
      byName: (name) => {
        const box = online.get(name);
        return box === undefined ? [] : [{ closed: false, push: (type, body) => box.push({ type, body }) }];
      },
    },
    dataDir: tempDir(t),
    passphrase: () => 'test-passphrase',
    ...(opts.limits === undefined ? {} : { limits: opts.limits }),
  });
  const [alice, bob, carol] = clients as [Client, Client, Client];
  return { store, service, online, alice, bob, carol };
}
