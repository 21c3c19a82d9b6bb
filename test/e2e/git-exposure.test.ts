// Secrets never land where `git add .` would commit them: kds refuses to create a CA data directory
// or a client home inside a git work tree that does not ignore it (exit 2, `config`, before any key is
// generated or any token spent), and says what to do instead. An ignored directory (the checkout's own
// `certs/`) and a directory outside any work tree keep working, silently.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { runKds } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(120_000);

/** A fresh git work tree with `/certs/*` ignored, as this checkout has. */
function gitRepo(t: { teardown(fn: () => void): void }): string {
  const repo = join(tempDir(t), 'repo');
  mkdirSync(repo);
  execFileSync('git', ['init', '-q', repo]);
  writeFileSync(join(repo, '.gitignore'), '/certs/*\n');
  return repo;
}

t.test('server init inside a work tree, not ignored: refused before anything is written', async (t) => {
  const repo = gitRepo(t);
  const r = await runKds(['server', 'init', '--data-dir', 'lab', '--ca-key-bits', '2048'], { cwd: repo });
  t.equal(r.code, 2, r.stderr);
  t.match(r.stderr, /^error \[config\]: /);
  t.match(r.stderr, `${join(repo, 'lab')} is inside the git work tree ${repo} and git does not ignore it`);
  t.match(r.stderr, /mktemp -d/, 'says what to do instead');
  t.match(
    r.stderr,
    /kds itself still runs from this checkout/,
    'and that kds runs from here (npx kds elsewhere is not it)',
  );
  t.notOk(existsSync(join(repo, 'lab', 'root_private_key.pem')), 'no CA key written');
  t.notOk(existsSync(join(repo, 'lab', 'ca', 'passphrase')), 'no passphrase written');
});

t.test('an ignored directory (certs/) and one outside any work tree: silent', async (t) => {
  const repo = gitRepo(t);
  const ignored = await runKds(['server', 'init', '--data-dir', 'certs', '--ca-key-bits', '2048'], {
    cwd: repo,
  });
  t.equal(ignored.code, 0, ignored.stderr);
  t.notMatch(ignored.stderr, /git/, 'nothing said about git');
  const outside = await runKds([
    'server',
    'init',
    '--data-dir',
    join(tempDir(t), 'lab'),
    '--ca-key-bits',
    '2048',
  ]);
  t.equal(outside.code, 0, outside.stderr);
  t.notMatch(outside.stderr, /git/);
  // Once the lab directory is ignored, it works too.
  writeFileSync(join(repo, '.gitignore'), '/certs/*\nlab/\n');
  const lab = await runKds(['server', 'init', '--data-dir', 'lab', '--ca-key-bits', '2048'], { cwd: repo });
  t.equal(lab.code, 0, lab.stderr);
});

t.test('client enroll --home inside a work tree: refused before the token is spent', async (t) => {
  const repo = gitRepo(t);
  let connections = 0;
  const listener = createServer((s) => {
    connections += 1;
    s.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => listener.close(() => resolve())));
  const address = listener.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const r = await runKds(
    [
      'client',
      'enroll',
      '--name',
      'bob',
      '--token',
      'a'.repeat(43),
      '--home',
      'bob',
      '--server',
      `ws://127.0.0.1:${port}/kds`,
    ],
    { cwd: repo },
  );
  t.equal(r.code, 2, r.stderr);
  t.match(r.stderr, `${join(repo, 'bob')} is inside the git work tree ${repo} and git does not ignore it`);
  t.equal(connections, 0, 'nothing was sent: the token is not spent');
  t.notOk(existsSync(join(repo, 'bob', 'key.pem')));
});
