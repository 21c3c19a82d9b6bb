// The keys are local: `kds client keys` and the menu's "List keys" still show them when the KDC is
// down, from the client's own records, saying that the view may be stale.
import t from 'tap';
import { initDataDir, runKds, startServer } from '../helpers/kds-process.js';
import { enrollAll, keyClient, type Clients } from './keys-helpers.js';
import { startMenu } from './menu-driver.js';

t.setTimeout(120_000);

t.test('KDC down: the local view, marked as possibly stale', async (t) => {
  const dataDir = await initDataDir(t);
  const server = await startServer(t, dataDir);
  const c: Clients = { server, homes: await enrollAll(server, ['alice', 'bob']) };
  const alice = await keyClient(t, c, 'alice');
  const sent = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
  await alice.close();
  await server.stop();

  const base = ['--name', 'alice', '--home', c.homes.alice!, '--server', server.url];
  const human = await runKds(['client', 'keys', ...base]);
  t.equal(human.code, 0, `exit 0 (${human.stderr.trim()})`);
  t.match(human.stdout, new RegExp(`${sent.serial}  -> bob +kdc `), 'the key, from the local records');
  t.match(human.stderr, /the KDC is not reachable \(unavailable\)[^\n]*may be stale/, 'says it may be stale');

  const json = await runKds(['client', 'keys', ...base, '--json']);
  t.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout) as { keys: { serial: string }[]; stale: boolean; source: string };
  t.equal(doc.stale, true);
  t.equal(doc.source, 'local');
  t.same(
    doc.keys.map((k) => k.serial),
    [sent.serial],
  );

  const m = startMenu(t, base);
  await m.waitFor(/choose \[0-2\]: $/);
  m.type('1');
  await m.waitFor(/choose \[0-6\]: $/);
  m.type('5');
  const listed = await m.waitFor(/[\s\S]*choose \[0-6\]: $/);
  t.match(listed, /the KDC is not reachable \(unavailable\)[^\n]*may be stale/, 'the menu says so too');
  t.match(listed, new RegExp(`${sent.serial}  -> bob +kdc `), 'and lists the key');
  t.notMatch(listed, /error \[/, 'not an error');
  m.type('0');
  await m.waitFor(/choose \[0-2\]: $/);
  m.type('0');
  t.equal(await m.exited(), 0);
});
