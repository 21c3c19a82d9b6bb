// The client's state directory: location, file modes, and the private key encrypted at rest when
// KDS_CLIENT_PASSPHRASE is set; an enrollment's staged key and request (enrollment/).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import {
  clientPassphrase,
  discardStagedEnrollment,
  hasCredentials,
  lockRenewal,
  readStagedEnrollment,
  stageEnrollment,
  readClientCertificates,
  readClientHome,
  resolveHome,
  writeClientHome,
} from '../../client/home.js';
import { tempDir } from '../helpers/tmp.js';
import { testKeyPair } from '../helpers/kdc-in-process.js';
import { startTimeOf } from '../helpers/proc-stat.js';

t.test('resolveHome: --home wins, else <data-dir>/clients/<name>; names are validated', async (t) => {
  t.equal(resolveHome({ name: 'alice', dataDir: '/srv/kds' }), '/srv/kds/clients/alice');
  t.equal(resolveHome({ name: 'alice', home: '/tmp/h' }), '/tmp/h');
  t.equal(resolveHome({ name: 'alice' }), resolve('certs/clients/alice'));
  t.throws(() => resolveHome({ name: '../etc' }), { code: 'bad_name' });
  t.throws(() => resolveHome({ name: 'Alice' }), { code: 'bad_name' });
});

t.test('clientPassphrase reads KDS_CLIENT_PASSPHRASE; unset means none, empty is refused', async (t) => {
  t.equal(clientPassphrase({ KDS_CLIENT_PASSPHRASE: 'p' }), 'p');
  t.equal(clientPassphrase({}), undefined);
  t.throws(() => clientPassphrase({ KDS_CLIENT_PASSPHRASE: '' }), {
    code: 'config',
    message: 'KDS_CLIENT_PASSPHRASE is set but empty',
  });
});

