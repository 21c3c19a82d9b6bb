// Connections to PostgreSQL that go quiet instead of failing (test/helpers/tcp-proxy.ts stall(): nothing
// forwarded, nothing closed), while new connections work: a primary that moved behind a virtual IP, a NAT
// or firewall that dropped the connections' state. Without a bound on each statement a call on such a
// connection waited for TCP to give up (about 15 minutes of retransmissions), and a transaction on one
// kept its slot, so the node's writes queued behind it. Each statement is bounded (query_timeout): the
// call fails as `unavailable`, its connection is dropped, and the next call gets a new one.
import t from 'tap';
import { pgSchemaBehindProxy } from '../../helpers/pg-proxy.js';
import { PgStore } from '../../../server/store/pg-store.js';
import { codeOf } from '../../helpers/code-of.js';

/** `p`'s error code, or 'still waiting' when it has not settled after ms (far above the timeout used). */
function within<T>(p: Promise<T>, ms = 20_000): Promise<string> {
  const late = new Promise<string>((resolve) => setTimeout(() => resolve('still waiting'), ms).unref());
  return Promise.race([codeOf(p), late]);
}

t.test('a statement on a stalled connection fails as unavailable, then new connections serve', async (t) => {
  const { proxiedUrl, proxy, opened } = await pgSchemaBehindProxy(t);
  const store = await PgStore.open(proxiedUrl, {
    poolSize: 1,
    queryTimeoutMs: 2_000,
    // The stalled transaction's session still holds the write lock at the server: ended after this.
    idleInTransactionTimeoutMs: 500,
  });
  opened.push(store);
  await store.setSetting('before', 1);

  proxy.stall(); // the pool's one idle connection
  t.equal(await within(store.getSetting('before')), 'unavailable', 'a read on it: unavailable, not a hang');
  t.equal(await store.getSetting('before'), 1, 'the next read opens a new connection');

  // A transaction whose connection goes quiet between two statements.
  const cut = store.transaction(async (tx) => {
    await tx.setSetting('half', 1);
    proxy.stall();
    await tx.setSetting('half', 2);
  });
  t.equal(await within(cut), 'unavailable', 'the transaction fails as unavailable, not a hang');
  await store.transaction((tx) => tx.setSetting('after', 2));
  t.equal(await store.getSetting('after'), 2, 'transactions work again on the same store object');
  t.equal(await store.getSetting('half'), undefined, 'nothing of the stalled transaction was committed');
});
