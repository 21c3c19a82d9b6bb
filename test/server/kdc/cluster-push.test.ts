// server/kdc/cluster-push.ts, the wiring: on PostgreSQL a node listens on the revocation and delivery
// channels; a revocation notification (and a gap) syncs revocations, at most one sync at a time with
// one more for whatever arrived meanwhile; a delivery notification goes to the key service; a gap on
// the delivery channel pushes the backlog of the identities connected here; the loss of the listening
// connection and its return are one log line each. On SQLite nothing listens.
// The real store and processes: test/e2e/cluster.test.ts.
import t from 'tap';
import { listenAcrossNodes, type ClusterPushDeps } from '../../../server/kdc/cluster-push.js';
import type { StoreListener } from '../../../server/store/async-store.js';
import { SessionTable } from '../../../server/kdc/session-table.js';
import type { SessionHandle } from '../../../server/kdc/dispatch.js';

function fakes(engine: 'sqlite' | 'postgres') {
  const listeners = new Map<string, StoreListener>();
  const unlistened: string[] = [];
  let syncs = 0;
  let release: (() => void) | undefined;
  const announced: string[] = [];
  const backlogs: string[][] = [];
  const logged: string[] = [];
  const sessions = new SessionTable();
  for (const name of ['bob', 'bob', 'carol']) {
    sessions.add({ identity: { name, serialHex: `${name}-${Math.random()}` } } as unknown as SessionHandle);
  }
  const deps = {
    store: {
      engine,
      listen: (channel: string, listener: StoreListener) => {
        listeners.set(channel, listener);
        return Promise.resolve(() => {
          unlistened.push(channel);
          return Promise.resolve();
        });
      },
    },
    ca: {
      syncRevocations: () => {
        syncs += 1;
        return new Promise<number>((resolve) => (release = () => resolve(0)));
      },
    },
    keys: {
      pushAnnounced: (payload: string) => {
        announced.push(payload);
        return Promise.resolve();
      },
      pushBacklogs: (names: Iterable<string>) => {
        backlogs.push([...names].sort());
        return Promise.resolve();
      },
    },
    sessions,
    log: (line: string) => logged.push(line),
  } as unknown as ClusterPushDeps;
  const finishSync = async (): Promise<void> => {
    const r = release;
    release = undefined;
    r?.();
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  return {
    deps,
    listeners,
    unlistened,
    announced,
    backlogs,
    logged,
    finishSync,
    syncs: () => syncs,
  };
}

t.test('SQLite: nothing listens', async (t) => {
  const f = fakes('sqlite');
  const stop = await listenAcrossNodes(f.deps);
  t.same([...f.listeners.keys()], []);
  await stop();
  t.same(f.unlistened, []);
});

t.test('PostgreSQL: revocations sync, coalesced; deliveries go to the key service', async (t) => {
  const f = fakes('postgres');
  const stop = await listenAcrossNodes(f.deps);
  t.same([...f.listeners.keys()].sort(), ['delivery', 'revoked']);
  const revoked = f.listeners.get('revoked')!;
  revoked.onNotify('0a');
  t.equal(f.syncs(), 1, 'a notification syncs');
  revoked.onNotify('0b');
  revoked.onGap!();
  revoked.onNotify('0c');
  t.equal(f.syncs(), 1, 'one sync at a time');
  await f.finishSync();
  t.equal(f.syncs(), 2, 'one more sync for all that arrived meanwhile');
  await f.finishSync();
  t.equal(f.syncs(), 2, 'then nothing until the next notification');
  revoked.onGap!();
  t.equal(f.syncs(), 3, 'a gap syncs');
  await f.finishSync();

  const delivery = f.listeners.get('delivery')!;
  delivery.onNotify('{"n":"x","d":1,"r":"bob"}');
  t.same(f.announced, ['{"n":"x","d":1,"r":"bob"}'], 'handed to the key service as it came');
  delivery.onGap!();
  t.same(f.backlogs, [['bob', 'carol']], 'a gap pushes the backlog of each identity connected here');

  await stop();
  t.same(f.unlistened.sort(), ['delivery', 'revoked'], 'both channels unlistened at stop');
});

t.test('PostgreSQL: the listening connection lost and back is one log line each', async (t) => {
  const f = fakes('postgres');
  await listenAcrossNodes(f.deps);
  // The store tells every listener of its one connection; the node says it once.
  for (const l of f.listeners.values()) l.onLost?.('terminating connection due to administrator command');
  t.equal(f.logged.length, 1, 'one line for the loss');
  t.match(
    f.logged[0],
    /^store notifications lost \(terminating connection due to administrator command\): .* reconnecting$/,
  );
  for (const l of f.listeners.values()) l.onGap?.();
  t.equal(f.logged.length, 2, 'one line for the return');
  t.match(f.logged[1], /^store notifications back \(lost for about \d+ s\): revocations synced/);
  t.equal(f.syncs(), 1, 'and the revocations are synced');
  t.same(f.backlogs, [['bob', 'carol']], 'and the backlogs pushed');
  await f.finishSync();
});
