// io/user-files.ts: a file a person names is read only if it is a regular file and no larger than its
// cap (/dev/zero, a FIFO and a directory are refused at once, without reading or waiting); an output
// path that cannot be written is refused before the work whose result it would hold.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkOutputPath, readUserFile } from '../../io/user-files.js';
import { tempDir } from '../helpers/tmp.js';

t.test('readUserFile', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'a.pem');
  writeFileSync(file, 'x'.repeat(100));
  t.equal(readUserFile(file, 'the certificate file', 100).toString(), 'x'.repeat(100), 'exactly the cap');
  t.throws(() => readUserFile(file, 'the certificate file', 99), {
    code: 'bad_request',
    message: `the certificate file ${file} is larger than`,
  });
  writeFileSync(join(dir, 'empty'), '');
  t.equal(readUserFile(join(dir, 'empty'), 'the file', 10).length, 0);
  t.throws(() => readUserFile(dir, 'the CRL file', 100), {
    code: 'bad_request',
    message: /is a directory, not a regular file/,
  });
  t.throws(() => readUserFile('/dev/zero', 'the certificate file', 1024), {
    code: 'bad_request',
    message: '/dev/zero is a character device, not a regular file',
  });
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // No writer ever comes: a blocking open would hang this test until tap's timeout.
  t.throws(() => readUserFile(fifo, 'the CSR file', 1024), {
    code: 'bad_request',
    message: /FIFO \(named pipe\), not a regular file/,
  });
  t.throws(() => readUserFile(join(dir, 'missing'), 'the CSR file', 1024), {
    code: 'io_error',
    message: /does not exist/,
  });
});

t.test('checkOutputPath', async (t) => {
  const dir = tempDir(t);
  t.doesNotThrow(() => checkOutputPath(join(dir, 'new.pem'), '--out'), 'a new file in a directory');
  writeFileSync(join(dir, 'old.pem'), 'old');
  t.doesNotThrow(() => checkOutputPath(join(dir, 'old.pem'), '--out'), 'an existing file is replaced');
  t.throws(() => checkOutputPath(join(dir, 'nope', 'x.pem'), '--out'), {
    code: 'bad_request',
    message: /^--out .*: the directory .*nope does not exist$/,
  });
  t.throws(() => checkOutputPath(join(dir, 'old.pem', 'x.pem'), '--out'), {
    code: 'bad_request',
    message: /old\.pem is not a directory/,
  });
  mkdirSync(join(dir, 'sub'));
  t.throws(() => checkOutputPath(join(dir, 'sub'), '--report'), {
    code: 'bad_request',
    message: /^--report .*sub: it is a directory; name a file to write$/,
  });
  t.throws(() => checkOutputPath('/dev/null', '--out'), { code: 'bad_request', message: /character device/ });
});
