// `kds server init --force` replaces the CA of a data directory a KDC has run on: everything of the old
// CA goes into replaced-<time>/ (so it can be restored from there alone), and the new KDC starts clean.
// The key-encryption keys were once left behind: encrypted under the old passphrase, the new KDC could
// not open them, and a KDC-generated key failed with `bad_passphrase` (a client told that a passphrase
// was wrong that is not its own).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { initDataDir, parseJson, runKds, startServer, TEST_CA_PASSPHRASE } from '../helpers/kds-process.js';
import { KeyEncryptionKeys } from '../../server/keys/kek.js';
import { openAdminSession } from '../../client/admin.js';
import { enroll } from '../../client/enroll.js';

t.setTimeout(180_000);

const NEW_PASSPHRASE = 'kds-test-ca-passphrase-of-the-new-ca';

t.test('init --force moves every file of the old CA aside, the KEKs too', async (t) => {
  const dataDir = await initDataDir(t, { kek: false });
  // A KDC that ran: the store's -wal/-shm (while it runs), the delta CRL, and kek/ (its first start).
  const first = await startServer(t, dataDir);
  await KeyEncryptionKeys.open(dataDir, TEST_CA_PASSPHRASE);
  t.equal((await first.stop()).code, 0);
  const before = readdirSync(dataDir);
  t.ok(before.includes('kek'), 'the KDC made its KEK');

  const r = await runKds(
    ['server', 'init', '--data-dir', dataDir, '--ca-key-bits', '2048', '--force', '--json'],
    {
      env: { KDS_CA_PASSPHRASE: NEW_PASSPHRASE },
    },
  );
  t.equal(r.code, 0, r.stderr);
  const { replacedDir } = parseJson<{ replacedDir: string }>(r);
  const kept = new Set(['clients', 'kds.pid']);
  for (const name of before) {
    if (kept.has(name) || name.startsWith('replaced-')) continue;
    t.ok(existsSync(join(replacedDir, name)), `${name} of the old CA is in ${replacedDir}`);
  }
  t.notOk(existsSync(join(dataDir, 'kek')), 'no KEK of the old CA is left in the data directory');
  // The old CA can be restored from the folder: its KEK is there and opens under its passphrase.
  t.ok(existsSync(join(replacedDir, 'kek', 'kek-v1.bin')), 'the old KEK is in the folder');
  t.same((await KeyEncryptionKeys.open(replacedDir, TEST_CA_PASSPHRASE)).versions, [1]);

  // The new CA's KDC: its KEK is its own, and a KDC-generated key is distributed.
  const server = await startServer(t, dataDir, [], { env: { KDS_CA_PASSPHRASE: NEW_PASSPHRASE } });
  const session = await openAdminSession({ dataDir, server: server.url, passphrase: NEW_PASSPHRASE });
  const homes: Record<string, string> = {};
  try {
    for (const name of ['alice', 'bob']) {
      const { token } = (await session.request('admin.token', { name })) as { token: string };
      homes[name] = join(dataDir, 'clients', name);
      await enroll({ server: server.url, name, token, home: homes[name], caFingerprint: server.fingerprint });
    }
  } finally {
    await session.close();
  }
  const sent = await runKds([
    'client',
    'send-key',
    '--name',
    'alice',
    '--home',
    homes.alice!,
    '--server',
    server.url,
    '--to',
    'bob',
    '--mode',
    'kdc',
    '--json',
  ]);
  t.equal(sent.code, 0, sent.stderr);
  await server.stop();
  t.notMatch(server.stderr(), /cannot decrypt the key-encryption key/);
});
