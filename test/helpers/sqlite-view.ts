// Tests read the KDC's SQLite store directly, synchronously, to assert what it holds: the synchronous
// store under the asynchronous one the KDC uses (server/store/sqlite-async-store.ts). A read made
// between two of the KDC's awaits sees committed data only (each SQLite transaction completes without
// yielding to I/O), so the view is as good as the KDC's own.
import type { AsyncStore } from '../../server/store/async-store.js';
import type { SqliteAsyncStore } from '../../server/store/sqlite-async-store.js';
import type { SqliteStore } from '../../server/store/sqlite-store.js';

export function sqliteOf(store: AsyncStore): SqliteStore {
  const sync = (store as Partial<SqliteAsyncStore>).sync;
  if (sync === undefined) throw new Error(`this test reads a SQLite store, not ${store.engine}`);
  return sync;
}
