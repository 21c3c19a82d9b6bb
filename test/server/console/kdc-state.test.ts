// The state panel of a KDC holding more sessions than the panel lists: the newest MAX_ROWS are listed,
// the count stays exact, and the state says it was cut.
import t from 'tap';
import type { CertificateAuthority } from '../../../server/ca/authority.js';
import { readKdcState, type StoreRows } from '../../../server/console/kdc-state.js';
import type { SessionTable } from '../../../server/kdc/session-table.js';

const ROWS: StoreRows = {
  certs: [],
  keys: [],
  crlNumber: 1,
  truncated: false,
  counts: { certsActive: 0, certsRevoked: 0, keysActive: 0, keysRevoked: 0, keysExpired: 0 },
};

function stateWith(open: number) {
  const handles = Array.from({ length: open }, (_, i) => ({
    identity: { name: `c${i}`, role: 'client' },
    n: i + 1,
  }));
  return readKdcState(
    {
      store: {} as never,
      ca: {} as CertificateAuthority,
      sessions: { all: () => handles } as unknown as SessionTable,
      exchangeOf: (s) => (s as { n: number }).n,
    },
    ROWS,
  );
}

t.test('a few sessions: all listed, nothing cut', async (t) => {
  const state = stateWith(3);
  t.same(
    state.sessions.map((s) => s.name),
    ['c0', 'c1', 'c2'],
  );
  t.equal(state.truncated, false);
  t.equal(state.counts.sessions, undefined, 'the list is the count');
});

t.test('thousands of sessions: the newest 200 listed, the count exact', async (t) => {
  const state = stateWith(5_000);
  t.equal(state.sessions.length, 200);
  t.same(state.sessions[0], { name: 'c4800', role: 'client', exchange: 4801 }, 'the oldest listed');
  t.same(state.sessions.at(-1), { name: 'c4999', role: 'client', exchange: 5000 }, 'the newest');
  t.equal(state.truncated, true);
  t.equal(state.counts.sessions, 5_000);
});
