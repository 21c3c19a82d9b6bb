// Client-side failover with real processes: `--server` lists several KDC nodes, tried in order. A node
// that cannot be reached is skipped; a node that answers with a refusal is not (its answer stands);
// `kds client listen` whose node dies reconnects to the next one.
import t from 'tap';
import { join } from 'node:path';
import { initCa } from '../../server/ca/init.js';
import { EXIT } from '../../shared/errors.js';
import { TEST_CA_PASSPHRASE, initDataDir, parseJson, runKds, startServer } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';
import {
  client,
  enrollAll,
  freePort,
  keyClient,
  listen,
  startServerOnPort,
  type Clients,
} from './keys-helpers.js';

t.setTimeout(180_000);

const dataDir = await initDataDir(t);
const c: Clients = { server: await startServer(t, dataDir), homes: {} };
c.homes = await enrollAll(c.server, ['alice', 'bob']);
const nobody = `ws://127.0.0.1:${await freePort()}/kds`;

function status(name: string, server: string) {
  return runKds(['client', 'status', '--name', name, '--home', c.homes[name]!, '--server', server, '--json']);
}

t.test('an unreachable first node is skipped; the session says which node answered', async (t) => {
  const r = await status('alice', `${nobody},${c.server.url}`);
  t.equal(r.code, 0, r.stderr);
  t.equal(parseJson(r).server, c.server.url);
  const human = await runKds([
    'client',
    'status',
    '--name',
    'alice',
    '--home',
    c.homes.alice!,
    '--server',
    `${c.server.url},${nobody}`,
  ]);
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, `session with ${c.server.url}\n`, 'the first node, when it answers');
});

t.test('every node unreachable: unavailable (exit 8) naming each node', async (t) => {
  const other = `ws://127.0.0.1:${await freePort()}/kds`;
  const r = await status('alice', `${nobody},${other}`);
  t.equal(r.code, EXIT.unavailable);
  const out = `${r.stdout}${r.stderr}`; // --json reports the error as JSON on stdout
  t.match(out, /no KDC node answered/);
  t.match(out, nobody);
  t.match(out, other);
  t.notMatch(out, /\n\s+at /, 'no stack trace');
});

t.test('a node that answers with a refusal is not skipped: its answer stands', async (t) => {
  // A KDC of another CA listed first: the client's pinned root refuses its certificate. Trying the next
  // node would hide a misconfigured or hostile node behind a working one.
  const otherDir = join(tempDir(t), 'data');
  await initCa({ dataDir: otherDir, caKeyBits: 2048, passphrase: TEST_CA_PASSPHRASE, actor: 'test' });
  const stranger = await startServer(t, otherDir);
  const r = await status('alice', `${stranger.url},${c.server.url}`);
  t.not(r.code, 0);
  const out = `${r.stdout}${r.stderr}`;
  t.match(out, /cert_unknown_issuer/);
  t.notMatch(out, /no KDC node answered/);
  await stranger.stop();
});

t.test('a typo in the list is a usage error before anything is sent', async (t) => {
  const r = await status('alice', `${c.server.url},,${nobody}`);
  t.equal(r.code, EXIT.usage);
  // With --json, the usage error is the JSON on stdout (docs/cli.md), nothing on stderr.
  t.match(JSON.parse(r.stdout), {
    error: { code: 'bad_request', message: /--server: .*entry 2 of 3 is empty/ },
  });
});

t.test('listen: its node killed, it reconnects to the next node and keys still arrive', async (t) => {
  // Two nodes of one KDC in sequence on one data directory (SQLite has one writer process): node 1
  // dies with SIGKILL, node 2 comes up on the second URL of the list.
  const dir = await initDataDir(t);
  const port1 = await freePort();
  const port2 = await freePort();
  const node1 = await startServerOnPort(t, dir, port1);
  const pair: Clients = { server: node1, homes: await enrollAll(node1, ['carol', 'dave']) };
  const url2 = `ws://127.0.0.1:${port2}/kds`;
  const dave = listen(t, pair, 'dave', `${node1.url},${url2}`);
  t.match(await dave.waitFor((e) => e.event === 'connected', 'first connection'), { server: node1.url });
  t.equal((await node1.stop('SIGKILL')).signal, 'SIGKILL');
  await dave.waitFor((e) => e.event === 'disconnected', 'the disconnect');
  pair.server = await startServerOnPort(t, dir, port2);
  const again = await dave.waitFor(
    (e) => e.event === 'connected' && e.server === url2,
    'a connection to the second node',
  );
  t.equal(again.name, 'dave');
  const carol = await keyClient(t, pair, 'carol');
  const k = await carol.client.sendKey({ to: 'dave' });
  t.match(await dave.waitFor((e) => e.event === 'key' && e.serial === k.serial, 'the key'), {
    verdict: 'valid',
  });
  await carol.close();
  t.equal(await dave.stop(), 0);
  // The human line names the node too (client helpers print JSON here; the text form is unit-tested).
  const st = await client(pair, 'carol', 'status', ['--json']);
  t.equal(parseJson(st).server, url2);
});
