// A listening connection whose path to PostgreSQL stops forwarding without closing (test/helpers/tcp-proxy.ts
// stall(): a NAT or firewall that dropped its state). The pool recovers by itself (query_timeout:
// pg-stalled.test.ts), but the listening connection only ever receives, so nothing of its own timed out and
// no `error` or `end` ever came: other nodes' notifications stopped reaching the node for good, unlogged.
// The store checks that connection (a bounded round trip): no answer counts as a lost connection, so the
// listeners are told (onLost), it LISTENs again on a new connection, and onGap asks them to catch up.
// Short check intervals are injected; the test waits on events, never on the clock.
import t from 'tap';
import { pgSchemaBehindProxy } from '../../helpers/pg-proxy.js';
import { PgStore } from '../../../server/store/pg-store.js';

async function waitFor(cond: () => boolean, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

t.test('a listening connection gone quiet is noticed, replaced, and notifications flow again', async (t) => {
  const { url, proxiedUrl, proxy, opened } = await pgSchemaBehindProxy(t);
  const node1 = await PgStore.open(proxiedUrl, {
    listenCheckIntervalMs: 100,
    listenCheckTimeoutMs: 1_000,
  });
  const node2 = await PgStore.open(url);
  opened.push(node1, node2);

  const heard: string[] = [];
  const lost: string[] = [];
  let gaps = 0;
  await node1.listen('revoked', {
    onNotify: (p) => heard.push(p),
    onLost: (reason) => lost.push(reason),
    onGap: () => (gaps += 1),
  });
  await node2.transaction((tx) => tx.notify('revoked', 'before'));
  t.ok(await waitFor(() => heard.includes('before')), 'heard across nodes');
  t.same(lost, [], 'the checks of a live connection pass');

  const acceptedBefore = proxy.accepted;
  proxy.stall(); // every connection of node 1 open now, the listening one included
  await node2.transaction((tx) => tx.notify('revoked', 'during'));
  t.ok(await waitFor(() => lost.length > 0), 'the listener is told the connection is lost');
  t.match(lost, [/went quiet: no answer within 1000 ms/], 'with the reason');
  t.ok(await waitFor(() => gaps === 1), 'it listens again and tells the listener to catch up');
  t.ok(proxy.accepted > acceptedBefore, 'on a new connection');
  t.notOk(heard.includes('during'), 'what was sent on the dead path never came (onGap is the catch-up)');

  await node2.transaction((tx) => tx.notify('revoked', 'after'));
  t.ok(await waitFor(() => heard.includes('after')), 'heard again after reconnecting');
  t.equal(lost.length, 1, 'one loss reported');
});
