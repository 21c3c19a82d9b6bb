// Versioned schema migrations for the sqlite store. The applied version lives in SQLite's
// `PRAGMA user_version` (a header field, so it commits or rolls back with the migration itself).
//
// HOW TO ADD A MIGRATION: append ONE object to MIGRATIONS with the next version
// number (the list must stay ordered and gapless), a short name, and its SQL. Never edit or reorder a
// migration that has shipped: databases in the field already ran it (test/server/store/migrations.test.ts
// holds a digest of each). A later migration must also hold on every schema an earlier text of a
// migration left behind: migration 3 was edited after it shipped, so stores of both shapes exist.
//
// Every pending migration runs in ONE BEGIN IMMEDIATE transaction together with the user_version bump
// (SQLite's DDL is transactional): an upgrade that fails at any step, or a crash, leaves the store
// exactly as it was, at its old version, which the old kds still opens (a transaction per step would
// leave it half-way: newer than the old kds, and not openable by the new one). Two processes opening a
// fresh store at once cannot both run it.
//
// Only the commands that write migrate (kds server start, server init, cert issue, ...): a reader opens
// the store read-only (sqlite-store.ts) and refuses a schema other than this kds's (checkSchemaVersion),
// so reading never upgrades a store under an older KDC that is still running on it.
import type Database from 'better-sqlite3';
import { EnvironmentError } from '../../shared/errors.js';
import { AUDIT_CHAIN_MIGRATION_NAME, migrateAuditChain } from './migrations/audit-chain.js';

