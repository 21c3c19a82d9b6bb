// Migration: the audit log becomes a hash chain (shared/audit/chain.ts) with signed heads. Kept in a
// file of its own so that it can be renumbered at merge without touching the other migrations.
//
// Rows written before it are chained in id order here (their content is what it is; from now on it
// cannot change unnoticed). The append-only triggers are dropped for that one backfill and recreated
// in the same transaction.
import type Database from 'better-sqlite3';
import { auditEntryHash, GENESIS_HASH } from '../../../shared/audit/chain.js';

export const AUDIT_CHAIN_MIGRATION_NAME = 'hash-chained audit log, signed audit heads';

export function migrateAuditChain(db: Database.Database): void {
  db.exec(`
    ALTER TABLE audit_log ADD COLUMN prev_hash TEXT CHECK (prev_hash IS NULL OR length(prev_hash) = 64);
    ALTER TABLE audit_log ADD COLUMN hash TEXT CHECK (hash IS NULL OR length(hash) = 64);
    -- The chain's head as the KDC signed it with its certificate key (RSA-PSS over
    -- shared/audit/chain.ts auditHeadSignedData): what a rewrite of the whole chain cannot forge.
    CREATE TABLE audit_heads (
      id          INTEGER PRIMARY KEY AUTOINCREMENT,
      entry_id    INTEGER NOT NULL,
      hash        TEXT    NOT NULL CHECK (length(hash) = 64),
      signed_at   INTEGER NOT NULL,
      cert_serial TEXT    NOT NULL,
      signature   BLOB    NOT NULL
    );
    CREATE TRIGGER audit_heads_no_update BEFORE UPDATE ON audit_heads
      BEGIN SELECT RAISE(ABORT, 'audit heads are append-only'); END;
    CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads
      BEGIN SELECT RAISE(ABORT, 'audit heads are append-only'); END;
    DROP TRIGGER audit_log_no_update;
  `);
  const rows = db
    .prepare('SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id')
    .all() as {
    id: number;
    at: number;
    actor: string;
    action: string;
    subject: string | null;
    detail: string;
  }[];
  const update = db.prepare('UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?');
  let prev = GENESIS_HASH;
  for (const row of rows) {
    const hash = auditEntryHash(prev, { ...row, detail: JSON.parse(row.detail) as Record<string, unknown> });
    update.run(prev, hash, row.id);
    prev = hash;
  }
  db.exec(`
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
      BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  `);
}
