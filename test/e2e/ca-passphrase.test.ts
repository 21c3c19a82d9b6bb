// `kds server passphrase` with real processes: every secret under the CA passphrase is re-encrypted
// (the PEMs openssl reads, the KEK files), a KDC-generated key wrapped before the change still reaches
// its peer after it, the command is refused while a KDC runs and changes nothing with a wrong passphrase,
// a crash midway is finished by a re-run with either passphrase (the KDC refuses to start meanwhile),
// and a KDC whose KEK the passphrase does not open (PEMs re-encrypted by hand) stops instead of serving.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  initDataDir,
  parseJson,
  runKds,
  startServer,
  TEST_CA_PASSPHRASE,
  type ServerProcess,
} from '../helpers/kds-process.js';
import { pgTestSchema } from '../helpers/pg.js';
import { tempDir } from '../helpers/tmp.js';
import { enrollAll, keyClient, listen, type Clients } from './keys-helpers.js';

t.setTimeout(240_000);
// The subtests are independent (each its own data directory, passphrase files and PostgreSQL schema) and
// mostly wait on child processes: tap runs them side by side.
t.jobs = 3;

const PEMS = ['root_private_key.pem', 'server/key.pem', 'admin/key.pem'];
const secrets = tempDir(t);

let files = 0;
/** A new file (numbered: the subtests run side by side) holding `value`. */
function passphraseFile(name: string, value: string): string {
  const path = join(secrets, `${++files}-${name}`);
  writeFileSync(path, `${value}\n`, { mode: 0o600 });
  return path;
}

const change = (dataDir: string, current: string, args: string[], env: Record<string, string> = {}) =>
  runKds(['server', 'passphrase', '--data-dir', dataDir, '--json', ...args], {
    env: { KDS_CA_PASSPHRASE: current, ...env },
  });

/**
 * Resolves once a KDC started with `--log-level debug` logged that its key-encryption keys opened (it
 * opens them after it listens), or once it exited (a passphrase that does not open them stops it). The
 * caller then checks which: the log and the exit code.
 */