export interface Migration {
  version: number;
  name: string;
  /** SQL executed with db.exec, or a function for migrations that need to transform data. */
  up: string | ((db: Database.Database) => void);
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'certificates, revocations, crl, enrollment tokens, audit log, settings',
    up: `
      CREATE TABLE certificates (
        id          INTEGER PRIMARY KEY,
        serial      TEXT    NOT NULL UNIQUE CHECK (length(serial) BETWEEN 1 AND 40 AND serial NOT GLOB '*[^0-9a-f]*'),
        name        TEXT    NOT NULL,
        role        TEXT    NOT NULL CHECK (role IN ('client', 'admin', 'server', 'ca')),
        not_before  INTEGER NOT NULL,
        not_after   INTEGER NOT NULL,
        pem         TEXT,
        fingerprint TEXT,
        status      TEXT    NOT NULL CHECK (status IN ('pending', 'active', 'revoked', 'superseded')),
        issued_at   INTEGER NOT NULL,
        CHECK (status = 'pending' OR (pem IS NOT NULL AND fingerprint IS NOT NULL))
      );
      -- "at most one active certificate per name", enforced by the database, not only by the caller.
      CREATE UNIQUE INDEX certificates_one_active_per_name ON certificates (name) WHERE status = 'active';
      CREATE INDEX certificates_by_name ON certificates (name, id);
      CREATE INDEX certificates_by_fingerprint ON certificates (fingerprint);

      CREATE TABLE revocations (
        id         INTEGER PRIMARY KEY,
        serial     TEXT    NOT NULL UNIQUE REFERENCES certificates (serial),
        revoked_at INTEGER NOT NULL,
        reason     TEXT    NOT NULL
      );
      CREATE TRIGGER revocations_no_update BEFORE UPDATE ON revocations
        BEGIN SELECT RAISE(ABORT, 'revocations are permanent'); END;
      CREATE TRIGGER revocations_no_delete BEFORE DELETE ON revocations
        BEGIN SELECT RAISE(ABORT, 'revocations are permanent'); END;

      -- One row: the current CRL as published.
      CREATE TABLE crl_state (
        id                 INTEGER PRIMARY KEY CHECK (id = 1),
        crl_number         INTEGER NOT NULL CHECK (crl_number >= 1),
        pem                TEXT    NOT NULL,
        this_update        INTEGER NOT NULL,
        next_update        INTEGER NOT NULL,
        last_revocation_id INTEGER NOT NULL
      );

      CREATE TABLE enrollment_tokens (
        id         INTEGER PRIMARY KEY,
        token_hash TEXT    NOT NULL UNIQUE,
        name       TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER,
        created_by TEXT    NOT NULL
      );

      CREATE TABLE audit_log (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at      INTEGER NOT NULL,
        actor   TEXT    NOT NULL,
        action  TEXT    NOT NULL,
        subject TEXT,
        detail  TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
      );
      CREATE INDEX audit_log_by_action ON audit_log (action, id);
      CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

      CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL CHECK (json_valid(value))
      );
    `,
  },
  {
    version: 2,
    name: 'symmetric keys, prekeys, pending deliveries (docs/keys.md)',
    up: `
      -- One row per distributed AES-256 key (and per e2e reservation before its deposit). Never the key
      -- in plaintext: e2e rows hold only the ciphertext the KDC cannot open; kdc rows hold the key
      -- wrapped under a versioned KEK (server/keys/kek.ts).
      CREATE TABLE sym_keys (
        serial           TEXT    PRIMARY KEY CHECK (length(serial) = 32 AND serial NOT GLOB '*[^0-9a-f]*'),
        mode             TEXT    NOT NULL CHECK (mode IN ('e2e', 'kdc')),
        owner            TEXT    NOT NULL,
        owner_cert       TEXT    NOT NULL,
        peer             TEXT    NOT NULL,
        peer_cert        TEXT    NOT NULL,
        created_at       INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,
        state            TEXT    NOT NULL CHECK (state IN ('reserved', 'active', 'revoked', 'expired', 'superseded')),
        state_changed_at INTEGER,
        revoked_reason   TEXT,
        revoked_by       TEXT,
        replaces         TEXT,
        superseded_by    TEXT,
        digest           BLOB    CHECK (digest IS NULL OR length(digest) = 32),
        prekey_id        TEXT,
        prekey_public    BLOB,
        ephemeral        BLOB,
        sender_signature BLOB,
        ciphertext       BLOB,
        wrapped_key      BLOB,
        kek_version      INTEGER,
        peer_verified_at INTEGER,
        CHECK (state = 'reserved' OR digest IS NOT NULL),
        CHECK (mode = 'e2e' OR state = 'reserved' OR (wrapped_key IS NOT NULL AND kek_version IS NOT NULL))
      );
      CREATE INDEX sym_keys_by_owner ON sym_keys (owner, created_at);
      CREATE INDEX sym_keys_by_peer ON sym_keys (peer, created_at);
      CREATE INDEX sym_keys_by_state ON sym_keys (state, expires_at);

      -- One-time X25519 prekeys uploaded by clients, signed with their identity key. Claimed (deleted)
      -- atomically by key.reserve.
      CREATE TABLE prekeys (
        id          INTEGER PRIMARY KEY,
        owner       TEXT    NOT NULL,
        cert_serial TEXT    NOT NULL,
        prekey_id   TEXT    NOT NULL,
        public_key  BLOB    NOT NULL CHECK (length(public_key) = 32),
        signature   BLOB    NOT NULL,
        created_at  INTEGER NOT NULL,
        UNIQUE (owner, prekey_id)
      );
      CREATE INDEX prekeys_by_owner ON prekeys (owner, cert_serial, id);

      -- Durable push queue: a row per notice for a recipient, deleted when the recipient acknowledges
      -- it (at-least-once delivery across disconnects and server restarts). Key notices refer to the
      -- sym_keys row (the body is rebuilt from it at delivery time, so a queued KDC-generated key is
      -- never stored outside its KEK wrapping); messages carry their ciphertext in payload.
      CREATE TABLE pending_deliveries (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient  TEXT    NOT NULL,
        kind       TEXT    NOT NULL CHECK (kind IN ('key.delivered', 'key.revoked', 'key.verified', 'msg')),
        key_serial TEXT    NOT NULL,
        payload    BLOB,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX pending_deliveries_by_recipient ON pending_deliveries (recipient, id);
    `,
  },
  {
    version: 3,
    name: 'per-peer quotas, last-resort prekeys',
    up: `
      -- Whose quota a queued notice counts against (docs/keys.md "Quotas"): the client whose request
      -- queued it (the sender of a message, the creator of a key, the party that revoked one), NULL when
      -- the KDC or the admin did (certificate cascade, admin revocation) and for rows queued before.
      ALTER TABLE pending_deliveries ADD COLUMN sender TEXT;
      -- The quotas count one index range, never the recipient's whole queue (a refused request must
      -- stay cheap however full that queue is).
      CREATE INDEX pending_deliveries_by_sender ON pending_deliveries (recipient, sender, kind);
      -- Active keys and open reservations of one (owner, peer) pair. It replaces sym_keys_by_owner,
      -- which no query used (listings by party scan; the pair's prefix serves any owner lookup).
      DROP INDEX sym_keys_by_owner;
      CREATE INDEX sym_keys_by_pair ON sym_keys (owner, peer, state, expires_at);

      -- One signed last-resort X25519 prekey per client, for its current certificate: handed out only
      -- when the one-time stock is empty, never deleted on use, replaced by the client (rotation) and
      -- dropped with the other prekeys of an older certificate.
      CREATE TABLE last_resort_prekeys (
        owner       TEXT    PRIMARY KEY,
        cert_serial TEXT    NOT NULL,
        prekey_id   TEXT    NOT NULL,
        public_key  BLOB    NOT NULL CHECK (length(public_key) = 32),
        signature   BLOB    NOT NULL,
        created_at  INTEGER NOT NULL
      );
    `,
  },
  {
    version: 4,
    name: 'certificate renewals',
    up: `
      -- A client's renewal (server/ca/renewal.ts): the new certificate is recorded at once (its serial
      -- taken, RFC 5280 4.1.2.2) with status 'pending' and its PEM, and becomes 'active' only when its
      -- holder first authenticates with it; the certificate it replaces is then 'superseded'. One row
      -- per renewal request; installed_at is set when it is installed. The renewal rate of a name is
      -- counted over (name, requested_at).
      CREATE TABLE renewals (
        serial       TEXT    PRIMARY KEY REFERENCES certificates (serial),
        replaces     TEXT    NOT NULL REFERENCES certificates (serial),
        name         TEXT    NOT NULL,
        requested_at INTEGER NOT NULL,
        installed_at INTEGER
      );
      CREATE INDEX renewals_by_replaces ON renewals (replaces);
      CREATE INDEX renewals_by_name ON renewals (name, requested_at);
    `,
  },
  { version: 5, name: AUDIT_CHAIN_MIGRATION_NAME, up: migrateAuditChain },
  {
    version: 6,
    name: 'the certificate an enrollment token produced',
    up: `
      -- The serial of the certificate issued when the token was spent (server/ca/enroll-replay.ts): a
      -- retry of that same enrollment whose answer was lost gets that certificate back instead of
      -- token_invalid. NULL while unused, and for tokens spent before this migration (their retries stay
      -- refused). No REFERENCES: the token is spent inside the issuing transaction BEFORE the certificate
      -- row is written (its audit entry rides in the certificate's INSERT, server/ca/issue.ts), which an
      -- immediate foreign key refuses, and a deferred one would fail at COMMIT, which the group commit
      -- shares between concurrent issuances (one bad row would fail them all).
      ALTER TABLE enrollment_tokens ADD COLUMN cert_serial TEXT;
    `,
  },
  {
    version: 7,
    name: 'the keys of one owner, newest first',
    up: `
      -- key.list reads a client's newest keys (as owner here, as peer through sym_keys_by_peer), each
      -- index read backwards and stopped at the listing's size. Without it the listing read every key
      -- of the KDC: a client that kept 32 listings in flight held the event loop (docs/attacks.md).
      -- IF NOT EXISTS: migration 3 as first released kept sym_keys_by_owner (the same columns); only its
      -- later text dropped it, so a store whose migration 3 ran before that edit still has it.
      CREATE INDEX IF NOT EXISTS sym_keys_by_owner ON sym_keys (owner, created_at);
    `,
  },
  {
    version: 8,
    name: 'the last signed audit entry',
    up: `
      -- The KDC signs a head of the audit chain once a minute of activity: a year is ~525,000 rows,
      -- and its start read all of them to find the last entry signed (6.9 s on the event loop).
      CREATE INDEX audit_heads_by_entry ON audit_heads (entry_id);
    `,
  },
  {
    version: 9,
    name: 'the newest keys of the KDC',
    up: `
      -- The admin's key listing and the console's state panel read the KDC's newest keys. Without an
      -- index SQLite sorted the whole table for them: 1.7 s per console refresh at 1,000,000 keys (a
      -- client creating a 1 s key every second keeps ~2.6 million through the 30 days of retention).
      -- Entries carry the rowid, so (created_at) gives the listing's order (created_at, rowid).
      CREATE INDEX sym_keys_by_created ON sym_keys (created_at);
    `,
  },
  {
    version: 10,
    name: 'certificates counted by status',
    up: `
      -- The console's state panel counts active and revoked certificates on every refresh. Without an
      -- index the count read every certificate row, PEM included: ~1 s per refresh at 50,000
      -- certificates (renewals add one row per client and renewal, and rows are never deleted).
      CREATE INDEX certificates_by_status ON certificates (status);
    `,
  },
];

