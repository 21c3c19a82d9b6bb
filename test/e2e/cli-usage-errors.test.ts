// A typo is a usage error, not an attack: every command's options are checked while they are parsed,
// so a value the KDC's schema (or the CA, or the operating system) would refuse gets exit 2 and a
// sentence saying what is valid, and nothing is sent. Each row runs the real `kds` with --server
// pointing at a listener that only counts connections (and, for the client and admin commands, with
// an enrolled home and the admin credential, so that without the check the command WOULD connect).
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { initDataDir, mapLimit, runKds, startServer, TEST_CA_PASSPHRASE } from '../helpers/kds-process.js';
import { enrollAll } from './keys-helpers.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(240_000);

const dataDir = await initDataDir(t);
const kdc = await startServer(t, dataDir);
const homes = await enrollAll(kdc, ['alice']);
await kdc.stop();

/**
 * A listener standing where the KDC would be: every connection to it is a request that went out. The
 * rows run side by side, each with a listener of its own, so a connection is still blamed on its row.
 */
async function countingListener(): Promise<{
  server: string;
  port: number;
  connections: () => number;
  close: () => Promise<void>;
}> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const listener = createServer((s) => {
    connections += 1;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const address = listener.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    server: `ws://127.0.0.1:${port}/kds`,
    port,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => listener.close(() => resolve())),
  };
}

const serial = 'ab'.repeat(16);
const clientArgs = (server: string): string[] => [
  '--name',
  'alice',
  '--home',
  homes.alice!,
  '--server',
  server,
];

/** [command line, what the message must say], for the listener at `server` (`port`). */
const rowsFor = (server: string, port: number): [string[], RegExp][] => {
  const alice = clientArgs(server);
  const admin = ['--data-dir', dataDir, '--server', server];
  return [
    // key serials
    [['client', 'verify-key', ...alice, '--serial', 'xyz'], /--serial: a key serial is 32 hex digits/],
    [['client', 'revoke-key', ...alice, '--serial', 'xyz'], /--serial: a key serial is 32 hex digits/],
    [['client', 'rotate-key', ...alice, '--serial', 'xyz'], /--serial: a key serial is 32 hex digits/],
    [['client', 'verify-key', ...alice, '--serial', `${serial}00`], /32 hex digits/],
    [
      ['client', 'send', ...alice, '--to', 'bob', '--message', 'hi', '--serial', 'g'.repeat(32)],
      /32 hex digits/,
    ],
    [['admin', 'revoke-key', ...admin, '--serial', 'xyz'], /--serial: a key serial is 32 hex digits/],
    // certificate serials
    [
      ['client', 'cert-status', ...alice, '--serial', 'xyz'],
      /--serial: a certificate serial is 1 to 40 hex digits/,
    ],
    [['admin', 'cert-status', ...admin, '--serial', 'zz:zz'], /a certificate serial/],
    [
      ['admin', 'revoke-cert', ...admin, '--serial', 'a'.repeat(65), '--reason', 'keyCompromise'],
      /a certificate serial/,
    ],
    // lifetimes
    [['admin', 'token', ...admin, '--name', 'bob', '--ttl', '400d'], /--ttl: at most 7d, got 400d/],
    [['admin', 'token', ...admin, '--name', 'bob', '--ttl', '0s'], /--ttl: at least 1s/],
    [
      ['admin', 'token', ...admin, '--name', 'bob', '--ttl', 'soon'],
      /--ttl: expected a whole number and a unit/,
    ],
    [['client', 'send-key', ...alice, '--to', 'bob', '--ttl', '9999d'], /--ttl: at most 90d, got 9999d/],
    [['client', 'send-key', ...alice, '--to', 'bob', '--ttl', '99999999999d'], /--ttl: at most 90d/],
    [['client', 'rotate-key', ...alice, '--serial', serial, '--ttl', '91d'], /--ttl: at most 90d/],
    // names
    [
      ['client', 'send-key', ...alice, '--to', 'Bob'],
      /--to: a name is 1 to 64 characters: lowercase letters/,
    ],
    [['client', 'send-key', ...alice, '--to', 'alice'], /--to: that is --name itself/],
    [['client', 'send', ...alice, '--to', 'b ob', '--message', 'hi'], /--to: a name is/],
    [['client', 'status', '--name', 'Alice!', '--server', server], /--name: a name is 1 to 64/],
    [['admin', 'token', ...admin, '--name', 'kdc'], /"kdc" is reserved for the system/],
    [['admin', 'token', ...admin, '--name', 'x'.repeat(65)], /--name: a name is 1 to 64/],
    [['admin', 'revoke-cert', ...admin, '--name', 'B@d', '--reason', 'keyCompromise'], /--name: a name is/],
    // reasons
    [['client', 'revoke-key', ...alice, '--serial', serial, '--reason', 'certificateHold'], /Invalid values/],
    [['admin', 'revoke-key', ...admin, '--serial', serial, '--reason', 'cACompromise'], /Invalid values/],
    // other values
    [
      ['client', 'send', ...alice, '--to', 'bob', '--message', 'x'.repeat(32 * 1024 + 1)],
      /--message: at most 32768 bytes/,
    ],
    [
      ['client', 'status', '--name', 'alice', '--home', homes.alice!, '--server', `http://127.0.0.1:${port}`],
      /--server: expected the KDC's ws:\/\/ or wss:\/\/ URL/,
    ],
    [
      ['client', 'enroll', '--name', 'bob', '--token', 'short', '--server', server],
      /--token: a token is 16 to 256/,
    ],
    [
      [
        'client',
        'enroll',
        '--name',
        'bob',
        '--token',
        'a'.repeat(43),
        '--ca-fingerprint',
        'abc',
        '--server',
        server,
      ],
      /--ca-fingerprint: a fingerprint is the 64 hex digits/,
    ],
    [['admin', 'revoke-cert', ...admin, '--reason', 'keyCompromise'], /give --name or --serial/],
  ];
};

