// Message counters shared by processes of one client (client/keys/file-lock.ts): concurrent `send`s
// never reuse a number, concurrent `listen`s never lose each other's window updates, and a lock left
// by a dead process does not wedge the client.
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClientKeyStore, type StoredKey } from '../../../client/keys/key-store.js';
import { withFileLock, STALE_EMPTY_MS, STALE_MS } from '../../../client/keys/file-lock.js';
import { isFreshSeq } from '../../../shared/keys/replay-window.js';
import { startTimeOf } from '../../helpers/proc-stat.js';
import { newKeySerial } from '../../../shared/keys/serial.js';
import { tempDir } from '../../helpers/tmp.js';

const identity = generateKeyPairSync('ed25519').privateKey;
const identityPem = identity.export({ type: 'pkcs8', format: 'pem' }).toString();
const storeModule = fileURLToPath(new URL('../../../client/keys/key-store.js', import.meta.url));

function record(serial: string): StoredKey {
  return {
    serial,
    mode: 'kdc',
    role: 'sender',
    owner: 'bob',
    peer: 'alice',
    state: 'active',
    createdAt: 1,
    expiresAt: Date.now() + 3_600_000,
    digest: 'cd'.repeat(32),
    fingerprint: '0123456789abcdef',
    key: Buffer.alloc(32, 7).toString('base64'),
    updatedAt: 1,
  };
}

// One child process: `sends` numbers reserved, then the given sequence numbers accepted, each as soon
// as the parent's go-file exists (so the processes really overlap).
const CHILD = `
import { createPrivateKey } from 'node:crypto';
import { existsSync } from 'node:fs';
const { ClientKeyStore } = await import(process.env.STORE_MODULE);
const store = ClientKeyStore.open(process.env.HOME_DIR, 'bob', createPrivateKey(process.env.IDENTITY));
const serial = process.env.SERIAL;
while (!existsSync(process.env.GO)) await new Promise((r) => setTimeout(r, 2));
const sent = [];
for (let i = 0; i < Number(process.env.SENDS); i++) sent.push(store.nextSentSeq(serial, 1e9));
for (const seq of JSON.parse(process.env.ACCEPT)) store.acceptReceivedSeq(serial, seq);
process.stdout.write(JSON.stringify(sent));
`;

function child(env: Record<string, string>): Promise<number[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', CHILD],
      { env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as number[]);
      },
    );
  });
}

t.test('three processes: every message number once, every accepted number stays in the window', async (t) => {
  const home = tempDir(t);
  const store = ClientKeyStore.open(home, 'bob', identity);
  const serial = newKeySerial();
  store.putKey(record(serial));
  const PROCS = 3;
  const SENDS = 25;
  const go = join(home, 'go');
  const runs = Array.from({ length: PROCS }, (_, p) =>
    child({
      STORE_MODULE: storeModule,
      HOME_DIR: home,
      IDENTITY: identityPem,
      SERIAL: serial,
      GO: go,
      SENDS: String(SENDS),
      // Disjoint numbers 1..60 (all inside one 64-wide window), interleaved across the processes.
      ACCEPT: JSON.stringify(Array.from({ length: 20 }, (_, i) => 1 + p + PROCS * i)),
    }),
  );
  writeFileSync(go, '');
  const sent = (await Promise.all(runs)).flat().sort((a, b) => a - b);
  t.same(
    sent,
    Array.from({ length: PROCS * SENDS }, (_, i) => i + 1),
    'numbers 1..75, none twice, none skipped',
  );
  t.equal(store.sentSeq(serial), PROCS * SENDS);
  const window = store.replayState(serial);
  const lost = Array.from({ length: 60 }, (_, i) => i + 1).filter((seq) => isFreshSeq(window, seq));
  t.same(lost, [], 'no acceptance was lost: a replay of any of them is refused');
  t.throws(() => store.acceptReceivedSeq(serial, 17), { code: 'replayed' });
  t.notOk(existsSync(join(home, 'keys', `${serial}.sent.lock`)), 'no lock file left behind');
  t.notOk(existsSync(join(home, 'keys', `${serial}.recv.lock`)));
});

t.test(
  'a lock of a dead process, of this pid, or empty and old is broken; a live one times out',
  async (t) => {
    const dir = tempDir(t);
    const lock = join(dir, 'x.lock');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // exited: its pid names no process
    writeFileSync(lock, `${dead}\n`);
    t.equal(
      withFileLock(lock, () => 'in', { timeoutMs: 2_000, isAlive: (pid) => pid !== dead }),
      'in',
    );
    t.notOk(existsSync(lock), 'released');

    writeFileSync(lock, `${process.pid}\n`); // an earlier process that had our pid
    t.equal(
      withFileLock(lock, () => 'own', { timeoutMs: 2_000 }),
      'own',
    );

    writeFileSync(lock, ''); // a holder that died between creating and writing it
    const old = (Date.now() - STALE_EMPTY_MS - 5_000) / 1000;
    utimesSync(lock, old, old);
    t.equal(
      withFileLock(lock, () => 'empty', { timeoutMs: 2_000 }),
      'empty',
    );

    writeFileSync(lock, ''); // ... but not while it may still be being written
    t.throws(() => withFileLock(lock, () => 'no', { timeoutMs: 100 }), { code: 'timeout' });

    writeFileSync(lock, '424242\n');
    let ran = false;
    t.throws(
      () =>
        withFileLock(
          lock,
          () => {
            ran = true;
          },
          { timeoutMs: 100, isAlive: () => true },
        ),
      { code: 'timeout', details: { pid: 424242 } },
    );
    t.notOk(ran, 'the critical section did not run');
    t.ok(existsSync(lock), "a live holder's lock is left alone");

    // A throw inside releases the lock.
    const free = join(dir, 'y.lock');
    t.throws(
      () =>
        withFileLock(free, () => {
          throw new Error('boom');
        }),
      /boom/,
    );
    t.notOk(existsSync(free));
  },
);