/** Bring `db` up to the latest version; returns the version it was at before. */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number {
  checkMigrationList(migrations);
  const latest = migrations.length;
  const before = userVersion(db);
  checkSchemaVersion(before, latest, { migrating: true });
  if (before === latest) return before;
  db.transaction(() => {
    // Re-read inside the write lock: another process may have migrated meanwhile.
    const found = userVersion(db);
    checkSchemaVersion(found, latest, { migrating: true });
    for (const m of migrations) {
      if (m.version <= found) continue;
      if (typeof m.up === 'string') db.exec(m.up);
      else m.up(db);
    }
    db.pragma(`user_version = ${latest}`);
  }).immediate();
  return before;
}

function checkMigrationList(migrations: readonly { version: number; name: string }[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration list out of order at ${m.name}`);
  });
}

/**
 * Whether this kds may use a store at schema `found` (both engines): a newer one never (the old kds
 * does not know its tables); an older one only when `migrating` (a command that writes upgrades it
 * first). A reader refuses an older store rather than migrating it: an older KDC may still be running
 * on it, and once migrated that KDC could not start again. Nor does it read the old schema as it is:
 * this kds's queries name the columns and tables of the latest one.
 */
export function checkSchemaVersion(
  found: number,
  latest: number,
  opts: { migrating: true } | { migrating: false; location: string },
): void {
  if (found > latest) {
    throw new EnvironmentError(
      'store_error',
      `the store has schema version ${found}, newer than this kds (${latest}); upgrade kds`,
    );
  }
  if (!opts.migrating && found === 0) {
    // An empty file (an init that never ran its first transaction) or a PostgreSQL schema without tables.
    throw new EnvironmentError('ca_missing', `no kds store in ${opts.location} (run kds server init)`);
  }
  if (found < latest && !opts.migrating) {
    throw new EnvironmentError(
      'config',
      `the store has schema ${found}, this kds expects ${latest}; run \`kds server start\` (which migrates) ` +
        'after taking a backup (docs/deployment.md "Upgrading"); this command only reads and does not migrate',
      { found, expected: latest },
    );
  }
}

export function userVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}
