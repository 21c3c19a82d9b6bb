// A certificate revocation whose follow-up fails right after its commit (what a store connection cut
// just after the COMMIT does, injected here deterministically): the key cascade's transaction fails
// once, or the published delta CRL file cannot be written. The admin is answered `revoked` (it is: an
// error would invite a retry that only says `already_revoked`), the holder's session is closed, and
// within a few revocation-sync rounds the holder's key is revoked with its peer told (key.revoked
// pushed), or the files equal the store's CRLs again. On SQLite and on PostgreSQL.
import t from 'tap';
import type * as Tap from 'tap';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { openAdminSession } from '../../../client/admin.js';
import { initCa } from '../../../server/ca/init.js';
import type { AsyncStore, AsyncStoreTx } from '../../../server/store/async-store.js';
import { EnvironmentError } from '../../../shared/errors.js';
import { TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { issueTestClient, sessionFor, startTestKdc, type TestKdc } from '../../helpers/kdc-in-process.js';
import { pgTestSchema } from '../../helpers/pg.js';
import { tempDir } from '../../helpers/tmp.js';

t.setTimeout(180_000);

/** Short, so "the next rounds" are quick; the production default is 2 s. */
const SYNC_MS = 100;

async function kdcOn(t: Tap.Test, engine: 'sqlite' | 'postgres'): Promise<TestKdc> {
  if (engine === 'sqlite') return startTestKdc(t, { revocationSyncMs: SYNC_MS });
  // The KDC closes before its schema is dropped.
  const started: { kdc?: TestKdc } = {};
  const { url } = pgTestSchema(t, async () => started.kdc?.kdc.close());
  const dataDir = join(tempDir(t), 'data');
  await initCa({ dataDir, caKeyBits: 2048, passphrase: TEST_CA_PASSPHRASE, storeUrl: url });
  started.kdc = await startTestKdc(t, { dataDir, storeUrl: url, revocationSyncMs: SYNC_MS });
  return started.kdc;
}

/**
 * The next transaction that deletes a name's prekeys (only the certificate cascade does) fails there,
 * once, rolling back the keys it had revoked in it.
 */
function failCascadeOnce(store: AsyncStore): { failed: () => boolean } {
  let failed = false;
  const transaction = store.transaction.bind(store);
  Object.defineProperty(store, 'transaction', {
    value: <T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T> =>
      transaction((tx) =>
        fn(
          new Proxy(tx, {
            get(target, prop) {
              if (prop === 'deletePrekeys' && !failed) {
                return () => {
                  failed = true;
                  return Promise.reject(
                    new EnvironmentError('unavailable', 'injected: store connection cut'),
                  );
                };
              }
              const value: unknown = Reflect.get(target, prop);
              return typeof value === 'function'
                ? (value as (...a: unknown[]) => unknown).bind(target)
                : value;
            },
          }),
        ),
      ),
  });
  return { failed: () => failed };
}

async function eventually(t: Tap.Test, what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const waitMs = 20 * SYNC_MS + 5_000;
  const deadline = Date.now() + waitMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      t.fail(`${what}: not within ${waitMs} ms`);
      return;
    }
    await new Promise((r) => setTimeout(r, SYNC_MS / 2));
  }
  t.pass(what);
}

for (const engine of ['sqlite', 'postgres'] as const) {
  t.test(`${engine}: a key cascade that fails after the commit is retried`, async (t) => {
    const { kdc, dataDir } = await kdcOn(t, engine);
    const alice = await issueTestClient(kdc.ca, 'alice');
    const bob = await issueTestClient(kdc.ca, 'bob');
    const aliceSession = await sessionFor(kdc, alice);
    const bobSession = await sessionFor(kdc, bob);
    t.teardown(() => bobSession.close());
    const revokedPushes: unknown[] = [];
    bobSession.onPush('key.revoked', (body) => revokedPushes.push(body.serial));
    const { serial } = await aliceSession.request('key.create', { peer: 'bob' });
    t.equal((await kdc.ca.store.getSymKey(serial))?.state, 'active');

    const cascade = failCascadeOnce(kdc.ca.store);
    const admin = await openAdminSession({ dataDir, server: kdc.url, passphrase: TEST_CA_PASSPHRASE });
    t.teardown(() => admin.close());
    const reply = await admin.request('cert.revoke', { name: 'alice', reason: 'keyCompromise' });
    t.match(reply, { status: 'revoked', serial: alice.cert.serialHex }, 'the admin is told it is revoked');
    t.ok(cascade.failed(), 'the cascade failed once');
    t.equal(kdc.sessions.bySerial(alice.cert.serialHex).length, 0, 'the holder’s session is closed');
    await aliceSession.closed;
    await eventually(t, 'the key is revoked by the retried cascade', async () => {
      const key = await kdc.ca.store.getSymKey(serial);
      return key?.state === 'revoked' && key.revokedReason === 'certificateRevoked';
    });
    await eventually(t, 'the peer is told', () => revokedPushes.includes(serial));
  });

  t.test(`${engine}: CRL files not written after the commit catch up with the store`, async (t) => {
    const { kdc, dataDir } = await kdcOn(t, engine);
    const alice = await issueTestClient(kdc.ca, 'alice');
    const aliceSession = await sessionFor(kdc, alice);
    const deltaFile = join(dataDir, 'root_delta_crl.pem');
    rmSync(deltaFile);
    mkdirSync(deltaFile); // the atomic rename over it fails until it is gone

    const admin = await openAdminSession({ dataDir, server: kdc.url, passphrase: TEST_CA_PASSPHRASE });
    t.teardown(() => admin.close());
    const reply = await admin.request('cert.revoke', { name: 'alice', reason: 'keyCompromise' });
    t.match(reply, { status: 'revoked', serial: alice.cert.serialHex }, 'the admin is told it is revoked');
    t.equal(kdc.sessions.bySerial(alice.cert.serialHex).length, 0, 'the holder’s session is closed');
    await aliceSession.closed;

    rmSync(deltaFile, { recursive: true });
    await eventually(t, 'the CRL files catch up with the store', () => {
      try {
        return (
          readFileSync(deltaFile, 'utf8') === kdc.ca.currentDeltaCrlPem() &&
          readFileSync(join(dataDir, 'root_crl.pem'), 'utf8') === kdc.ca.currentCrlPem()
        );
      } catch {
        return false;
      }
    });
  });
}
