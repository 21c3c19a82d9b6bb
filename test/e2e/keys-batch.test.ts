// Batched KDC-generated keys (docs/keys.md "Batches") with real processes: `kds client send-key --mode kdc
// --count N` makes N keys in one request; bob's `kds client listen` receives and verifies each; carol,
// offline meanwhile, takes hers on her next command; usage errors exit 2 before anything is sent.
import t from 'tap';
import { initDataDir, startServer } from '../helpers/kds-process.js';
import { client, enrollAll, json, listen, type Clients } from './keys-helpers.js';

t.setTimeout(200_000);

const dataDir = await initDataDir(t);
const server = await startServer(t, dataDir);
const c: Clients = { server, homes: await enrollAll(server, ['alice', 'bob', 'carol']) };
const bob = listen(t, c, 'bob');
await bob.waitFor((e) => e.event === 'connected', 'connected');

interface Listed {
  serial: string;
  owner: string;
  peer: string;
  state: string;
  local: string;
  peerVerified: boolean;
}

async function keysOf(name: string): Promise<Listed[]> {
  const r = await client(c, name, 'keys', ['--json']);
  t.equal(r.code, 0, r.stderr);
  return json<{ keys: Listed[] }>(r).keys;
}

t.test('send-key --mode kdc --count 5: five keys, each received and verified by bob', async (t) => {
  const r = await client(c, 'alice', 'send-key', ['--to', 'bob', '--mode', 'kdc', '--count', '5', '--json']);
  t.equal(r.code, 0, r.stderr);
  const sent = json<{
    peer: string;
    mode: string;
    keys: { serial: string; fingerprint: string; state: string }[];
  }>(r);
  t.match(sent, { peer: 'bob', mode: 'kdc' });
  t.equal(sent.keys.length, 5);
  t.equal(new Set(sent.keys.map((k) => k.serial)).size, 5);
  for (const k of sent.keys) {
    t.equal(k.state, 'pending');
    t.match(await bob.waitFor((e) => e.event === 'key' && e.serial === k.serial, `key ${k.serial}`), {
      from: 'alice',
      mode: 'kdc',
      verdict: 'valid',
      state: 'active',
      fingerprint: k.fingerprint,
    });
  }
  t.notOk(JSON.stringify(bob.events).includes('"key":'), 'listen never prints key material');
  // Alice's next session applies bob's key.verified notices: all five usable on her side too.
  const listed = await keysOf('alice');
  for (const k of sent.keys) {
    t.match(
      listed.find((l) => l.serial === k.serial),
      { owner: 'alice', peer: 'bob', state: 'active', local: 'active', peerVerified: true },
    );
  }
  const m = await client(c, 'alice', 'send', [
    '--to',
    'bob',
    '--serial',
    sent.keys[4]!.serial,
    '--message',
    'batched',
  ]);
  t.equal(m.code, 0, m.stderr);
  await bob.waitFor((e) => e.event === 'message' && e.text === 'batched', 'the message');

  const human = await client(c, 'alice', 'send-key', ['--to', 'bob', '--mode', 'kdc', '--count', '2']);
  t.equal(human.code, 0, human.stderr);
  t.match(
    human.stdout,
    /^sent 2 keys to bob \(kdc\), expiring .*, pending \(usable once bob has verified them\):\n {2}[0-9a-f]{32} {2}fingerprint [0-9a-f]{16}\n {2}[0-9a-f]{32} {2}fingerprint [0-9a-f]{16}\n$/,
  );
});

t.test('a receiver offline meanwhile takes the batch on its next command', async (t) => {
  const r = await client(c, 'alice', 'send-key', [
    '--to',
    'carol',
    '--mode',
    'kdc',
    '--count',
    '4',
    '--json',
  ]);
  t.equal(r.code, 0, r.stderr);
  const serials = json<{ keys: { serial: string }[] }>(r).keys.map((k) => k.serial);
  const listed = await keysOf('carol');
  for (const serial of serials) {
    t.match(
      listed.find((l) => l.serial === serial),
      { owner: 'alice', state: 'active', local: 'active', peerVerified: true },
    );
  }
});

t.test('usage errors exit 2 before anything is sent', async (t) => {
  const before = (await keysOf('alice')).length;
  for (const [args, message] of [
    [
      ['--mode', 'kdc', '--count', '0'],
      /--count: expected a whole number 1 or more in decimal digits, got "?0"?/,
    ],
    [
      ['--mode', 'kdc', '--count', '33'],
      /--count: expected a whole number from 1 to 32 in decimal digits, got 33/,
    ],
    [['--mode', 'kdc', '--count', '2.0'], /--count: expected a whole number/],
    [['--count', '3'], /--count: only with --mode kdc/],
    [['--mode', 'e2e', '--count', '3'], /--count: only with --mode kdc/],
  ] as const) {
    const r = await client(c, 'alice', 'send-key', ['--to', 'bob', ...args]);
    t.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.match(r.stderr, message);
  }
  t.equal((await keysOf('alice')).length, before, 'no key was created');
});
