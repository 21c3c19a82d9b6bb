// The KEK ring (server/keys/kek.ts): files, modes, versions, rotation, wrong passphrase, tampering.
import t from 'tap';
import { readdirSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { KeyEncryptionKeys } from '../../../server/keys/kek.js';
import { newKeySerial } from '../../../shared/keys/serial.js';
import { tempDir } from '../../helpers/tmp.js';

const cost = { log2N: 14, r: 8, p: 1 };

t.test('created lazily at version 1, files 0600 in a 0700 dir, reopened with the passphrase', async (t) => {
  const dir = tempDir(t);
  const ring = await KeyEncryptionKeys.open(dir, 'pw', { cost });
  t.equal(ring.currentVersion, 1);
  t.equal(statSync(join(dir, 'kek')).mode & 0o777, 0o700);
  t.equal(statSync(join(dir, 'kek', 'kek-v1.bin')).mode & 0o777, 0o600);
  t.same(readdirSync(join(dir, 'kek')), ['kek-v1.bin'], 'no temporary files left');
  const key = Buffer.alloc(32, 5);
  const serial = newKeySerial();
  const w = ring.wrap(serial, key);
  t.equal(w.version, 1);
  t.equal(w.wrapped.length, 60);
  t.notOk(w.wrapped.includes(key), 'never the plaintext key');
  const again = await KeyEncryptionKeys.open(dir, 'pw', { cost });
  t.ok(again.unwrap(serial, w.wrapped, 1).equals(key), 'another process opens it with the same KEK');
  t.notOk(
    readFileSync(join(dir, 'kek', 'kek-v1.bin')).includes(again.wrap(serial, key).wrapped.subarray(0, 12)),
    'sanity',
  );
});

t.test('wrong passphrase, tampering, renamed versions are refused', async (t) => {
  const dir = tempDir(t);
  await KeyEncryptionKeys.open(dir, 'pw', { cost });
  await t.rejects(KeyEncryptionKeys.open(dir, 'wrong', { cost }), { code: 'bad_passphrase' });
  await t.rejects(KeyEncryptionKeys.open(dir, '', { cost }), { code: 'config' });
  const file = join(dir, 'kek', 'kek-v1.bin');
  const raw = readFileSync(file);
  const bad = Buffer.from(raw);
  bad[bad.length - 1]! ^= 1;
  writeFileSync(file, bad);
  await t.rejects(KeyEncryptionKeys.open(dir, 'pw', { cost }), { code: 'bad_passphrase' }, 'flipped tag');
  const weak = Buffer.from(raw);
  weak[12] = 10; // log2(N) below the floor
  writeFileSync(file, weak);
  await t.rejects(KeyEncryptionKeys.open(dir, 'pw', { cost }), { code: 'malformed' }, 'weakened scrypt cost');
  writeFileSync(file, raw);
  renameSync(file, join(dir, 'kek', 'kek-v2.bin'));
  await t.rejects(
    KeyEncryptionKeys.open(dir, 'pw', { cost }),
    { code: 'malformed' },
    'file renamed to another version',
  );
});

t.test(
  'rotation: new keys use the new version, old wrapped keys still open; AAD binds serial and version',
  async (t) => {
    const dir = tempDir(t);
    const ring = await KeyEncryptionKeys.open(dir, 'pw', { cost });
    const key = Buffer.alloc(32, 9);
    const serial = newKeySerial();
    const old = ring.wrap(serial, key);
    t.equal(await ring.rotate(), 2);
    const fresh = ring.wrap(serial, key);
    t.equal(fresh.version, 2);
    t.ok(ring.unwrap(serial, old.wrapped, 1).equals(key));
    t.ok(ring.unwrap(serial, fresh.wrapped, 2).equals(key));
    t.throws(() => ring.unwrap(serial, old.wrapped, 2), { code: 'bad_mac' }, 'wrong version label');
    t.throws(
      () => ring.unwrap(newKeySerial(), old.wrapped, 1),
      { code: 'bad_mac' },
      'copied onto another serial',
    );
    t.throws(() => ring.unwrap(serial, old.wrapped, 7), { code: 'config' }, 'unknown version');
    const reopened = await KeyEncryptionKeys.open(dir, 'pw', { cost });
    t.same(reopened.versions, [1, 2]);
    t.equal(reopened.currentVersion, 2);
  },
);

t.test('concurrent first opens agree on one version-1 KEK', async (t) => {
  const dir = tempDir(t);
  const rings = await Promise.all([0, 1, 2].map(() => KeyEncryptionKeys.open(dir, 'pw', { cost })));
  const serial = newKeySerial();
  const w = rings[0]!.wrap(serial, Buffer.alloc(32, 1));
  for (const r of rings) t.ok(r.unwrap(serial, w.wrapped, 1).equals(Buffer.alloc(32, 1)));
  t.same(readdirSync(join(dir, 'kek')), ['kek-v1.bin']);
  // The creator keeps the KEK it wrote without reading it back: every ring, the creator's included,
  // holds the key that is on disk, as a later open (a restart) reads it.
  const later = await KeyEncryptionKeys.open(dir, 'pw', { cost });
  for (const [i, r] of rings.entries()) {
    const mine = r.wrap(serial, Buffer.alloc(32, i + 2));
    t.ok(later.unwrap(serial, mine.wrapped, 1).equals(Buffer.alloc(32, i + 2)), `ring ${i}: the file's KEK`);
  }
});
