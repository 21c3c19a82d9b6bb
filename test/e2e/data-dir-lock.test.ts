// One KDC per data directory (io/data-dir-lock.ts, docs/deployment.md): a second `kds server start` on
// the directory of a running KDC is refused before it opens anything (it would otherwise store its own
// bound address as the delta CRL's URL, which the first KDC then publishes); a stopped KDC releases
// the directory, and one killed outright leaves a stale lock the next start takes over.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { initDataDir, runKds, startServer, type ServerProcess } from '../helpers/kds-process.js';

t.setTimeout(120_000);

const crlUrls = async (httpUrl: string): Promise<string> => {
  const res = await fetch(`${httpUrl}/crl.pem`);
  return res.text();
};

/**
 * The KDC the first test leaves running (its last start, on its own data directory), which the second
 * test needs running: one KDC start less (~1 s of CPU). The second test starts its own when it runs
 * alone or the first did not get that far. That directory and KDC are the file's (`file`), so that
 * they outlive the first test; the file's teardown kills the KDC as the test's would have.
 */
let handedOver: ServerProcess | undefined;
const file = t;

t.test('a second start on a running KDC data directory is refused; stop and kill release it', async (t) => {
  const dataDir = await initDataDir(file);
  const lock = join(dataDir, 'kds.pid');
  const first = await startServer(t, dataDir);
  t.equal(readFileSync(lock, 'utf8').trim(), String(first.child.pid), 'the running KDC holds the lock');
  const crlBefore = await crlUrls(first.httpUrl);

  const second = await runKds(['server', 'start', '--data-dir', dataDir, '--port', '0'], {
    timeoutMs: 30_000,
  });
  t.equal(second.code, 2, second.stderr);
  t.match(
    second.stderr,
    new RegExp(`error \\[config\\]: another kds server \\(pid ${first.child.pid}\\) is running on`),
  );
  t.notMatch(second.stdout, /listening/, 'it never listened');
  t.equal(readFileSync(lock, 'utf8').trim(), String(first.child.pid), 'the lock is still the first KDC');
  t.equal(await crlUrls(first.httpUrl), crlBefore, "the first KDC's CRL is unchanged");

  t.equal((await first.stop()).code, 0, 'a clean stop');
  t.notOk(existsSync(lock), 'a stopped KDC releases the directory');

  const third = await startServer(t, dataDir);
  t.equal(readFileSync(lock, 'utf8').trim(), String(third.child.pid));
  await third.stop('SIGKILL');
  t.ok(existsSync(lock), 'a killed KDC leaves its lock behind');
  const fourth = await startServer(file, dataDir);
  t.equal(readFileSync(lock, 'utf8').trim(), String(fourth.child.pid), 'the stale lock was taken over');
  handedOver = fourth;
});

t.test('init --force is refused while a KDC runs on the directory, before anything is moved', async (t) => {
  const server = handedOver ?? (await startServer(t, await initDataDir(t)));
  const dataDir = server.dataDir;
  const rootBefore = readFileSync(join(dataDir, 'root_ca.pem'), 'utf8');
  const crlBefore = await crlUrls(server.httpUrl);

  const init = await runKds(['server', 'init', '--data-dir', dataDir, '--ca-key-bits', '2048', '--force'], {
    timeoutMs: 30_000,
  });
  t.equal(init.code, 2, init.stderr);
  t.match(
    init.stderr,
    new RegExp(
      `error \\[config\\]: a kds server \\(pid ${server.child.pid}\\) is running on .*: stop it before replacing its CA`,
    ),
  );
  t.notOk(
    readdirSync(dataDir).some((f) => f.startsWith('replaced-')),
    'nothing was moved aside',
  );
  t.equal(readFileSync(join(dataDir, 'root_ca.pem'), 'utf8'), rootBefore, 'the CA is the same');
  t.equal(
    readFileSync(join(dataDir, 'kds.pid'), 'utf8').trim(),
    String(server.child.pid),
    'the KDC keeps its lock',
  );
  t.equal(await crlUrls(server.httpUrl), crlBefore, 'the KDC serves the same CRL');

  t.equal((await server.stop()).code, 0);
  const again = await runKds(['server', 'init', '--data-dir', dataDir, '--ca-key-bits', '2048', '--force']);
  t.equal(again.code, 0, 'once it stopped, the CA is replaced');
  t.not(readFileSync(join(dataDir, 'root_ca.pem'), 'utf8'), rootBefore);
  t.notOk(existsSync(join(dataDir, 'kds.pid')), 'init released the directory');
});
