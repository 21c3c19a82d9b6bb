// cli/commands/client/key-common.ts: the helpers every key command prints with.
import t from 'tap';
import { iso } from '../../../../cli/commands/client/key-common.js';

t.test('iso() shows any number: a time no Date holds is printed as itself, never thrown', async (t) => {
  t.equal(iso(0), '1970-01-01T00:00:00.000Z');
  t.equal(iso(8.64e15), '+275760-09-13T00:00:00.000Z', 'the last time a Date holds');
  // A key store written from a KDC that sent such a time made every listing fail with `internal`.
  t.equal(iso(9e15), '9000000000000000 (not a valid time)');
  t.equal(iso(Number.NaN), 'NaN (not a valid time)');
});
