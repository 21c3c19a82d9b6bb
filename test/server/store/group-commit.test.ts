// server/store/group-commit.ts + the store's unsynced commit (sqlite-store.ts): a batch's promises settle
// only after a WAL sync that STARTED after the batch's COMMIT (off the event loop, one at a time); a
// failed sync rejects the batch with store_error (stage 'sync') and leaves the store read-only until it
// is reopened (fail closed); every other path keeps synchronous=FULL (SQLite's own sync in COMMIT).
import t from 'tap';
import { closeSync, openSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers/tmp.js';
import { openStore } from '../../../server/store/store.js';
import { SqliteStore } from '../../../server/store/sqlite-store.js';
import type { WalSync } from '../../../server/store/sqlite-wal-sync.js';
import { GroupCommit } from '../../../server/store/group-commit.js';
import { fsyncOnSyncThread } from '../../../server/store/wal-sync-thread.js';
import { errorFor } from '../../../shared/errors.js';

/** A WalSync that holds every sync until the test completes it, and logs what happened when. */
function heldSync(): {
  sync: WalSync;
  log: string[];
  pending: number;
  started: () => Promise<void>;
  complete: (err?: NodeJS.ErrnoException) => void;
  fds: number[];
} {
  const held: ((err: NodeJS.ErrnoException | null) => void)[] = [];
  const waiters: (() => void)[] = [];
  const h = {
    log: [] as string[],
    fds: [] as number[],
    get pending() {
      return held.length;
    },
    sync: ((fd, cb) => {
      h.fds.push(fd);
      h.log.push('sync-start');
      held.push(cb);
      for (const w of waiters.splice(0)) w();
    }) as WalSync,
    started: () => new Promise<void>((resolve) => waiters.push(resolve)),
    complete: (err?: NodeJS.ErrnoException) => {
      const cb = held.shift();
      if (cb === undefined) throw new Error('no sync in flight');
      h.log.push(err === undefined ? 'sync-done' : 'sync-failed');
      cb(err ?? null);
    },
  };
  return h;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function openWith(t: Parameters<typeof tempDir>[0], walSync: WalSync): { dir: string; store: SqliteStore } {
  const dir = tempDir(t);
  const store = SqliteStore.open(dir, { walSync });
  t.teardown(() => store.close());
  return { dir, store };
}

t.test('a batch settles only after a sync that started after its commit; one sync at a time', async (t) => {
  const h = heldSync();
  const { dir, store } = openWith(t, h.sync);
  const other = openStore(dir);
  t.teardown(() => other.close());
  const g = new GroupCommit(store);
  const settled: string[] = [];
  const levels: number[] = [];
  const track = (label: string, p: Promise<unknown>): Promise<unknown> =>
    p.then((v) => {
      settled.push(label);
      h.log.push(`resolved ${label}`);
      return v;
    });

  const a = [1, 2, 3].map((i) =>
    track(
      `a${i}`,
      g.run(() => {
        levels.push(store.synchronousLevel());
        store.setSetting(`a${i}`, i);
        h.log.push(`write a${i}`);
        return i;
      }),
    ),
  );
  await h.started();
  t.same(h.log, ['write a1', 'write a2', 'write a3', 'sync-start'], 'one commit, then one sync for it');
  t.same(levels, [1, 1, 1], 'the batch commits with synchronous=NORMAL');
  t.equal(store.synchronousLevel(), 2, 'and the connection is back to FULL right after');
  t.equal(other.getSetting('a1'), 1, 'committed (visible to another connection) before the sync');
  await turn();
  t.same(settled, [], 'nothing settles while its sync is in flight');

  // Batch B arrives while A's sync is in flight: it waits (queued, not committed) for that sync to end,
  // then commits as the next batch and gets a sync of its own.
  const b = track(
    'b',
    g.run(() => {
      store.setSetting('b', 1);
      h.log.push('write b');
    }),
  );
  await turn();
  await turn();
  t.equal(other.getSetting('b'), undefined, 'B is not committed while a sync is in flight');
  t.equal(h.pending, 1, 'one sync at a time');
  const second = h.started();
  h.complete();
  t.same(await Promise.all(a), [1, 2, 3], 'A resolves with its values once its sync completed');
  await second;
  t.equal(other.getSetting('b'), 1, 'B committed after the first sync completed');
  t.same(settled.sort(), ['a1', 'a2', 'a3'], 'B waits for its own sync');
  h.complete();
  await b;
  t.same(
    h.log,
    [
      ...['write a1', 'write a2', 'write a3', 'sync-start', 'sync-done'],
      ...['resolved a1', 'resolved a2', 'resolved a3', 'write b', 'sync-start', 'sync-done', 'resolved b'],
    ],
    'each batch resolves after the completion of a sync that started after its commit',
  );
  t.equal(statSync(`${join(dir, 'kds.sqlite')}-wal`).ino, inodeOfFd(h.fds[0]!), 'the WAL is what is synced');
});

t.test('an item that throws is rejected with its own error; the others commit', async (t) => {
  const h = heldSync();
  const { store } = openWith(t, h.sync);
  const g = new GroupCommit(store);
  const ok = g.run(() => store.setSetting('ok', true));
  const bad = g.run(() => {
    store.setSetting('bad', true);
    throw errorFor('bad_request', 'refused');
  });
  await t.rejects(bad, { code: 'bad_request' }, 'rejected at once: nothing of it was written');
  t.equal(store.getSetting('bad'), undefined, 'its savepoint rolled back');
  h.complete();
  await ok;
  t.equal(store.getSetting('ok'), true);
});

t.test('a failed sync rejects the whole batch and leaves the store read-only until reopened', async (t) => {
  const h = heldSync();
  const { dir, store } = openWith(t, h.sync);
  const g = new GroupCommit(store);
  const first = [1, 2].map((i) => g.run(() => store.setSetting(`f${i}`, i)));
  await h.started();
  // A batch submitted while the failing sync is in flight waits for it.
  const second = g.run(() => store.setSetting('s', 1));
  await turn();
  await turn();
  h.complete(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
  for (const p of first) {
    await t.rejects(p, { code: 'store_error', details: { stage: 'sync', errno: 'EIO' } });
  }
  // It is refused without a commit or a sync: no later sync could prove anything (sqlite-store.ts).
  await t.rejects(second, { code: 'store_error', details: { stage: 'sync' } });
  t.equal(h.pending, 0, 'no sync was attempted after the failure');
  await t.rejects(
    g.run(() => store.setSetting('later', 1)),
    { code: 'store_error', details: { stage: 'sync' } },
    'later batches fail closed',
  );
  t.throws(() => store.transaction(() => store.setSetting('plain', 1)), { code: 'store_error' });
  t.throws(() => store.setSetting('autocommit', 1), { code: 'store_error' }, 'query_only: no write at all');
  t.equal(store.getSetting('f1'), 1, 'reads still work');
  store.close();

  // Reopened (what a KDC restart does): SQLite's recovery keeps what reached the disk; writes work again.
  const again = openStore(dir);
  t.teardown(() => again.close());
  t.equal(again.getSetting('f1'), 1, 'the rejected batch was committed: an unknown outcome, not a loss');
  t.equal(again.getSetting('s'), undefined, 'the batch refused after the failure was never committed');
  const g2 = new GroupCommit(again);
  await g2.run(() => again.setSetting('after', 1));
  t.equal(again.getSetting('after'), 1);
});

t.test('plain transactions stay FULL; transactionUnsynced does not nest', async (t) => {
  const h = heldSync();
  const { store } = openWith(t, h.sync);
  const g = new GroupCommit(store);
  t.equal(store.synchronousLevel(), 2, 'opened FULL');
  // Savepoint journals stay in memory (a batch's journal spilled to a temporary file: sqlite-store.ts).
  t.equal(store.tempStoreLevel(), 2, 'temp_store = MEMORY');
  const p = g.run(() => {
    throw errorFor('bad_request', 'refused');
  });
  await t.rejects(p, { code: 'bad_request' });
  t.equal(store.synchronousLevel(), 2, 'FULL after a batch whose items all failed');
  store.transaction(() => {
    t.equal(store.synchronousLevel(), 2, 'a plain transaction commits at FULL (SQLite syncs in COMMIT)');
    t.throws(() => store.transactionUnsynced(() => 1), { code: 'internal' }, 'cannot nest');
  });
  t.equal(h.pending, 0, 'neither plain transactions nor an all-failed batch wait for the pool sync');
});

t.test('close() with a sync in flight: syncs itself, the held callback still settles', async (t) => {
  const h = heldSync();
  const dir = tempDir(t);
  const store = SqliteStore.open(dir, { walSync: h.sync });
  const g = new GroupCommit(store);
  const p = g.run(() => store.setSetting('x', 1));
  await h.started();
  const fd = h.fds[0]!;
  store.close();
  t.ok(openFds().includes(fd), 'the descriptor the pool thread uses stays open until its callback');
  h.complete();
  await p;
  t.notOk(openFds().includes(fd) && isWal(fd), 'released after the callback');
  const again = openStore(dir);
  t.teardown(() => again.close());
  t.equal(again.getSetting('x'), 1);
});

t.test('default sync (fsync on the WAL sync thread): batches resolve and are visible', async (t) => {
  const dir = tempDir(t);
  const store = openStore(dir);
  t.teardown(() => store.close());
  const g = new GroupCommit(store);
  const values = await Promise.all(
    Array.from({ length: 20 }, (_, i) => g.run(() => (store.setSetting(`k${i}`, i), i))),
  );
  t.equal(values.length, 20);
  const other = openStore(dir);
  t.teardown(() => other.close());
  t.equal(other.getSetting('k19'), 19);
});

function openFds(): number[] {
  return readdirSync('/proc/self/fd').map(Number);
}

function isWal(fd: number): boolean {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`).endsWith('-wal');
  } catch {
    return false;
  }
}

function inodeOfFd(fd: number): number {
  return statSync(`/proc/self/fd/${fd}`).ino;
}

t.test('the WAL sync thread reports fsync errors with their code', async (t) => {
  const err = await new Promise<NodeJS.ErrnoException | null>((resolve) =>
    fsyncOnSyncThread(2 ** 30, resolve),
  );
  t.equal(err?.code, 'EBADF', 'a descriptor that is not open');
  const dir = tempDir(t);
  const fd = openSync(join(dir, 'f'), 'w');
  t.teardown(() => closeSync(fd));
  t.equal(await new Promise((resolve) => fsyncOnSyncThread(fd, resolve)), null, 'an open file syncs');
});
