// Settings on SQLite: small JSON values by key (the CA's and KDC's persisted configuration).
import type { SqliteSql } from './sqlite-sql.js';

export class SqliteSettings {
  readonly #sql: SqliteSql;

  constructor(sql: SqliteSql) {
    this.#sql = sql;
  }

  getSetting<T>(key: string): T | undefined {
    const row = this.#sql.get<{ value: string }>('SELECT value FROM settings WHERE key = ?', key);
    return row === undefined ? undefined : (JSON.parse(row.value) as T);
  }

  setSetting(key: string, value: unknown): void {
    this.#sql.run(
      'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      key,
      JSON.stringify(value),
    );
  }
}
