// A node frozen in the middle of a write transaction (its host lost without a FIN, a VM paused, a
// process stopped): it holds the store's write lock (pg_advisory_xact_lock) and sends nothing more. Its
// connection looks alive to PostgreSQL for as long as TCP keepalive takes (2 h by default), so every
// write of every other node waited that long behind it. Each store connection sets
// idle_in_transaction_session_timeout: PostgreSQL ends the frozen session, rolls its transaction back and
// releases the lock, and the other nodes write again. The frozen node, when it wakes, finds its
// transaction gone (`unavailable`, nothing committed), so it never acknowledges it.
import t from 'tap';
import { pgTestSchema } from '../../helpers/pg.js';
import { PgStore } from '../../../server/store/pg-store.js';
import { codeOf } from '../../helpers/code-of.js';

t.test('a node frozen inside a transaction does not hold the write lock for ever', async (t) => {
  const opened: PgStore[] = [];
  const { url } = pgTestSchema(t, async () => {
    for (const s of opened) await s.close();
  });
  const frozen = await PgStore.open(url, { idleInTransactionTimeoutMs: 1_000 });
  const other = await PgStore.open(url, { idleInTransactionTimeoutMs: 1_000 });
  opened.push(frozen, other);

  let wake!: () => void;
  const asleep = new Promise<void>((resolve) => (wake = resolve));
  let locked!: () => void;
  const holding = new Promise<void>((resolve) => (locked = resolve));
  const frozenTx = frozen.transaction(async (tx) => {
    await tx.setSetting('frozen', 1);
    locked();
    await asleep; // frozen: holds the lock, sends nothing
  });
  await holding;
  // The other node's write, bounded by a deadline far above the timeout: without the timeout it waited
  // until the frozen node woke up.
  const deadline = new Promise<string>((resolve) =>
    setTimeout(() => resolve('still waiting'), 20_000).unref(),
  );
  const write = other.transaction((tx) => tx.setSetting('other', 2)).then(() => 'written');
  t.equal(
    await Promise.race([write, deadline]),
    'written',
    'the other node writes once the frozen session is ended',
  );
  wake();
  t.equal(await codeOf(frozenTx), 'unavailable', 'the frozen node finds its transaction gone');
  t.equal(await other.getSetting('frozen'), undefined, 'nothing of it was committed');
  t.equal(await other.getSetting('other'), 2);
  await frozen.transaction((tx) => tx.setSetting('after', 3));
  t.equal(await other.getSetting('after'), 3, 'the frozen node writes again once awake');
});