const HOST = encodeURIComponent(hostname());

function backdate(path: string, ms: number): void {
  const then = (Date.now() - ms) / 1000;
  utimesSync(path, then, then);
}

t.test('a lock names its holder: pid, start time, host', async (t) => {
  const lock = join(tempDir(t), 'x.lock');
  let seen = '';
  withFileLock(lock, () => {
    seen = readFileSync(lock, 'latin1');
  });
  const start = startTimeOf(process.pid) ?? '-';
  t.equal(seen, `${process.pid} ${start} ${HOST}\n`);
});

t.test('a live pid that started at another time is a reused pid: its lock is broken', async (t) => {
  const lock = join(tempDir(t), 'x.lock');
  const alive = { isAlive: () => true, startTime: () => '777', host: 'here', timeoutMs: 100 };
  writeFileSync(lock, '424242 776 here\n'); // the holder started at 776; pid 424242 is now another process
  t.equal(
    withFileLock(lock, () => 'in', alive),
    'in',
  );
  t.notOk(existsSync(lock), 'released');

  writeFileSync(lock, '424242 777 here\n'); // the very process: it holds the lock
  t.throws(() => withFileLock(lock, () => 'no', alive), {
    code: 'timeout',
    message: `${lock} is held by process 424242; try again (if you are sure no kds process is using this client, delete ${lock})`,
    details: { pid: 424242, path: lock },
  });
  t.ok(existsSync(lock), "a live holder's lock is left alone");

  // Another host's pid means nothing here: the lock stands (until STALE_MS, below).
  writeFileSync(lock, '424242 776 elsewhere\n');
  t.throws(() => withFileLock(lock, () => 'no', { ...alive, isAlive: () => false }), {
    code: 'timeout',
    message: `${lock} is held by process 424242 on host elsewhere; `,
  });

  // An earlier version's lock (pid only) naming a live process: judged by the pid alone.
  writeFileSync(lock, '424242\n');
  t.throws(() => withFileLock(lock, () => 'no', alive), { code: 'timeout' });
});

t.test('a lock older than STALE_MS is broken whoever it names', async (t) => {
  const lock = join(tempDir(t), 'x.lock');
  const alive = { isAlive: () => true, startTime: () => '777', host: 'here', timeoutMs: 100 };
  for (const text of ['424242\n', '424242 777 here\n', '424242 777 elsewhere\n']) {
    writeFileSync(lock, text);
    backdate(lock, STALE_MS + 5_000);
    t.equal(
      withFileLock(lock, () => 'in', alive),
      'in',
      JSON.stringify(text),
    );
  }
  writeFileSync(lock, '424242 777 here\n');
  backdate(lock, STALE_MS - 5_000); // not yet: the holder may still be inside
  t.throws(() => withFileLock(lock, () => 'no', alive), { code: 'timeout' });
});

t.test(
  'a real lock naming pid 1 with another start time is broken (pid reuse)',
  { skip: startTimeOf(1) === undefined ? 'no /proc here' : false },
  async (t) => {
    const lock = join(tempDir(t), 'x.lock');
    // pid 1 exists (kill(1, 0) says so, EPERM included), but not the process that wrote this lock.
    writeFileSync(lock, `1 ${BigInt(startTimeOf(1)!) + 1n} ${HOST}\n`);
    t.equal(
      withFileLock(lock, () => 'in', { timeoutMs: 2_000 }),
      'in',
    );
    // The same pid with its real start time is pid 1 itself: left alone.
    writeFileSync(lock, `1 ${startTimeOf(1)!} ${HOST}\n`);
    t.throws(() => withFileLock(lock, () => 'no', { timeoutMs: 100 }), { code: 'timeout' });
  },
);

t.test('nextSentSeq refuses past the maximum and leaves the counter', async (t) => {
  const home = tempDir(t);
  const store = ClientKeyStore.open(home, 'bob', identity);
  const serial = newKeySerial();
  store.putKey(record(serial));
  t.equal(store.nextSentSeq(serial, 2), 1);
  t.equal(store.nextSentSeq(serial, 2), 2);
  t.throws(() => store.nextSentSeq(serial, 2), { code: 'key_expired' });
  t.equal(store.sentSeq(serial), 2);
});
