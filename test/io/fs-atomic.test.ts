import t from 'tap';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePrivateDir, writeFileAtomic } from '../../io/fs-atomic.js';
import { tempDir } from '../helpers/tmp.js';

t.test('writeFileAtomic replaces the file with exactly the mode asked', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'x.pem');
  writeFileSync(file, 'old', { mode: 0o666 });
  const umask = process.umask(0o077);
  t.teardown(() => process.umask(umask));
  writeFileAtomic(file, 'new contents', 0o644);
  t.equal(readFileSync(file, 'utf8'), 'new contents');
  t.equal(statSync(file).mode & 0o777, 0o644, 'umask not applied, old mode not kept');
  writeFileAtomic(file, Buffer.from([1, 2, 3]));
  t.same([...readFileSync(file)], [1, 2, 3]);
  t.equal(statSync(file).mode & 0o777, 0o600, 'default is private');
  t.same(readdirSync(dir), ['x.pem'], 'no temporary file left behind');
});

t.test('a failed write leaves the old file and no temporary file', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'missing-dir', 'y');
  t.throws(() => writeFileAtomic(file, 'data'), { code: 'io_error' });
  const target = join(dir, 'target');
  mkdirSync(target); // rename(2) cannot replace a directory with a file
  t.throws(() => writeFileAtomic(target, 'data'), { code: 'io_error' });
  t.same(readdirSync(dir), ['target']);
});

t.test('ensurePrivateDir creates nested 0700 directories and tightens existing ones', async (t) => {
  const dir = tempDir(t);
  const nested = join(dir, 'a', 'b');
  ensurePrivateDir(nested);
  t.equal(statSync(nested).mode & 0o777, 0o700);
  chmodSync(nested, 0o755);
  ensurePrivateDir(nested);
  t.equal(statSync(nested).mode & 0o777, 0o700);
  writeFileSync(join(dir, 'file'), '');
  t.throws(() => ensurePrivateDir(join(dir, 'file')), { code: 'io_error' });
});