async function kekSettled(server: ServerProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!/KEKs opened/.test(server.stderr()) && server.child.exitCode === null) {
    if (Date.now() > deadline)
      throw new Error(`the KEK neither opened nor stopped the KDC: ${server.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let keked: Promise<string> | undefined;

/**
 * A data directory holding a KEK, as a KDC makes at its first start. One KDC starts and stops once for
 * the file (a KDC start is ~1 s of CPU); each caller gets its own copy, so the subtests share no state.
 */
async function dataDirWithKek(st: Test): Promise<string> {
  keked ??= (async () => {
    const dir = await initDataDir(t, { kek: false });
    const first = await startServer(t, dir);
    await first.stop();
    return dir;
  })();
  const source = await keked;
  const dir = join(tempDir(st), 'data');
  cpSync(source, dir, { recursive: true, preserveTimestamps: true });
  return dir;
}

/** openssl opens the PEM with this passphrase. */
function opensslOpens(path: string, passphrase: string): boolean {
  try {
    execFileSync('openssl', ['pkey', '-in', path, '-passin', `pass:${passphrase}`, '-noout'], {
      stdio: 'ignore',
    });
    return true;
  } catch {
    return false;
  }
}

/** Every file of the data directory but the store, by relative path: its bytes. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!e.name.startsWith('kds.sqlite')) files.set(relative(dir, p), readFileSync(p, 'hex'));
    }
  };
  walk(dir);
  return files;
}

t.test(
  'change, then the KDC starts with the new passphrase only; keys wrapped before still open',
  async (t) => {
    const dataDir = await initDataDir(t, { kek: false });
    const server = await startServer(t, dataDir);
    const c: Clients = { server, homes: await enrollAll(server, ['alice', 'bob']) };
    // bob is offline: the KDC keeps this key wrapped under the KEK until bob comes.
    const alice = await keyClient(t, c, 'alice');
    const before = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
    await alice.close();
    t.ok(existsSync(join(dataDir, 'kek', 'kek-v1.bin')), 'the KDC made a KEK');

    const running = await change(dataDir, TEST_CA_PASSPHRASE, [
      '--new-passphrase-file',
      passphraseFile('while-running', 'never-used'),
    ]);
    t.equal(running.code, 2, 'refused while a KDC runs');
    t.match(parseJson(running), {
      error: { code: 'config', message: /another kds server \(pid \d+\) is running/ },
    });
    await server.stop();

    const untouched = snapshot(dataDir);
    const wrong = await change(dataDir, 'not-the-passphrase', [
      '--new-passphrase-file',
      passphraseFile('after-wrong', 'never-used-either'),
    ]);
    t.equal(wrong.code, 7, wrong.stderr);
    t.match(parseJson(wrong), { error: { code: 'bad_passphrase' } });
    t.same(snapshot(dataDir), untouched, 'a wrong current passphrase changes no file');

    const NEW = 'the new CA passphrase';
    const r = await change(dataDir, TEST_CA_PASSPHRASE, [
      '--new-passphrase-file',
      passphraseFile('new', NEW),
    ]);
    t.equal(r.code, 0, r.stderr);
    const out = parseJson<{ files: string[]; kekVersions: number[]; resumed: boolean }>(r);
    t.same([...out.files].sort(), [...PEMS, 'kek/kek-v1.bin'].sort());
    t.same(out.kekVersions, [1]);
    t.equal(out.resumed, false);
    t.notOk(r.stdout.includes(NEW) || r.stderr.includes(NEW), 'the passphrase is never printed');
    for (const pem of PEMS) {
      const path = join(dataDir, pem);
      t.ok(opensslOpens(path, NEW), `openssl opens ${pem} with the new passphrase`);
      t.notOk(opensslOpens(path, TEST_CA_PASSPHRASE), `and not with the old one`);
      t.equal(statSync(path).mode & 0o777, 0o600, `${pem} is 0600`);
    }
    t.equal(statSync(join(dataDir, 'kek', 'kek-v1.bin')).mode & 0o777, 0o600);
    t.notOk(existsSync(join(dataDir, 'ca', 'passphrase-change')), 'the stage is gone');

    const old = await runKds(['server', 'start', '--data-dir', dataDir, '--port', '0', '--json'], {
      timeoutMs: 30_000,
    });
    t.equal(old.code, 7, 'the old passphrase no longer starts the KDC');

    const audit = await runKds([
      'admin',
      'audit',
      '--data-dir',
      dataDir,
      '--type',
      'ca.passphrase',
      '--json',
    ]);
    t.equal(audit.code, 0, audit.stderr);
    t.match(audit.stdout, /ca\.passphrase/);
    t.notOk(
      audit.stdout.includes(NEW) || audit.stdout.includes(TEST_CA_PASSPHRASE),
      'no secret in the audit',
    );

    const after = await startServer(t, dataDir, [], { env: { KDS_CA_PASSPHRASE: NEW } });
    const c2: Clients = { server: after, homes: c.homes };
    const bob = listen(t, c2, 'bob');
    t.match(
      await bob.waitFor((e) => e.event === 'key' && e.serial === before.serial, 'the key sent before'),
      { mode: 'kdc', verdict: 'valid', fingerprint: before.fingerprint },
      'a key wrapped under the KEK before the change is delivered after it',
    );
    const alice2 = await keyClient(t, c2, 'alice');
    const fresh = await alice2.client.sendKey({ to: 'bob', mode: 'kdc' });
    await alice2.close();
    t.match(await bob.waitFor((e) => e.event === 'key' && e.serial === fresh.serial, 'a new key'), {
      mode: 'kdc',
      verdict: 'valid',
      fingerprint: fresh.fingerprint,
    });
    t.notMatch(after.stderr(), /not opened|bad_passphrase/);
    await bob.stop();
    await after.stop();
  },
);

t.test(
  'a crash midway: the KDC refuses to start; a re-run with the old or the new one finishes',
  async (t) => {
    // A KEK, as a KDC makes at its first start.
    const dataDir = await dataDirWithKek(t);
    let current = TEST_CA_PASSPHRASE;
    for (const rerunWith of ['old', 'new'] as const) {
      const next = `crash then ${rerunWith}`;
      const crash = await change(
        dataDir,
        current,
        ['--new-passphrase-file', passphraseFile(rerunWith, next)],
        {
          KDS_TEST_CRASH_AT: 'passphrase-installing',
        },
      );
      t.equal(crash.signal, 'SIGKILL', 'killed after the first file was replaced');
      t.ok(existsSync(join(dataDir, 'ca', 'passphrase-change', 'plan.json')), 'the change committed');
      t.ok(opensslOpens(join(dataDir, 'root_private_key.pem'), current), 'the root key is still the old one');
      for (const pass of [current, next]) {
        const start = await runKds(['server', 'start', '--data-dir', dataDir, '--port', '0', '--json'], {
          env: { KDS_CA_PASSPHRASE: pass },
          timeoutMs: 30_000,
        });
        t.equal(
          start.code,
          2,
          `the KDC refuses the half-changed directory (${pass === next ? 'new' : 'old'})`,
        );
        t.match(start.stdout, /interrupted `kds server passphrase`/);
      }
      // The re-run names no new passphrase: it finishes the change that committed.
      const rerun = await change(dataDir, rerunWith === 'old' ? current : next, []);
      t.equal(rerun.code, 0, rerun.stderr);
      t.match(parseJson(rerun), { resumed: true });
      for (const pem of PEMS) t.ok(opensslOpens(join(dataDir, pem), next), `${pem} under the new passphrase`);
      t.notOk(existsSync(join(dataDir, 'ca', 'passphrase-change')));
      const server = await startServer(t, dataDir, ['--log-level', 'debug'], {
        env: { KDS_CA_PASSPHRASE: next },
      });
      await kekSettled(server); // the KEK opens after the listen
      t.notMatch(server.stderr(), /not opened|key-encryption keys/, 'the KEK opens with the new passphrase');
      t.same(await server.stop(), { code: 0, signal: null });
      current = next;
    }

    // A crash before the commit: nothing was replaced; the old passphrase starts over.
    const staged = await change(
      dataDir,
      current,
      ['--new-passphrase-file', passphraseFile('s', 'staged only')],
      {
        KDS_TEST_CRASH_AT: 'passphrase-staged',
      },
    );
    t.equal(staged.signal, 'SIGKILL');
    for (const pem of PEMS) t.ok(opensslOpens(join(dataDir, pem), current), `${pem} untouched`);
    const again = await change(dataDir, current, ['--new-passphrase-file', passphraseFile('s2', 'final')]);
    t.equal(again.code, 0, again.stderr);
    t.match(parseJson(again), { resumed: false });
    for (const pem of PEMS) t.ok(opensslOpens(join(dataDir, pem), 'final'));
  },
);

t.test('a generated ca/passphrase is replaced by a new generated one', async (t) => {
  const dataDir = await initDataDir(t, { kek: false });
  mkdirSync(join(dataDir, 'ca'), { mode: 0o700 });
  writeFileSync(join(dataDir, 'ca', 'passphrase'), `${TEST_CA_PASSPHRASE}\n`, { mode: 0o600 });
  const r = await runKds(['server', 'passphrase', '--data-dir', dataDir, '--json'], {
    env: { KDS_CA_PASSPHRASE: undefined },
  });
  t.equal(r.code, 0, r.stderr);
  t.match(parseJson(r), {
    newPassphraseSource: 'generated',
    passphraseFile: join(dataDir, 'ca', 'passphrase'),
  });
  const generated = readFileSync(join(dataDir, 'ca', 'passphrase'), 'utf8').trim();
  t.not(generated, TEST_CA_PASSPHRASE);
  t.ok(opensslOpens(join(dataDir, 'root_private_key.pem'), generated));
  const server = await startServer(t, dataDir, [], { env: { KDS_CA_PASSPHRASE: undefined } });
  await server.stop();

  // Without ca/passphrase there is nothing to generate into: the new one must be named.
  const named = await initDataDir(t, { kek: false });
  const none = await change(named, TEST_CA_PASSPHRASE, []);
  t.equal(none.code, 2);
  t.match(parseJson(none), { error: { code: 'config', message: /KDS_NEW_CA_PASSPHRASE/ } });
});

t.test('PEMs re-encrypted by hand, KEK not: the KDC stops; the command finishes the job', async (t) => {
  const dataDir = await dataDirWithKek(t);
  const HAND = 'changed with openssl';
  for (const pem of PEMS) {
    const path = join(dataDir, pem);
    const key = createPrivateKey({ key: readFileSync(path, 'utf8'), passphrase: TEST_CA_PASSPHRASE });
    writeFileSync(
      path,
      key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: HAND }),
    );
  }
  const half = await startServer(t, dataDir, [], { env: { KDS_CA_PASSPHRASE: HAND } });
  const ended = await new Promise<number | null | 'still serving'>((resolve) => {
    if (half.child.exitCode !== null) resolve(half.child.exitCode);
    half.child.once('close', (code) => resolve(code));
    setTimeout(() => resolve('still serving'), 20_000).unref();
  });
  t.equal(ended, 7, 'the KDC stops with bad_passphrase instead of serving');
  t.match(half.stderr(), /opens the CA key but not the key-encryption keys/);

  const r = await change(dataDir, TEST_CA_PASSPHRASE, [], { KDS_NEW_CA_PASSPHRASE: HAND });
  t.equal(r.code, 0, r.stderr);
  t.same(parseJson<{ files: string[] }>(r).files, ['kek/kek-v1.bin'], 'only what was left is re-encrypted');
  const server = await startServer(t, dataDir, ['--log-level', 'debug'], {
    env: { KDS_CA_PASSPHRASE: HAND },
  });
  await kekSettled(server);
  t.notMatch(server.stderr(), /not opened|key-encryption keys/, 'the KEK opens with HAND');
  t.same(await server.stop(), { code: 0, signal: null });
});

t.test(
  'PostgreSQL: the store copy follows; another node changes its own files or refills them',
  async (t) => {
    const { url } = pgTestSchema(t);
    const d1 = join(tempDir(t), 'node1');
    const d2 = join(tempDir(t), 'node2');
    const init = await runKds(['server', 'init', '--data-dir', d1, '--store', url, '--ca-key-bits', '2048']);
    t.equal(init.code, 0, init.stderr);
    // Node 2 fills its data directory from the store under the old passphrase.
    const n2 = await startServer(t, d2, ['--store', url]);
    await n2.stop();

    const NEW = 'cluster passphrase';
    const newFile = passphraseFile('cluster', NEW);
    const r = await change(d1, TEST_CA_PASSPHRASE, ['--store', url, '--new-passphrase-file', newFile]);
    t.equal(r.code, 0, r.stderr);
    t.match(parseJson(r), { storeCopy: true });

    const stale = await runKds(['server', 'start', '--data-dir', d2, '--store', url, '--port', '0'], {
      env: { KDS_CA_PASSPHRASE: NEW },
      timeoutMs: 30_000,
    });
    t.equal(stale.code, 7, 'a node with the old files refuses the new passphrase');
    const r2 = await change(d2, TEST_CA_PASSPHRASE, ['--store', url, '--new-passphrase-file', newFile]);
    t.equal(r2.code, 0, r2.stderr);
    for (const dir of [d1, d2, join(tempDir(t), 'node3')]) {
      const node = await startServer(t, dir, ['--store', url, '--log-level', 'debug'], {
        env: { KDS_CA_PASSPHRASE: NEW },
      });
      await kekSettled(node); // the KEK opens after the listen
      t.notMatch(node.stderr(), /not opened|key-encryption keys/);
      t.same(await node.stop(), { code: 0, signal: null }, `${dir} serves with the new passphrase`);
    }
    t.ok(opensslOpens(join(d2, 'root_private_key.pem'), NEW));
  },
);