/** The `kds` processes a subtest runs side by side (each is mostly start-up, waiting on the disk and the loader). */
const CONCURRENT = 4;

/** Options that need no server at all: numbers, checked the same way. */
const offline: [string[], RegExp][] = [
  [
    ['server', 'start', '--data-dir', dataDir, '--port', 'abc'],
    /--port: expected a whole number from 0 to 65535, got "abc"/,
  ],
  [
    ['server', 'start', '--data-dir', dataDir, '--port', '999999'],
    /--port: expected a whole number from 0 to 65535/,
  ],
  [['server', 'start', '--data-dir', dataDir, '--port', '-5'], /--port: expected a whole number/],
  [['server', 'start', '--data-dir', dataDir, '--port', '28443.5'], /--port: expected a whole number/],
  [
    ['server', 'start', '--data-dir', dataDir, '--port', '0', '--handshake-timeout', 'abc'],
    /--handshake-timeout: expected a whole number/,
  ],
  [
    ['server', 'start', '--data-dir', dataDir, '--port', '0', '--max-unauthenticated', '-1'],
    /--max-unauthenticated: expected a whole number/,
  ],
  [
    ['server', 'start', '--data-dir', dataDir, '--port', '0', '--host', 'bad_host!'],
    /--host: expected a DNS name or an IP address/,
  ],
  [
    ['server', 'init', '--data-dir', `${dataDir}-new`, '--port', '99999'],
    /--port: expected a whole number from 1 to 65535/,
  ],
  [
    ['cert', 'issue', '--data-dir', dataDir, '--csr', 'x.pem', '--name', 'bob', '--days', 'ten'],
    /--days: expected a whole number/,
  ],
  [
    ['cert', 'revoke', '--data-dir', dataDir, '--serial', 'xyz', '--reason', 'keyCompromise'],
    /a certificate serial/,
  ],
  [['cert', 'revoke', '--data-dir', dataDir, '--reason', 'keyCompromise'], /give --name or --serial/],
  [['cert', 'list', '--data-dir', dataDir, '--name', 'UPPER'], /--name: a name is/],
  [
    ['mitm', '--listen', '127.0.0.1:0', '--attack', 'passthrough', '--hold-ms', 'long'],
    /--hold-ms: expected a whole number/,
  ],
];

t.test('a bad value: exit 2, what is valid, nothing sent', async (t) => {
  const runs = await mapLimit(rowsFor('', 0), CONCURRENT, async (_, i) => {
    const listener = await countingListener();
    try {
      const [args, message] = rowsFor(listener.server, listener.port)[i]!;
      const r = await runKds(args, { env: { KDS_CA_PASSPHRASE: TEST_CA_PASSPHRASE }, timeoutMs: 30_000 });
      return { args, message, r, connections: listener.connections() };
    } finally {
      await listener.close();
    }
  });
  for (const { args, message, r, connections } of runs) {
    const what = `kds ${args.filter((a) => a.length < 80).join(' ')}`;
    t.equal(r.code, 2, `${what}: exit 2 (${r.stderr.trim()})`);
    t.match(r.stderr, /^error \[bad_request\]: /, `${what}: a usage error`);
    t.match(r.stderr, message, `${what}: says what is valid`);
    t.notMatch(r.stderr, /MITM|stopped by|schema|\n\s+at /, `${what}: no attack, no stack trace`);
    t.equal(connections, 0, `${what}: no connection was made`);
  }
});

