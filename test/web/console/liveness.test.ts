// The page's status badge: `live` while anything arrives within two keepalive intervals, `stale` (with
// how long the silence has lasted) past that, `live` again on the next word; `reconnecting` when the
// browser lost the stream. The clock is the test's.
import t from 'tap';
import { DEFAULT_KEEPALIVE_MS, Liveness } from '../../../web/console/liveness.js';

t.test('silence for two keepalive intervals is stale; the next word is live again', async (t) => {
  let now = 1_000_000;
  const l = new Liveness(() => now);
  t.same(l.status('the KDC'), { state: 'connecting', text: 'connecting' });
  l.opened();
  l.heard(1_000); // the hello names the interval
  t.equal(l.status('the KDC').state, 'live');
  now += 2_000;
  t.equal(l.status('the KDC').state, 'live', 'two intervals: still live');
  now += 1_500;
  t.same(l.status('the KDC'), { state: 'stale', text: 'stale: no word from the KDC for 3 s' });
  l.heard(); // a ping, or an event
  t.equal(l.status('the KDC').state, 'live', 'live again');
  now += 2_001;
  t.match(l.status("Mallory's proxy"), {
    state: 'stale',
    text: /^stale: no word from Mallory's proxy for 2 s$/,
  });
  l.lost();
  t.same(l.status('the KDC'), { state: 'reconnecting', text: 'reconnecting' }, 'the browser lost it');
  l.opened();
  t.equal(l.status('the KDC').state, 'live', 'reopened');
});

t.test('without an interval from the hello: the default; a nonsense one is ignored', async (t) => {
  let now = 0;
  const l = new Liveness(() => now);
  l.opened();
  l.heard(Number.NaN);
  l.heard(-5);
  now += 2 * DEFAULT_KEEPALIVE_MS;
  t.equal(l.status('the KDC').state, 'live');
  now += 1;
  t.equal(l.status('the KDC').state, 'stale');
});
