// The fair unauthenticated cap (server/kdc/limits.ts HandshakeSlots) that keeps a handshake flood from
// locking honest clients out: eviction rules, one address never displacing its own connections.
import t from 'tap';
import { HandshakeSlots } from '../../server/kdc/limits.js';

t.test('below the cap everyone is admitted; release frees a slot once', async (t) => {
  const slots = new HandshakeSlots<string>(2);
  t.same(slots.admit('a1', 'A'), { admitted: true });
  t.same(slots.admit('b1', 'B'), { admitted: true });
  t.equal(slots.count, 2);
  t.equal(slots.release('a1'), true);
  t.equal(slots.release('a1'), false, 'releasing twice is a no-op');
  t.equal(slots.count, 1);
  t.same(slots.admit('c1', 'C'), { admitted: true });
});

t.test('a full cap: a newcomer evicts the oldest connection of the biggest holder', async (t) => {
  const slots = new HandshakeSlots<string>(4);
  for (const c of ['a1', 'a2', 'a3', 'b1']) slots.admit(c, c[0]!.toUpperCase());
  t.same(slots.admit('h1', 'H'), { admitted: true, evicted: 'a1' }, 'the oldest of A (3 slots) makes room');
  t.equal(slots.count, 4);
  t.equal(slots.heldBy('A'), 2);
  t.equal(slots.release('a1'), false, 'the evicted connection no longer holds a slot');
  t.same(slots.admit('h2', 'H'), { admitted: true, evicted: 'a2' }, 'A still holds the most (2 vs H 1)');
  t.same(
    slots.admit('z1', 'Z'),
    { admitted: true, evicted: 'h1' },
    'now H holds the most (2): its oldest gives way',
  );
});

t.test('an address never displaces its own connections or an equal holder', async (t) => {
  const slots = new HandshakeSlots<string>(2);
  slots.admit('a1', 'A');
  slots.admit('a2', 'A');
  t.same(slots.admit('a3', 'A'), { admitted: false }, 'a flood from one address refuses itself');
  t.same(slots.admit('b1', 'B'), { admitted: true, evicted: 'a1' }, 'another address gets in');
  t.same(slots.admit('c1', 'C'), { admitted: true, evicted: 'a2' }, 'A (1) vs C (0): A still gives way');
  t.same(slots.admit('d1', 'D'), { admitted: true, evicted: 'b1' }, 'B (1) > D (0)');
  const one = new HandshakeSlots<string>(1);
  one.admit('x', 'X');
  t.same(one.admit('y', 'X'), { admitted: false }, 'the same address, cap 1: refused (the wire test)');
});

t.test(
  'a flood spread over many addresses cannot evict an honest one-slot client while they hold more',
  async (t) => {
    const slots = new HandshakeSlots<string>(256);
    for (let i = 0; i < 255; i++) slots.admit(`atk${i}`, `10.0.0.${i % 100}`);
    t.same(slots.admit('honest', '192.0.2.1'), { admitted: true });
    for (let i = 255; i < 2_000; i++) {
      const r = slots.admit(`atk${i}`, `10.0.0.${i % 100}`);
      if (r.admitted && r.evicted === 'honest') t.fail(`attacker connection ${i} evicted the honest client`);
    }
    t.equal(slots.heldBy('192.0.2.1'), 1, 'the honest client kept its slot through 1,745 attacker arrivals');
    t.equal(slots.count, 256);
  },
);

t.test('invalid cap', async (t) => {
  t.throws(() => new HandshakeSlots(0), RangeError);
});
