import t from 'tap';
import { ConnectionCounter, HandshakeRateLimiter } from '../../../server/kdc/limits.js';

t.test('token bucket: burst, then refill at the configured rate, per address', async (t) => {
  let now = 1_000_000;
  const limiter = new HandshakeRateLimiter({ burst: 3, perSecond: 2 }, () => now);
  t.ok(limiter.take('10.0.0.1'));
  t.ok(limiter.take('10.0.0.1'));
  t.ok(limiter.take('10.0.0.1'));
  t.notOk(limiter.take('10.0.0.1'), 'bucket empty after the burst');
  t.ok(limiter.take('10.0.0.2'), 'another address has its own bucket');
  now += 499;
  t.notOk(limiter.take('10.0.0.1'), 'less than one token refilled');
  now += 2;
  t.ok(limiter.take('10.0.0.1'), 'one token after 500 ms at 2/s');
  t.notOk(limiter.take('10.0.0.1'));
  now += 60_000;
  t.ok(limiter.take('10.0.0.1'));
  t.ok(limiter.take('10.0.0.1'));
  t.ok(limiter.take('10.0.0.1'));
  t.notOk(limiter.take('10.0.0.1'), 'refill is capped at the burst size');
});

t.test('a clock going backwards never mints tokens', async (t) => {
  let now = 5_000;
  const limiter = new HandshakeRateLimiter({ burst: 1, perSecond: 1 }, () => now);
  t.ok(limiter.take('a'));
  now -= 10_000;
  t.notOk(limiter.take('a'));
});

t.test('the address map stays bounded under a flood of addresses', async (t) => {
  let now = 0;
  const limiter = new HandshakeRateLimiter({ burst: 1, perSecond: 1 }, () => now);
  for (let i = 0; i < 25_000; i++) {
    now += 1;
    limiter.take(`addr-${i}`);
  }
  t.ok(limiter.trackedAddresses <= 10_000, `tracked ${limiter.trackedAddresses}`);
});

t.test('invalid limits are refused', async (t) => {
  t.throws(() => new HandshakeRateLimiter({ burst: 0, perSecond: 1 }), RangeError);
  t.throws(() => new HandshakeRateLimiter({ burst: 1, perSecond: 0 }), RangeError);
});

t.test('ConnectionCounter: a cap per address, released on close, nothing kept at zero', async (t) => {
  t.throws(() => new ConnectionCounter(0), RangeError);
  const c = new ConnectionCounter(2);
  t.equal(c.admit('10.0.0.1'), true);
  t.equal(c.admit('10.0.0.1'), true);
  t.equal(c.admit('10.0.0.1'), false, 'the third from one address is refused');
  t.equal(c.admit('10.0.0.2'), true, 'another address is not affected');
  t.equal(c.count, 3, 'a refused connection is not counted');
  c.release('10.0.0.1');
  t.equal(c.heldBy('10.0.0.1'), 1);
  t.equal(c.admit('10.0.0.1'), true, 'a closed connection frees its place');
  c.release('10.0.0.1');
  c.release('10.0.0.1');
  c.release('10.0.0.1'); // more releases than admissions change nothing
  c.release('10.0.0.9');
  t.equal(c.heldBy('10.0.0.1'), 0);
  t.equal(c.count, 1);
});
