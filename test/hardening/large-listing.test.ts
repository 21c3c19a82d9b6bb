// Found by the full-size fuzz run (fuzz-app.test.ts, KDS_FUZZ_APP=10000): once a client held a few
// hundred keys, `key.list` (and `admin.keys`) answered `internal`, because the listing no longer fitted
// in one record (MAX_RECORD_PLAINTEXT) and sealing the reply failed. Listings now carry the newest keys
// that fit, flagged `truncated` (server/keys/handlers.ts listing()).
import t from 'tap';
import { loadAdminCredentials } from '../../client/admin.js';
import { openSession } from '../../client/session.js';
import { issueTestClient, sessionFor, startTestKdc } from '../helpers/kdc-in-process.js';
import { TEST_CA_PASSPHRASE } from '../helpers/kds-process.js';

// Enough that the full listing (~140 bytes of msgpack a key) could not fit in one 64 KiB record.
const KEYS = 600;

t.test(
  'key.list and admin.keys with hundreds of keys: the newest that fit, truncated',
  { timeout: 180_000 },
  async (t) => {
    // 600 keys from one client to one (offline) peer in a few seconds: far past the per-peer bounds of
    // docs/keys.md "Quotas", which this test is not about.
    const { kdc, dataDir } = await startTestKdc(t, {
      rateLimit: false,
      keyLimits: {
        activeKeysPerPair: KEYS,
        queuedKeyNoticesPerPair: KEYS,
        creation: { burst: KEYS, perSecond: 1 },
      },
    });
    const alice = await sessionFor(kdc, await issueTestClient(kdc.ca, 'alice'));
    await issueTestClient(kdc.ca, 'bob');
    const created: string[] = [];
    for (let i = 0; i < KEYS; i++)
      created.push(String((await alice.request('key.create', { peer: 'bob' })).serial));

    const list = await alice.request('key.list', {});
    const keys = list.keys as { serial: string }[];
    t.equal(list.truncated, true, 'key.list says it was truncated');
    t.ok(keys.length > 50 && keys.length < KEYS, `key.list returned ${keys.length} of ${KEYS} keys`);
    t.same(
      keys.map((k) => k.serial),
      created.slice(KEYS - keys.length),
      'the newest keys, oldest first, none skipped',
    );

    const admin = loadAdminCredentials(dataDir, { passphrase: TEST_CA_PASSPHRASE });
    const adminSession = await openSession({
      server: kdc.url,
      mode: 'auth',
      credentials: { privateKey: admin.privateKey, certPem: admin.certPem },
      caCertPem: kdc.ca.caCertPem,
    });
    const all = await adminSession.request('admin.keys', {});
    t.equal(all.truncated, true, 'admin.keys says it was truncated');
    t.ok((all.keys as unknown[]).length > 50, `admin.keys returned ${(all.keys as unknown[]).length} keys`);
    await Promise.all([alice.close(), adminSession.close()]);
  },
);
