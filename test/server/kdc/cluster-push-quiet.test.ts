// server/kdc/cluster-push.ts on a real PostgreSQL store whose listening connection goes quiet without
// closing (test/helpers/tcp-proxy.ts stall(): a NAT or firewall that dropped its state). The node used to
// notice nothing: no log line, and other nodes' key notices never reached its sessions again. Now the
// store's check of that connection reports the loss (one `store notifications lost` line), the node
// listens again (`... back`), catches up (revocation sync, backlog of the identities connected here),
// and a notice announced afterwards by another node reaches the key service live. Short check intervals
// are injected; the test waits on events, never on the clock.
import t from 'tap';
import { listenAcrossNodes, type ClusterPushDeps } from '../../../server/kdc/cluster-push.js';
import { SessionTable } from '../../../server/kdc/session-table.js';
import type { SessionHandle } from '../../../server/kdc/dispatch.js';
import { PgStore } from '../../../server/store/pg-store.js';
import { DELIVERY_CHANNEL } from '../../../server/keys/deliveries.js';
import { pgSchemaBehindProxy } from '../../helpers/pg-proxy.js';

async function waitFor(cond: () => boolean, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

t.test('a listening connection gone quiet: logged, listened again, caught up, live again', async (t) => {
  const { url, proxiedUrl, proxy, opened } = await pgSchemaBehindProxy(t);
  const node = await PgStore.open(proxiedUrl, {
    listenCheckIntervalMs: 100,
    listenCheckTimeoutMs: 1_000,
  });
  const other = await PgStore.open(url);
  opened.push(node, other);

  const announced: string[] = [];
  const backlogs: string[][] = [];
  const logged: string[] = [];
  let syncs = 0;
  const sessions = new SessionTable();
  sessions.add({ identity: { name: 'bob', serialHex: '0b' } } as unknown as SessionHandle);
  const stop = await listenAcrossNodes({
    store: node,
    ca: { syncRevocations: () => Promise.resolve((syncs += 1)) },
    keys: {
      pushAnnounced: (payload: string) => Promise.resolve(void announced.push(payload)),
      pushBacklogs: (names: Iterable<string>) => Promise.resolve(void backlogs.push([...names])),
    },
    sessions,
    log: (line: string) => logged.push(line),
  } as unknown as ClusterPushDeps);
  t.teardown(stop);

  await other.transaction((tx) => tx.notify(DELIVERY_CHANNEL, 'before'));
  t.ok(await waitFor(() => announced.includes('before')), 'a notice from another node arrives live');

  proxy.stall();
  await other.transaction((tx) => tx.notify(DELIVERY_CHANNEL, 'during'));
  t.ok(await waitFor(() => logged.some((l) => l.includes('store notifications back'))), 'it listens again');
  t.match(
    logged[0],
    /^store notifications lost \(the connection went quiet: no answer within 1000 ms\): .*reconnecting$/,
    'the loss is logged with its cause',
  );
  t.equal(logged.filter((l) => l.startsWith('store notifications lost')).length, 1, 'once');
  t.ok(await waitFor(() => backlogs.length === 1 && syncs >= 1), 'and catches up');
  t.same(backlogs, [['bob']], 'the backlog of the identities connected here is pushed again');

  await other.transaction((tx) => tx.notify(DELIVERY_CHANNEL, 'after'));
  t.ok(await waitFor(() => announced.includes('after')), 'a notice announced afterwards arrives live');
});
