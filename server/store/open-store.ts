// Which store a command opens: `--store URL` (or the environment variable KDS_STORE) names a PostgreSQL
// database; without either, the SQLite file of the data directory (`<dataDir>/kds.sqlite`), so a lab or
// a small team needs no database server.
import { InputError } from '../../shared/errors.js';
import type { AsyncStore } from './async-store.js';
import { PgStore, parseStoreUrl } from './pg-store.js';
import { openSqliteAsyncStore } from './sqlite-async-store.js';

export const STORE_ENV = 'KDS_STORE';

export interface StoreLocation {
  dataDir: string;
  /** postgres://... ; undefined or '' = the data directory's SQLite file. */
  url?: string | undefined;
}

/** The store URL a command uses: its --store option, else $KDS_STORE, else none (SQLite). */
export function storeUrlFrom(
  option: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const url = option ?? env[STORE_ENV];
  return url === undefined || url === '' ? undefined : url;
}

/** Refuse a malformed store URL before anything is opened or sent (a usage error). */
export function checkStoreUrl(url: string | undefined): void {
  if (url !== undefined) parseStoreUrl(url);
}

export async function openAsyncStore(where: StoreLocation): Promise<AsyncStore> {
  if (where.url === undefined || where.url === '') return openSqliteAsyncStore(where.dataDir);
  if (!/^postgres(ql)?:\/\//.test(where.url)) {
    throw new InputError('bad_request', 'the store URL must start with postgres:// (or omit it for SQLite)');
  }
  return PgStore.open(where.url);
}
