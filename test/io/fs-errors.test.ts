// io/fs-errors.ts: errno codes classified, and each said in words (synthetic errors, so the
// classification is tested whatever user runs the tests; test/e2e/unreadable-data-dir.test.ts makes
// them happen for real).
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifyErrno, describeFsProblem, entryKind, explainFsError } from '../../io/fs-errors.js';
import { tempDir } from '../helpers/tmp.js';

t.test('errno codes', async (t) => {
  t.equal(classifyErrno('ENOENT'), 'missing');
  t.equal(classifyErrno('EACCES'), 'denied');
  t.equal(classifyErrno('EPERM'), 'denied');
  t.equal(classifyErrno('ENOTDIR'), 'not_a_directory');
  t.equal(classifyErrno('EISDIR'), 'is_a_directory');
  t.equal(classifyErrno('EEXIST'), 'exists');
  t.equal(classifyErrno('EIO'), 'other');
  t.equal(classifyErrno(undefined), 'other');
});

t.test('the sentences', async (t) => {
  t.equal(
    describeFsProblem('denied', 'read', '/srv/kds/store.sqlite', {
      obstacle: { path: '/srv/kds', uid: 0, mode: 0o700 },
      uid: 1000,
    }),
    'permission denied: cannot read /srv/kds/store.sqlite: no access to /srv/kds (owned by uid 0, mode 0700); kds runs as uid 1000',
  );
  t.equal(
    describeFsProblem('not_a_directory', 'read', '/tmp/f/x', { obstacle: { path: '/tmp/f' } }),
    'cannot read /tmp/f/x: /tmp/f is a file, not a directory',
  );
  t.match(describeFsProblem('is_a_directory', 'read', '/tmp/d'), /it is a directory, not a file/);
  t.match(describeFsProblem('other', 'read', '/x', { code: 'EIO' }), /: EIO$/);
});

t.test('a synthetic EACCES becomes io_error "permission denied" with the path', async (t) => {
  const err = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
  const e = explainFsError(err, 'read', '/nonexistent-kds-path/store.sqlite');
  t.equal(e.code, 'io_error');
  t.match(e.message, /^permission denied: cannot read \/nonexistent-kds-path\/store\.sqlite/);
  t.same(e.details, { path: '/nonexistent-kds-path/store.sqlite', errno: 'EACCES' });
});

t.test('entryKind: missing only when nothing is there', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'f');
  writeFileSync(file, 'x');
  t.equal(entryKind(join(dir, 'nothing')), 'missing');
  t.equal(entryKind(file), 'file');
  t.equal(entryKind(dir), 'directory');
  t.throws(() => entryKind(join(file, 'below')), {
    code: 'io_error',
    message: `cannot read ${join(file, 'below')}: ${file} is a file, not a directory`,
  });
});
