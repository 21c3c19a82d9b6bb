// The state panel of a KDC holding more sessions (or keys) than the panel lists: the newest MAX_ROWS are
// listed, the counts stay exact, and the state says it was cut. Keys are read newest first, MAX_ROWS + 1
// of them, and counted from the store's state index: never every key the store holds.
import t from 'tap';
import type { CertificateAuthority } from '../../../server/ca/authority.js';
import { readKdcState, readStoreRows, type StoreRows } from '../../../server/console/kdc-state.js';
import { openStore } from '../../../server/store/store.js';
import { tempDir } from '../../helpers/tmp.js';
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

t.test("the store's rows: the newest 200 keys read, the counts of all of them exact", async (t) => {
  const dir = tempDir(t);
  const store = openStore(dir);
  t.teardown(() => store.close());
  const states = [...Array(210).fill('active'), ...Array(30).fill('revoked'), ...Array(10).fill('expired')];
  states.forEach((state: string, i) =>
    store.insertSymKey({
      serial: (i + 1).toString(16).padStart(32, '0'),
      mode: 'kdc',
      owner: 'alice',
      ownerCert: 'a1',
      peer: 'bob',
      peerCert: 'b1',
      createdAt: 1_000 + i,
      expiresAt: 10_000_000,
      state: state as 'active',
      digest: Buffer.alloc(32, 1),
      wrappedKey: Buffer.from('wrapped'),
      kekVersion: 1,
    }),
  );
  // 300 certificates: every third revoked, a pending renewal that is neither listed nor counted.
  for (let i = 0; i < 300; i++) {
    const serialHex = (i + 1).toString(16);
    store.insertIssuedCertificate({
      serialHex,
      name: `c${i}`,
      role: 'client',
      notBefore: 0,
      notAfter: 10_000_000,
      issuedAt: i,
      pem: `-----BEGIN CERTIFICATE-----\n${serialHex}\n`,
      fingerprint256: `fp${serialHex}`,
    });
    if (i % 3 === 2) store.setCertificateStatus(serialHex, 'revoked');
  }
  store.insertRenewal(
    {
      serialHex: 'ffff',
      name: 'c0',
      role: 'client',
      notBefore: 0,
      notAfter: 10_000_000,
      issuedAt: 1,
      pem: '-----BEGIN CERTIFICATE-----\nffff\n',
      fingerprint256: 'fpffff',
    },
    '1',
    1,
  );
  const asked: unknown[] = [];
  const rows = await readStoreRows({
    listNewestCertificates: async (limit) => {
      asked.push({ certificates: limit });
      return store.listNewestCertificates(limit);
    },
    countCertificatesByStatus: async () => store.countCertificatesByStatus(),
    listSymKeys: async (filter) => {
      asked.push(filter);
      return store.listSymKeys(filter);
    },
    countSymKeysByState: async () => store.countSymKeysByState(),
    getCrlState: async () => store.getCrlState(),
  });
  t.same(
    asked,
    [{ certificates: 201 }, { newest: 201 }],
    'certificates and keys are read newest first, one more than listed',
  );
  t.equal(rows.keys.length, 200);
  t.equal(rows.keys.at(-1)?.serial, (250).toString(16).padStart(32, '0'), 'the newest last');
  t.equal(rows.truncated, true);
  t.match(rows.counts, { keysActive: 210, keysRevoked: 30, keysExpired: 10 }, 'counted over all keys');
  t.equal(rows.certs.length, 200);
  t.same(
    rows.certs[0],
    { serial: '65', name: 'c100', role: 'client', status: 'active' },
    'the oldest listed',
  );
  t.same(rows.certs.at(-1), { serial: '12c', name: 'c299', role: 'client', status: 'revoked' }, 'the newest');
  t.match(rows.counts, { certsActive: 200, certsRevoked: 100 }, 'counted over all certificates');
});
