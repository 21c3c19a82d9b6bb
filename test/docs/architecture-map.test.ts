// docs/architecture.md is the map of the tree: every path its map names (the first column, and the
// modules listed for a folder) must exist, so a file moved or renamed without the map fails here; and
// every source folder is on the map, so a folder added without it fails too.
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
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

t.test('every source folder is on the map', async (t) => {
  const SOURCE = /\.(ts|js|html|css)$/;
  const folders: string[] = [];
  for (const top of ['cli', 'shared', 'io', 'server', 'client', 'web', 'bench', 'tools']) {
    const walk = (dir: string): void => {
      const entries = readdirSync(join(REPO_ROOT, dir), { withFileTypes: true });
      if (entries.some((e) => e.isFile() && SOURCE.test(e.name))) folders.push(dir);
      // bench/results holds measurements (git-ignored), not code.
      for (const e of entries)
        if (e.isDirectory() && `${dir}/${e.name}` !== 'bench/results') walk(`${dir}/${e.name}`);
    };
    walk(top);
  }
  t.ok(folders.length >= 30, `the tree has its folders (${folders.length})`);
  for (const folder of folders) t.ok(map.includes(`${folder}/`), `${folder}/ is on the map`);
});
