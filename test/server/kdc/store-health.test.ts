// The KDC's log of an unreachable store (server/kdc/store-health.ts): one line when it goes, one when it
// is back, whatever the number of rounds in between; any other failure is logged every time.
import t from 'tap';
import { StoreHealth } from '../../../server/kdc/store-health.js';
import { EnvironmentError } from '../../../shared/errors.js';

const gone = new EnvironmentError('unavailable', 'the database is unavailable: store read failed');

t.test('an outage is one line when it starts and one when it ends', async (t) => {
  let now = 1_000_000;
  const lines: string[] = [];
  const health = new StoreHealth(
    (l) => lines.push(l),
    () => now,
  );
  health.answered();
  t.same(lines, [], 'nothing while the store answers');
  for (let round = 0; round < 5; round += 1) {
    health.failed('revocation sync failed', gone);
    health.failed('complete CRL re-issue failed', gone);
    now += 2_000;
  }
  t.same(lines, [
    'store unavailable (the database is unavailable: store read failed): requests that need it fail with `unavailable` until it answers again',
  ]);
  health.answered();
  health.answered();
  t.equal(lines.length, 2);
  t.equal(lines[1], 'store available again (unavailable for about 10 s)');
  health.failed('revocation sync failed', gone);
  t.equal(lines.length, 3, 'the next outage is said again');
  t.match(lines[2], /^store unavailable/);
});

t.test('a failure that is not the store being away is logged every round', async (t) => {
  const lines: string[] = [];
  const health = new StoreHealth((l) => lines.push(l));
  const broken = new EnvironmentError('store_error', 'store read failed (42P01: relation does not exist)');
  health.failed('revocation sync failed', broken);
  health.failed('revocation sync failed', broken);
  health.failed('complete CRL re-issue failed', new Error('boom'));
  t.same(lines, [
    'revocation sync failed: store read failed (42P01: relation does not exist)',
    'revocation sync failed: store read failed (42P01: relation does not exist)',
    'complete CRL re-issue failed: boom',
  ]);
  health.answered();
  t.equal(lines.length, 3, 'no "available again" without an outage');
});