t.test('write/read round trip, 0600 files in a 0700 directory', async (t) => {
  const pair = await testKeyPair();
  const home = join(tempDir(t), 'clients', 'alice');
  t.notOk(hasCredentials(home));
  writeClientHome(
    home,
    { privateKey: createPrivateKey(pair.privateKeyPem), certPem: 'CERT', caPem: 'CA' },
    undefined,
  );
  t.ok(hasCredentials(home));
  t.equal(statSync(home).mode & 0o777, 0o700);
  for (const f of ['key.pem', 'cert.pem', 'ca.pem']) t.equal(statSync(join(home, f)).mode & 0o777, 0o600, f);
  t.match(readFileSync(join(home, 'key.pem'), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  const files = readClientHome(home, undefined);
  t.equal(files.certPem, 'CERT');
  t.equal(files.caPem, 'CA');
  t.equal(files.privateKey.asymmetricKeyType, 'rsa');
  t.same(readClientCertificates(home), { certPem: 'CERT', caPem: 'CA' });
});

t.test('with a passphrase the key is PKCS#8-encrypted and needs it back', async (t) => {
  const pair = await testKeyPair();
  const home = join(tempDir(t), 'h');
  writeClientHome(
    home,
    { privateKey: createPrivateKey(pair.privateKeyPem), certPem: 'C', caPem: 'A' },
    'correct horse',
  );
  const pem = readFileSync(join(home, 'key.pem'), 'utf8');
  t.match(pem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  t.notMatch(pem, /BEGIN PRIVATE KEY/);
  const key = readClientHome(home, 'correct horse').privateKey;
  t.equal(
    key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    createPrivateKey(pair.privateKeyPem).export({ type: 'pkcs8', format: 'pem' }).toString(),
  );
  t.throws(() => readClientHome(home, undefined), { code: 'bad_passphrase' });
  t.throws(() => readClientHome(home, 'wrong'), {
    code: 'bad_passphrase',
    message: 'cannot decrypt the client key',
  });
});

t.test('missing or corrupt files', async (t) => {
  const home = join(tempDir(t), 'empty');
  t.throws(() => readClientHome(home), { code: 'not_found' });
  const pair = await testKeyPair();
  writeClientHome(
    home,
    { privateKey: createPrivateKey(pair.privateKeyPem), certPem: 'C', caPem: 'A' },
    undefined,
  );
  writeFileSync(join(home, 'key.pem'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
  t.throws(() => readClientHome(home, undefined), { code: 'malformed_pem' });
});

t.test('a staged enrollment: read back as written, encrypted like key.pem, torn means none', async (t) => {
  const home = join(tempDir(t), 'h');
  const pair = await testKeyPair();
  const privateKey = createPrivateKey(pair.privateKeyPem);
  const staged = { name: 'alice', tokenHash: 'ab'.repeat(32), csr: 'CSR PEM', privateKey };
  t.equal(readStagedEnrollment(home), undefined, 'nothing staged');
  stageEnrollment(home, staged, 'staging passphrase');
  t.equal(statSync(join(home, 'enrollment')).mode & 0o777, 0o700);
  t.equal(statSync(join(home, 'enrollment', 'key.pem')).mode & 0o777, 0o600);
  t.match(
    readFileSync(join(home, 'enrollment', 'key.pem'), 'utf8'),
    /^-----BEGIN ENCRYPTED PRIVATE KEY-----/,
  );
  t.throws(() => readStagedEnrollment(home, undefined), { code: 'bad_passphrase' });
  const back = readStagedEnrollment(home, 'staging passphrase')!;
  t.same(
    { name: back.name, tokenHash: back.tokenHash, csr: back.csr },
    { name: 'alice', tokenHash: 'ab'.repeat(32), csr: 'CSR PEM' },
  );
  t.ok(
    back.privateKey
      .export({ type: 'pkcs8', format: 'der' })
      .equals(privateKey.export({ type: 'pkcs8', format: 'der' })),
    'the same key',
  );
  // A crash between the key and the request (the request is written second, before anything is sent).
  rmSync(join(home, 'enrollment', 'request.json'));
  t.equal(readStagedEnrollment(home, 'staging passphrase'), undefined, 'torn: start over');
  writeFileSync(join(home, 'enrollment', 'request.json'), '{"name": 1}');
  t.equal(readStagedEnrollment(home, 'staging passphrase'), undefined, 'not a request: start over');
  discardStagedEnrollment(home);
  t.notOk(existsSync(join(home, 'enrollment')));
});

t.test('the renewal lock names its holder; a dead or reused pid does not hold it', async (t) => {
  const home = tempDir(t);
  const lock = join(home, 'renewal.lock');
  const host = encodeURIComponent(hostname());
  const release = lockRenewal(home);
  t.equal(readFileSync(lock, 'latin1'), `${process.pid} ${startTimeOf(process.pid) ?? '-'} ${host}\n`);
  release();
  t.notOk(existsSync(lock));

  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  for (const text of [`${dead}\n`, `${dead} 12345 ${host}\n`, '', 'garbage']) {
    writeFileSync(lock, text);
    lockRenewal(home)();
    t.notOk(existsSync(lock), `broken: ${JSON.stringify(text)}`);
  }
});

t.test(
  'a renewal lock naming pid 1 with another start time is broken (pid reuse)',
  { skip: startTimeOf(1) === undefined ? 'no /proc here' : false },
  async (t) => {
    const home = tempDir(t);
    const lock = join(home, 'renewal.lock');
    writeFileSync(lock, `1 ${BigInt(startTimeOf(1)!) + 1n} ${encodeURIComponent(hostname())}\n`);
    const release = lockRenewal(home);
    t.match(readFileSync(lock, 'latin1'), new RegExp(`^${process.pid} `), 'taken over');
    release();
  },
);

t.test(
  "a live renewer's lock is refused with its path and how to clear it",
  { skip: startTimeOf(process.pid) === undefined ? 'no /proc here' : false },
  async (t) => {
    const home = tempDir(t);
    const lock = join(home, 'renewal.lock');
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    t.teardown(() => {
      child.kill('SIGKILL');
    });
    await new Promise((r) => child.once('spawn', r));
    const pid = child.pid!;
    const host = encodeURIComponent(hostname());
    writeFileSync(lock, `${pid} ${startTimeOf(pid)!} ${host}\n`);
    t.throws(() => lockRenewal(home), {
      code: 'rate_limited',
      message:
        `another process (process ${pid}) is renewing this client: ${lock} names it; try again when it ` +
        `is done (if you are sure no kds process is running for this client, delete ${lock})`,
      details: { path: lock, pid },
    });
    // An earlier version's lock (pid only) naming a live process is judged by the pid alone.
    writeFileSync(lock, `${pid}\n`);
    t.throws(() => lockRenewal(home), { code: 'rate_limited' });
    t.ok(existsSync(lock), 'left alone');
  },
);
