// The audit log on SQLite: a hash chain (shared/audit/chain.ts) appended inside a write transaction so
// that its tail cannot move between reading it and inserting, and the signed heads that anchor it.
import { GENESIS_HASH } from '../../shared/audit/chain.js';
import {
  auditDetailText,
  auditHeadOf,
  auditOf,
  auditRowValues,
  type AuditHeadRow,
  type AuditRow,
} from './rows.js';
import type { SqliteSql } from './sqlite-sql.js';
import type { AuditEntry, AuditHeadRecord, AuditQuery, AuditRecord, NewAuditHead } from './store.js';

export class SqliteAudit {
  readonly #sql: SqliteSql;
  /** The store's write transaction (BEGIN IMMEDIATE, refused after a failed WAL sync). */
  readonly #transaction: <T>(fn: () => T) => T;

  constructor(sql: SqliteSql, transaction: <T>(fn: () => T) => T) {
    this.#sql = sql;
    this.#transaction = transaction;
  }

  appendAudit(e: AuditEntry): number {
    const detailText = auditDetailText(e);
    // Inside a transaction already (every key operation's group commit): the tail read and the INSERT
    // are in that one transaction, which holds the write lock (BEGIN IMMEDIATE) or fails to take it at
    // the INSERT, so the chain cannot fork, and one INSERT is all or nothing: a savepoint of its own
    // would add two statements and nothing else. Outside one, BEGIN IMMEDIATE around the read and write.
    if (this.#sql.inTransaction) return this.#append(e, detailText);
    return this.#transaction(() => this.#append(e, detailText));
  }

  #append(e: AuditEntry, detailText: string): number {
    // The tail and AUTOINCREMENT's counter in one statement. The counter, not max(id) + 1: the id is
    // part of the hash and must be the one the INSERT gets, and an id once used is never given again.
    const t = this.#sql.get<{ seq: number | null; id: number | null; hash: string | null }>(
      `SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'audit_log') AS seq, tail.id AS id, tail.hash AS hash
         FROM (SELECT 1) LEFT JOIN (SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1) AS tail`,
    )!;
    const id = Math.max(t.seq ?? 0, t.id ?? 0) + 1;
    const prevHash = t.id === null ? GENESIS_HASH : (t.hash ?? GENESIS_HASH);
    return this.#sql.insert(
      'INSERT INTO audit_log (id, at, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ...auditRowValues(e, id, prevHash, detailText),
    );
  }

  auditTail(): { id: number; hash: string | null } | undefined {
    return this.#sql.get<{ id: number; hash: string | null }>(
      'SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1',
    );
  }

  listAudit(opts: AuditQuery = {}): AuditRecord[] {
    const rows = this.#sql.all<AuditRow>(
      `SELECT * FROM audit_log WHERE id > @afterId AND (@action IS NULL OR action = @action)
         AND (@since IS NULL OR at >= @since)
       ORDER BY id LIMIT @limit`,
      {
        afterId: opts.afterId ?? 0,
        action: opts.action ?? null,
        since: opts.since ?? null,
        limit: opts.limit ?? -1,
      },
    );
    return rows.map(auditOf);
  }

  appendAuditHead(head: NewAuditHead): number {
    return this.#sql.insert(
      'INSERT INTO audit_heads (entry_id, hash, signed_at, cert_serial, signature) VALUES (?, ?, ?, ?, ?)',
      head.entryId,
      head.hash,
      head.signedAt,
      head.certSerial,
      head.signature,
    );
  }

  listAuditHeads(): AuditHeadRecord[] {
    return this.#sql.all<AuditHeadRow>('SELECT * FROM audit_heads ORDER BY id').map(auditHeadOf);
  }

  lastSignedAuditEntry(): number {
    return this.#sql.get<{ n: number | null }>('SELECT max(entry_id) AS n FROM audit_heads')!.n ?? 0;
  }

  countAudit(): number {
    return this.#sql.get<{ n: number }>('SELECT count(*) AS n FROM audit_log')!.n;
  }
}
