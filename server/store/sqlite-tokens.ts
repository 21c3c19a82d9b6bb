// Enrollment tokens on SQLite: stored by hash only, consumed at most once.
import { tokenOf, type TokenRow } from './rows.js';
import type { SqliteSql } from './sqlite-sql.js';
import type { EnrollmentTokenRecord, NewEnrollmentToken } from './store.js';

export class SqliteTokens {
  readonly #sql: SqliteSql;

  constructor(sql: SqliteSql) {
    this.#sql = sql;
  }

  insertEnrollmentToken(t: NewEnrollmentToken): void {
    this.#sql.run(
      `INSERT INTO enrollment_tokens (token_hash, name, created_at, expires_at, used_at, created_by)
       VALUES (?, ?, ?, ?, NULL, ?)`,
      t.tokenHash,
      t.name,
      t.createdAt,
      t.expiresAt,
      t.createdBy,
    );
  }

  consumeEnrollmentToken(
    tokenHash: string,
    name: string,
    now: number,
    certSerial: string,
  ): EnrollmentTokenRecord | undefined {
    // One statement: SQLite executes it under the write lock, so "unused" is checked and set atomically.
    const row = this.#sql.get<TokenRow>(
      `UPDATE enrollment_tokens SET used_at = @now, cert_serial = @certSerial
       WHERE token_hash = @tokenHash AND name = @name AND used_at IS NULL AND expires_at > @now
       RETURNING *`,
      { now, tokenHash, name, certSerial },
    );
    return tokenOf(row);
  }

  getEnrollmentToken(tokenHash: string): EnrollmentTokenRecord | undefined {
    return tokenOf(
      this.#sql.get<TokenRow>('SELECT * FROM enrollment_tokens WHERE token_hash = ?', tokenHash),
    );
  }

  listEnrollmentTokens(): EnrollmentTokenRecord[] {
    return this.#sql.all<TokenRow>('SELECT * FROM enrollment_tokens ORDER BY id').map((r) => tokenOf(r)!);
  }
}
