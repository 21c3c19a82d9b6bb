// withFailover: tries the nodes in order, moves on only when a node is unreachable (`unavailable`), and
// stops at once on any other refusal.
import t from 'tap';
import { withFailover } from '../../client/failover.js';
import { AuthError, EnvironmentError, PolicyError } from '../../shared/errors.js';

const A = 'ws://127.0.0.1:1/kds';
const B = 'ws://127.0.0.1:2/kds';
const C = 'ws://127.0.0.1:3/kds';

t.test('the first node that answers is used; later nodes are not tried', async (t) => {
  const tried: string[] = [];
  const got = await withFailover(`${A},${B},${C}`, async (s) => {
    tried.push(s);
    if (s === A) throw new EnvironmentError('unavailable', 'refused');
    return s;
  });
  t.equal(got, B);
  t.same(tried, [A, B]);
});

t.test('a refusal that is not "unreachable" is reported at once, not retried elsewhere', async (t) => {
  const tried: string[] = [];
  await t.rejects(
    withFailover(`${A},${B}`, async (s) => {
      tried.push(s);
      throw new AuthError('cert_revoked', 'revoked');
    }),
    { code: 'cert_revoked' },
  );
  t.same(tried, [A]);
  await t.rejects(
    withFailover(`${A},${B}`, async () => {
      throw new PolicyError('rate_limited', 'slow down');
    }),
    { code: 'rate_limited' },
  );
});

t.test('every node unreachable: unavailable, naming each reason in order', async (t) => {
  await t.rejects(
    withFailover(`${A},${B}`, async (s) => {
      throw new EnvironmentError('unavailable', `cannot connect to ${s}: ECONNREFUSED`);
    }),
    {
      code: 'unavailable',
      message: `no KDC node answered: cannot connect to ${A}: ECONNREFUSED; cannot connect to ${B}: ECONNREFUSED`,
    },
  );
});

t.test('one node: its own error, unchanged', async (t) => {
  const own = new EnvironmentError('unavailable', 'cannot connect to A');
  await t.rejects(
    withFailover(A, async () => {
      throw own;
    }),
    own,
  );
});

t.test('a bad list is refused before any attempt', async (t) => {
  let attempts = 0;
  await t.rejects(
    withFailover(`${A},,${B}`, async () => {
      attempts += 1;
      return 1;
    }),
    { code: 'bad_request' },
  );
  t.equal(attempts, 0);
});
