// The page's model of the feed: events kept once each, in order, across reconnections and restarts of
// the process it watches; a hole in one process's sequence becomes a `missed` row, never silence.
import t from 'tap';
import { keyStateLabel, Model } from '../../../web/console/model.js';

const open = (seq: number): Record<string, unknown> => ({
  kind: 'exchange.open',
  exchange: seq,
  seq,
  at: seq,
});
const kinds = (m: Model): string[] =>
  m.events.map((e) => (e.kind === 'missed' ? `missed ${e.count}` : `${e.seq}`));

t.test('a reconnection that skips events shows how many were missed', async (t) => {
  const m = new Model();
  m.hello('aa', 'kdc');
  // A late page: its first event is wherever the feed's history starts, no hole.
  for (const seq of [40, 41, 42]) t.ok(m.add(open(seq)));
  m.hello('aa', 'kdc');
  // The same history again (nothing to skip past), then a jump.
  for (const seq of [40, 41, 42, 43, 50]) m.add(open(seq));
  t.same(kinds(m), ['40', '41', '42', '43', 'missed 6', '50']);
  const missed = m.events[4]!;
  t.match(missed, { kind: 'missed', seq: 44, index: 4, instance: 'aa' });
  t.equal(m.events[5]!.index, 5, 'the timeline counts the row');
});

t.test('the state sent before the history is not counted as missed', async (t) => {
  const m = new Model();
  m.hello('aa', 'kdc');
  m.add(open(1));
  m.hello('aa', 'kdc');
  t.ok(m.baseline({ kind: 'state', seq: 5, at: 5, state: { counts: {} } }));
  t.notOk(m.baseline({ kind: 'state', seq: 5, at: 5, state: { counts: {} } }), 'once');
  m.add(open(10));
  t.same(kinds(m), ['1', '5', 'missed 7', '10'], 'events 2-4 and 6-9');
});

t.test('a restarted process starts a new sequence: no hole', async (t) => {
  const m = new Model();
  m.hello('aa', 'kdc');
  m.add(open(1));
  m.add(open(2));
  m.hello('bb', 'kdc');
  m.add(open(30));
  t.same(kinds(m), ['1', '2', '30']);
  t.equal(m.restarts, 1);
});

t.test("a key's state names its reason once", async (t) => {
  t.equal(
    keyStateLabel('superseded', 'superseded'),
    'superseded',
    'a rotated key: not "superseded (superseded)"',
  );
  t.equal(keyStateLabel('revoked', 'keyCompromise'), 'revoked (keyCompromise)');
  t.equal(keyStateLabel('active', ''), 'active');
});