t.test('numeric options of the commands that need no server', async (t) => {
  const results = await mapLimit(offline, CONCURRENT, ([args]) => runKds(args, { timeoutMs: 15_000 }));
  for (const [i, [args, message]] of offline.entries()) {
    const r = results[i]!;
    const what = `kds ${args.join(' ')}`;
    t.equal(r.code, 2, `${what}: exit 2 (${r.stderr.trim()})`);
    t.match(r.stderr, /^error \[bad_request\]: /, `${what}: a usage error`);
    t.match(r.stderr, message, `${what}: says what is valid`);
    t.notMatch(r.stderr, /internal|\n\s+at /, `${what}: no internal error, no stack trace`);
  }
});

t.test('wording: an unknown command is named as unknown', async (t) => {
  const [r, sub] = await Promise.all([runKds(['clinet']), runKds(['client', 'sendkey', '--name', 'alice'])]);
  t.equal(r.code, 2);
  t.match(r.stderr, /unknown command "clinet"; did you mean client\?/);
  t.equal(sub.code, 2);
  t.match(sub.stderr, /unknown command "sendkey"; did you mean send-key\?/);
});

t.test('KDS_LOG_FLUSH_MS: a bad value stops server start before it listens', async (t) => {
  const dir = await initDataDir(t);
  const values = ['-1', '1001', 'soon', '2.5'];
  const results = await mapLimit(values, CONCURRENT, (value) =>
    runKds(['server', 'start', '--port', '0', '--data-dir', dir], {
      env: { KDS_CA_PASSPHRASE: TEST_CA_PASSPHRASE, KDS_LOG_FLUSH_MS: value },
      timeoutMs: 30_000,
    }),
  );
  for (const [i, value] of values.entries()) {
    const r = results[i]!;
    t.equal(r.code, 2, `KDS_LOG_FLUSH_MS=${value}: exit 2 (${r.stderr.trim()})`);
    t.match(r.stderr, /^error \[bad_request\]: KDS_LOG_FLUSH_MS must be an integer from 0 to 1000/);
    t.notMatch(r.stdout, /listening/, 'never listened');
  }
});

t.test('KDS_CLIENT_PASSPHRASE set but empty: config, exit 2, nothing written or sent', async (t) => {
  // `KDS_CLIENT_PASSPHRASE=$PASS` with PASS unset: the user meant the key to be encrypted, so the empty
  // value is refused rather than read as "no passphrase" (which stored the key in the clear).
  const fresh = join(tempDir(t), 'bob');
  const keyBefore = readFileSync(join(homes.alice!, 'key.pem'), 'utf8');
  const filesBefore = readdirSync(homes.alice!).sort();
  const runsFor = (server: string): string[][] => [
    ['client', 'enroll', '--name', 'bob', '--token', 'a'.repeat(43), '--home', fresh, '--server', server],
    ['client', 'renew', ...clientArgs(server)],
    ['client', 'status', ...clientArgs(server)],
    ['client', 'send', ...clientArgs(server), '--to', 'bob', '--message', 'hi'],
  ];
  const runs = await mapLimit(runsFor(''), CONCURRENT, async (_, i) => {
    const listener = await countingListener();
    try {
      const args = runsFor(listener.server)[i]!;
      const r = await runKds(args, { env: { KDS_CLIENT_PASSPHRASE: '' }, timeoutMs: 30_000 });
      return { args, r, connections: listener.connections() };
    } finally {
      await listener.close();
    }
  });
  for (const { args, r, connections } of runs) {
    const what = `kds ${args.slice(0, 2).join(' ')}`;
    t.equal(r.code, 2, `${what}: exit 2 (${r.stderr.trim()})`);
    t.equal(
      r.stderr,
      "error [config]: KDS_CLIENT_PASSPHRASE is set but empty: set it to the client key's passphrase, or unset it to keep the key unencrypted (a 0600 file)\n",
      what,
    );
    t.equal(connections, 0, `${what}: no connection was made`);
  }
  t.notOk(existsSync(fresh), 'enroll wrote no home');
  t.equal(readFileSync(join(homes.alice!, 'key.pem'), 'utf8'), keyBefore, 'renew left the key alone');
  t.same(readdirSync(homes.alice!).sort(), filesBefore, 'and staged nothing');
});
