// The receiver's anti-replay window for relayed messages (shared/keys/replay-window.ts): every
// sequence number is accepted at most once, fresh numbers are accepted in any order within the window,
// and the state stays 16 bytes of bitmap plus one number however many messages pass.
import t from 'tap';
import fc from 'fast-check';
import {
  acceptSeq,
  assertMessageSeq,
  EMPTY_REPLAY_STATE,
  isFreshSeq,
  REPLAY_WINDOW_SIZE,
  type ReplayState,
} from '../../../shared/keys/replay-window.js';

t.test('in order, repeated, reordered inside and outside the window', async (t) => {
  let s: ReplayState | undefined;
  for (const seq of [1, 2, 3]) s = acceptSeq(s, seq);
  t.same(s, { highest: 3, bitmap: '0000000000000007' });
  t.throws(() => acceptSeq(s, 2), { code: 'replayed', name: 'StateError' }, 'a repeat is refused');
  t.throws(() => acceptSeq(s, 3), { code: 'replayed' }, 'the highest itself is refused again');
  s = acceptSeq(s, 10); // 4..9 dropped or late
  t.ok(isFreshSeq(s, 5), 'a late message inside the window is still fresh');
  s = acceptSeq(s, 5);
  t.throws(() => acceptSeq(s, 5), { code: 'replayed' });
  s = acceptSeq(s, 10 + REPLAY_WINDOW_SIZE);
  t.notOk(isFreshSeq(s, 10), 'exactly the window size below the highest: refused (no longer remembered)');
  t.notOk(isFreshSeq(s, 6), 'further below: refused');
  t.ok(isFreshSeq(s, 11), 'highest - (window - 1), never accepted: still fresh');
  s = acceptSeq(s, Number.MAX_SAFE_INTEGER);
  t.equal(s.highest, Number.MAX_SAFE_INTEGER);
  t.same(acceptSeq(undefined, 1), { highest: 1, bitmap: '0000000000000001' });
  t.equal(EMPTY_REPLAY_STATE.highest, 0);
});

t.test('bad sequence numbers and damaged state fail closed', async (t) => {
  for (const bad of [0, -1, 1.5, 2 ** 53, Number.NaN, '1', undefined]) {
    t.throws(() => assertMessageSeq(bad), { code: 'malformed' }, String(bad));
  }
  t.throws(() => isFreshSeq({ highest: 5, bitmap: 'zz' }, 6), { code: 'malformed' });
  t.throws(() => acceptSeq({ highest: -1, bitmap: '0'.repeat(16) }, 6), { code: 'malformed' });
});

t.test('property: at most once per number; fresh numbers accepted whatever the order', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 200 }),
      (deliveries) => {
        let s: ReplayState | undefined;
        const accepted = new Set<number>();
        let highest = 0;
        for (const seq of deliveries) {
          // The model: fresh iff never accepted and not WINDOW or more below the highest accepted.
          const expected = !accepted.has(seq) && seq > highest - REPLAY_WINDOW_SIZE;
          let ok = true;
          try {
            s = acceptSeq(s, seq);
          } catch (err) {
            if ((err as { code?: string }).code !== 'replayed') throw err;
            ok = false;
          }
          if (ok !== expected) return false;
          if (ok) {
            accepted.add(seq);
            highest = Math.max(highest, seq);
          }
          // The state survives a JSON round trip (it is persisted in the key store as JSON).
          s = s === undefined ? s : (JSON.parse(JSON.stringify(s)) as ReplayState);
          if (s !== undefined && !/^[0-9a-f]{16}$/.test(s.bitmap)) return false;
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
  t.pass('300 delivery sequences matched the model');
});
