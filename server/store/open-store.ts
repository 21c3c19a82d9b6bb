// Which store a command opens: `--store URL` (or the environment variable KDS_STORE) names a PostgreSQL
// database; without either, the SQLite file of the data directory (`<dataDir>/kds.sqlite`), so a lab or
// a small team needs no database server.
import { InputError } from '../../shared/errors.js';
import type { AsyncStore } from './async-store.js';
import { openSqliteAsyncStore } from './sqlite-async-store.js';

export interface StoreLocation {
  dataDir: string;
  /** postgres://... ; undefined or '' = the data directory's SQLite file. */
  url?: string | undefined;
  /** Only reads: open read-only, migrate nothing, refuse a schema other than this kds's (migrations.ts). */
  readOnly?: boolean;
}

export async function openAsyncStore(where: StoreLocation): Promise<AsyncStore> {
  const readOnly = where.readOnly === true;
  if (where.url === undefined || where.url === '') return openSqliteAsyncStore(where.dataDir, { readOnly });
  if (!/^postgres(ql)?:\/\//.test(where.url)) {
    throw new InputError('bad_request', 'the store URL must start with postgres:// (or omit it for SQLite)');
  }
  // Imported only here: pg and the PostgreSQL store are ~45 ms of CPU to load, which a KDC on its
  // SQLite file (the default) never needs (test/cli/lazy-load.test.ts).
  const { PgStore } = await import('./pg-store.js');
  return PgStore.open(where.url, { readOnly });
}
