// The unread output of all sessions together (server/kdc/unsent-budget.ts): within the limit nobody is
// blamed; over it, the session that has been over the high water longest is, and closing it (forget)
// makes room at once. Then the same through real Connections (FakeSocket, whose bufferedAmount the test
// sets): the longest-backlogged session is closed with rate_limited, the other is served.
import t from 'tap';
import { SEND_HIGH_WATER_BYTES } from '../../../server/kdc/limits.js';
import { DEFAULT_MAX_UNSENT_BYTES, UnsentBudget } from '../../../server/kdc/unsent-budget.js';
import type { Connection } from '../../../server/kdc/connection.js';
import { encodeValue } from '../../../shared/protocol/codec.js';
import { startFrameHarness } from '../../helpers/frame-harness.js';
import { startTestKdc } from '../../helpers/kdc-in-process.js';

const MIB = 1024 * 1024;
const HIGH = SEND_HIGH_WATER_BYTES;

t.test('the sum, and whom it blames', async (t) => {
  const b = new UnsentBudget<string>(5 * MIB);
  t.equal(b.report('a', 2 * MIB, true), undefined, 'within the limit: nobody');
  t.equal(b.report('b', 2 * MIB, true), undefined);
  t.equal(b.total, 4 * MIB);
  t.equal(b.report('c', 512 * 1024, false), undefined, '4.5 MiB: still within');
  t.equal(
    b.report('b', 3 * MIB, true),
    'a',
    'over: the session held back longest (a), not the one reporting',
  );
  b.forget('a');
  t.equal(b.total, 3.5 * MIB, 'a closing is no longer counted');
  t.equal(b.report('c', 0, false), undefined);
  t.equal(b.total, 3 * MIB, 'a session that drained counts nothing');
  // b drains (Connection: below half the high water): no longer held back, so not blamed first later.
  t.equal(b.report('b', HIGH / 2, false), undefined);
  t.equal(b.report('d', 2 * MIB, true), undefined);
  t.equal(b.report('e', 3 * MIB, true), 'd', 'd was held back before e; b no longer is');
  t.equal(b.report('d', 3 * MIB, true), 'd', 'the same session keeps its place in the order');
});

t.test('over the limit with no session held back: nobody is blamed', async (t) => {
  const b = new UnsentBudget<number>(HIGH);
  for (let i = 0; i < 4; i++) t.equal(b.report(i, HIGH / 2, false), undefined);
  t.ok(b.total > HIGH);
});

t.test('the limit is a positive integer; the default is 256 MiB', async (t) => {
  t.throws(() => new UnsentBudget(0), RangeError);
  t.throws(() => new UnsentBudget(1.5), RangeError);
  t.equal(DEFAULT_MAX_UNSENT_BYTES, 256 * MIB);
});

t.test('through Connections: the longest-backlogged session is closed, the other served', async (t) => {
  const { kdc, dataDir } = await startTestKdc(t);
  const budget = new UnsentBudget<Connection>(5 * MIB);
  const harness = await startFrameHarness(kdc, dataDir, { unsent: budget });
  const slow = await (await harness.fixedHandshake('client', 'slow-reader')).open();
  const other = await (await harness.fixedHandshake('client', 'other-reader')).open();
  const ping = (s: typeof slow, id: number): void => s.send(s.seal(encodeValue({ t: 'ping', id, b: {} })));

  // The slow reader goes over the high water first (its peer reads nothing: 3 MiB stay unsent).
  slow.sock.bufferedAmount = 3 * MIB;
  ping(slow, 1);
  t.match(await slow.next(), { t: 'ok', id: 1 }, 'its reply is sent (and stays unread)');
  t.equal(budget.total >= 3 * MIB, true, 'its unread bytes are counted');
  // Then another session goes over too: together 6 MiB, over the 5 MiB budget.
  other.sock.bufferedAmount = 3 * MIB;
  ping(other, 1);
  t.match(await other.next(), { t: 'ok', id: 1 }, 'the other session is served');
  t.match(
    await slow.next(),
    { t: 'session.closing', b: { code: 'rate_limited' } },
    'the slow one is told why',
  );
  t.equal(await slow.sock.closed, 4004, 'and closed with the rate_limited close code');
  t.equal(other.conn.closed, false, 'the other stays open');
  t.ok(budget.total < 5 * MIB, 'closing it made room');
  await other.close();
});

t.test('startKdc refuses a maxUnsentBytes that is not a positive integer', async (t) => {
  await t.rejects(startTestKdc(t, { maxUnsentBytes: 0 }), { code: 'bad_request', message: /maxUnsentBytes/ });
  await t.rejects(startTestKdc(t, { maxUnsentBytes: 2.5 }), { code: 'bad_request' });
});
