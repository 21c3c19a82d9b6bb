// docs/architecture.md is the map of the tree: every path its map names (the first column, and the
// modules listed for a folder) must exist, so a file moved or renamed without the map fails here.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/kds-process.js';

const doc = readFileSync(join(REPO_ROOT, 'docs/architecture.md'), 'utf8');
const map = doc.split('```')[1] ?? '';

t.test('every path in the map exists', async (t) => {
  const rows = map.split('\n').filter((line) => /^[a-z]/.test(line));
  t.ok(rows.length >= 20, `the map has its rows (${rows.length})`);
  for (const row of rows) {
    const path = row.split(/\s+/)[0] ?? '';
    t.ok(existsSync(join(REPO_ROOT, path)), path);
  }
});

t.test('the modules named for the folders split into modules exist', async (t) => {
  for (const [folder, names] of [
    [
      'client/keys',
      ['key-client', 'key-inbox', 'prekey-stock', 'key-records', 'key-party', 'key-store', 'listen', 'open'],
    ],
    [
      'server/keys',
      [
        'service',
        'key-context',
        'key-parties',
        'key-prekeys',
        'e2e-deposit',
        'key-create',
        'key-verify',
        'key-lookup',
        'key-revoke',
        'key-sweep',
        'key-quotas',
        'key-messages',
        'delivery-queue',
      ],
    ],
    ['shared/crypto', ['dh', 'aead', 'hkdf', 'hash', 'ct', 'random', 'rsa', 'signer']],
    ['server/ca', ['init', 'issue', 'revocations', 'revocation-index', 'revoke', 'crl-sign', 'crl-files']],
    [
      'server/store',
      [
        'rows',
        'sqlite-store',
        'sqlite-wal-sync',
        'sqlite-sql',
        'sqlite-settings',
        'sqlite-certificates',
        'sqlite-tokens',
        'sqlite-audit',
        'sqlite-keys',
      ],
    ],
  ] as const) {
    for (const name of names) {
      t.ok(map.includes(name), `${name} is on the map`);
      t.ok(existsSync(join(REPO_ROOT, folder, `${name}.ts`)), `${folder}/${name}.ts`);
    }
  }
});
