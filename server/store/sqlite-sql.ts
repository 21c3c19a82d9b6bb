// The SQLite store's statement layer: one prepared statement per SQL text per connection, driver errors
// mapped to store_error. Every table module (sqlite-certificates.ts, sqlite-keys.ts, ...) runs its SQL
// through the one instance its SqliteStore owns, so they share the connection and the statement cache.
import Database from 'better-sqlite3';
import { EnvironmentError, KdsError } from '../../shared/errors.js';

export class SqliteSql {
  readonly #db: Database.Database;
  readonly #stmts = new Map<string, Database.Statement>();

  constructor(db: Database.Database) {
    this.#db = db;
  }

  /** Forgets the prepared statements (the connection is closing). */
  clear(): void {
    this.#stmts.clear();
  }

  /**
   * fn in better-sqlite3's db.transaction(): its own transaction, or a savepoint inside the one already
   * open, so a multi-row write is all or nothing either way.
   */
  atomic<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  /** Inside an open transaction (or savepoint) of this connection. */
  get inTransaction(): boolean {
    return this.#db.inTransaction;
  }

  statement(sql: string): Database.Statement {
    let s = this.#stmts.get(sql);
    if (s === undefined) {
      s = this.#db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  run(sql: string, ...params: unknown[]): number {
    try {
      return this.statement(sql).run(...params).changes;
    } catch (err) {
      throw storeError(err, 'store write failed');
    }
  }

  insert(sql: string, ...params: unknown[]): number {
    try {
      return Number(this.statement(sql).run(...params).lastInsertRowid);
    } catch (err) {
      throw storeError(err, 'store write failed');
    }
  }

  get<T>(sql: string, ...params: unknown[]): T | undefined {
    try {
      return this.statement(sql).get(...params) as T | undefined;
    } catch (err) {
      throw storeError(err, 'store read failed');
    }
  }

  all<T>(sql: string, ...params: unknown[]): T[] {
    try {
      return this.statement(sql).all(...params) as T[];
    } catch (err) {
      throw storeError(err, 'store read failed');
    }
  }
}

/** The same bound value for each repeated anonymous parameter (better-sqlite3 refuses ?NNN reuse). */
export function repeat<T>(value: T, times: number): T[] {
  return Array.from({ length: times }, () => value);
}

export function isConstraint(err: unknown, column: string): boolean {
  return (
    err instanceof Database.SqliteError &&
    err.code.startsWith('SQLITE_CONSTRAINT') &&
    err.message.includes(column)
  );
}

/** SQLite's messages name tables and constraints, never values: safe to surface. */
export function storeError(err: unknown, what: string): KdsError {
  if (err instanceof KdsError) return err;
  const detail = err instanceof Database.SqliteError ? `${err.code}: ${err.message}` : String(err);
  return new EnvironmentError('store_error', `${what} (${detail})`, undefined, { cause: err });
}
