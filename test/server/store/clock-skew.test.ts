// server/store/clock-skew.ts against a scripted database clock: the skew is read at the middle of the
// round trip and only what the round trip cannot explain counts; a start beyond the bound is refused
// with `clock_skew` naming the skew, the store and NTP; a running watch reports leaving and regaining
// the bound once each, and a clock beyond the warning bound once per stretch. The real store: the
// conformance suite (databaseTime) and test/server/kdc/clock-skew.test.ts.
import t from 'tap';
import { EnvironmentError, exitCodeFor } from '../../../shared/errors.js';
import { CLOCK_SKEW_REFUSE_MS, ClockSkewWatch, readClockSkew } from '../../../server/store/clock-skew.js';

/** A node clock and a database whose answer takes `rttMs` (the database's clock is the real time). */
function fakes(opts: { nodeOffset: number; rttMs?: number }) {
  let real = 1_800_000_000_000;
  const state = { nodeOffset: opts.nodeOffset, rttMs: opts.rttMs ?? 2 };
  const clock = (): number => real + state.nodeOffset;
  const store = {
    location: 'postgres://db/kds',
    databaseTime: (): Promise<number> => {
      real += state.rttMs / 2;
      const at = real;
      real += state.rttMs / 2;
      return Promise.resolve(at);
    },
  };
  return { clock, store, state };
}

t.test('the skew is read at the middle of the round trip', async (t) => {
  const f = fakes({ nodeOffset: 5_000, rttMs: 400 });
  t.same(await readClockSkew(f.store, f.clock), { skewMs: 5_000, rttMs: 400 });
  const none = await readClockSkew({ databaseTime: () => Promise.resolve(undefined) }, Date.now);
  t.equal(none, undefined, 'SQLite: no clock to compare with');
});

t.test('a start beyond the bound is refused, naming the skew and NTP', async (t) => {
  const f = fakes({ nodeOffset: 2 * 86_400_000 });
  const err = await new ClockSkewWatch(f.store, f.clock).assertInSync().then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof EnvironmentError);
  t.equal((err as EnvironmentError).code, 'clock_skew');
  t.equal(exitCodeFor('clock_skew'), 8, 'exit 8: try again once the clock is set');
  t.equal(
    (err as Error).message,
    "this node's clock is 172800.0 s ahead of the database server's (postgres://db/kds; at most 30 s allowed): every node stamps shared rows with its own clock, so synchronise the clocks of every node and of the database host (NTP: chrony, systemd-timesyncd), then start again",
  );
  const behind = fakes({ nodeOffset: -(CLOCK_SKEW_REFUSE_MS + 1_000) });
  await t.rejects(new ClockSkewWatch(behind.store, behind.clock).assertInSync(), {
    code: 'clock_skew',
    message: /31\.0 s behind the database server's/,
  });
});

t.test("a slow round trip alone never refuses; the bound is the caller's to set", async (t) => {
  // 31 s off as read, but the answer took 4 s: it may be as little as 29 s.
  const f = fakes({ nodeOffset: 31_000, rttMs: 4_000 });
  const warning = await new ClockSkewWatch(f.store, f.clock).assertInSync();
  t.match(warning, /31\.0 s ahead of the database server's: beyond 30 s this node stops issuing CRLs/);
  await t.rejects(new ClockSkewWatch(f.store, f.clock, 10_000).assertInSync(), { code: 'clock_skew' });
  const near = fakes({ nodeOffset: 1_500 });
  t.equal(await new ClockSkewWatch(near.store, near.clock).assertInSync(), undefined, 'within 2 s: silent');
});

t.test('a running watch: out of bounds, back, warnings once per stretch', async (t) => {
  const f = fakes({ nodeOffset: 0 });
  const watch = new ClockSkewWatch(f.store, f.clock);
  t.equal(watch.inSync, true);
  t.equal(await watch.check(), undefined);
  t.same(watch.reading, { skewMs: 0, rttMs: 2 });
  f.state.nodeOffset = 3_000;
  t.match(await watch.check(), /3\.0 s ahead.*check its NTP synchronisation/);
  t.equal(await watch.check(), undefined, 'said once');
  f.state.nodeOffset = 45_000;
  t.match(
    await watch.check(),
    /45\.0 s ahead of the database server's \(at most 30 s allowed\): this node stops issuing CRLs and pruning keys until it is back within, and \/healthz answers 503/,
  );
  t.equal(watch.inSync, false);
  t.equal(await watch.check(), undefined, 'said once');
  t.equal(watch.inSync, false);
  f.state.nodeOffset = 0;
  t.match(await watch.check(), /^clock back within 30 s of the database server's \(0\.0 s\): CRL issue/);
  t.equal(watch.inSync, true);
  f.state.nodeOffset = -3_000;
  t.match(await watch.check(), /3\.0 s behind/, 'a new stretch beyond the warning bound: said again');
});

t.test("the database's time between measurements follows the monotonic clock, not this node's", async (t) => {
  // A retention pass checks the clock and then deletes: a wall clock set forward between the two must
  // not move what "expired long enough ago" means (server/kdc/kdc.ts takes the earlier of the two).
  const f = fakes({ nodeOffset: 0 });
  const watch = new ClockSkewWatch(f.store, f.clock);
  t.equal(watch.databaseNow(), undefined, 'nothing before the first measurement');
  await watch.check();
  const measured = watch.databaseNow()!;
  t.ok(Math.abs(measured - f.clock()) < 1_000, 'right after a measurement: the database time');
  f.state.nodeOffset = 5 * 86_400_000;
  const later = watch.databaseNow()!;
  t.ok(later >= measured && later - measured < 60_000, 'the node clock set 5 days forward does not move it');
});
