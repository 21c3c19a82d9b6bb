// Which store a command opens: `--store URL` (or the environment variable KDS_STORE) names a PostgreSQL
// database; without either, the SQLite file of the data directory (`<dataDir>/kds.sqlite`), so a lab or
// a small team needs no database server.
import { InputError } from '../../shared/errors.js';
import type { AsyncStore } from './async-store.js';
import { PgStore } from './pg-store.js';
import { openSqliteAsyncStore } from './sqlite-async-store.js';

export interface StoreLocation {
  dataDir: string;
  /** postgres://... ; undefined or '' = the data directory's SQLite file. */
  url?: string | undefined;
}

export async function openAsyncStore(where: StoreLocation): Promise<AsyncStore> {
  if (where.url === undefined || where.url === '') return openSqliteAsyncStore(where.dataDir);
  if (!/^postgres(ql)?:\/\//.test(where.url)) {
    throw new InputError('bad_request', 'the store URL must start with postgres:// (or omit it for SQLite)');
  }
  return PgStore.open(where.url);
}
