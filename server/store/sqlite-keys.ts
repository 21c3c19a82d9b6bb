// Symmetric keys, prekeys and pending deliveries on SQLite (docs/keys.md).
import {
  deliveryOf,
  prekeyOf,
  symKeyInsertValues,
  symKeyOf,
  type DeliveryRow,
  type PrekeyRow,
  type SymKeyRow,
  deleteExpiredKeysSql,
} from './rows.js';
import { storeError, repeat, type SqliteSql } from './sqlite-sql.js';
import type {
  DeliveryRecord,
  NewDelivery,
  NewPrekey,
  NewSymKey,
  PrekeyRecord,
  SymKeyDeposit,
  SymKeyFilter,
  SymKeyRecord,
  SymKeyState,
  SymKeyStateChange,
} from './store.js';

/** The state and reservation filters of the newest-keys listings (states JSON twice, includeReserved). */
const DELETE_EXPIRED_KEYS_SQL = deleteExpiredKeysSql('?', '?');
const KEY_FILTER = `(? IS NULL OR state IN (SELECT value FROM json_each(?))) AND (? = 1 OR state <> 'reserved')`;
/** The whole table's newest keys: sym_keys_by_created read backwards, stopped at LIMIT (migration 9). */
export const NEWEST_KEYS_SQL = `SELECT rowid AS rid, * FROM sym_keys WHERE ${KEY_FILTER}
  ORDER BY created_at DESC, rowid DESC LIMIT ?`;
/**
 * One party's newest keys: as owner through sym_keys_by_owner, as peer through sym_keys_by_peer, each
 * index read backwards and stopped at LIMIT, then the two merged. Never a scan of the table.
 */
export const NEWEST_KEYS_OF_PARTY_SQL = `SELECT * FROM (
    SELECT * FROM (SELECT rowid AS rid, * FROM sym_keys WHERE owner = ? AND ${KEY_FILTER}
                   ORDER BY created_at DESC, rowid DESC LIMIT ?)
    UNION ALL
    SELECT * FROM (SELECT rowid AS rid, * FROM sym_keys WHERE peer = ? AND owner <> ? AND ${KEY_FILTER}
                   ORDER BY created_at DESC, rowid DESC LIMIT ?))
  ORDER BY created_at DESC, rid DESC LIMIT ?`;

export class SqliteKeys {
  readonly #sql: SqliteSql;

  constructor(sql: SqliteSql) {
    this.#sql = sql;
  }

  // symmetric keys, prekeys and pending deliveries (docs/keys.md)

  insertSymKey(k: NewSymKey): void {
    this.#sql.run(
      `INSERT INTO sym_keys (serial, mode, owner, owner_cert, peer, peer_cert, created_at, expires_at, state,
         replaces, digest, prekey_id, prekey_public, wrapped_key, kek_version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ...symKeyInsertValues(k),
    );
  }

  getSymKey(serial: string): SymKeyRecord | undefined {
    return symKeyOf(this.#sql.get<SymKeyRow>('SELECT * FROM sym_keys WHERE serial = ?', serial));
  }

  activateSymKey(serial: string, d: SymKeyDeposit): boolean {
    return (
      this.#sql.run(
        `UPDATE sym_keys SET state = 'active', ephemeral = ?, sender_signature = ?, ciphertext = ?, digest = ?
         WHERE serial = ? AND state = 'reserved'`,
        d.ephemeral,
        d.senderSignature,
        d.ciphertext,
        d.digest,
        serial,
      ) === 1
    );
  }

  setSymKeyState(
    serial: string,
    from: readonly SymKeyState[],
    to: SymKeyState,
    c: SymKeyStateChange,
  ): boolean {
    if (from.length === 0) return false;
    const placeholders = from.map(() => '?').join(', ');
    return (
      this.#sql.run(
        `UPDATE sym_keys SET state = ?, state_changed_at = ?, revoked_reason = ?, revoked_by = ?, superseded_by = ?
         WHERE serial = ? AND state IN (${placeholders})`,
        to,
        c.at,
        c.reason ?? null,
        c.by ?? null,
        c.supersededBy ?? null,
        serial,
        ...from,
      ) === 1
    );
  }

  markSymKeyPeerVerified(serial: string, at: number): void {
    this.#sql.run(
      'UPDATE sym_keys SET peer_verified_at = coalesce(peer_verified_at, ?) WHERE serial = ?',
      at,
      serial,
    );
  }

  listSymKeys(filter: SymKeyFilter = {}): SymKeyRecord[] {
    const states = filter.states ?? null;
    if (filter.newest !== undefined) return this.#newestSymKeys(filter, filter.newest);
    const rows = this.#sql.all<SymKeyRow>(
      `SELECT * FROM sym_keys
       WHERE (? IS NULL OR owner = ? OR peer = ?)
         AND (? IS NULL OR state IN (SELECT value FROM json_each(?)))
         AND (? = 1 OR state <> 'reserved')
       ORDER BY created_at, rowid`,
      ...repeat(filter.party ?? null, 3),
      ...repeat(states === null ? null : JSON.stringify(states), 2),
      filter.includeReserved === true ? 1 : 0,
    );
    return rows.map((r) => symKeyOf(r)!);
  }

  /**
   * The newest `limit` keys: with a party, the newest of its keys as owner (sym_keys_by_owner) and as
   * peer (sym_keys_by_peer), each index read backwards and stopped at `limit`; without one, the whole
   * table's top `limit` (SQLite keeps only `limit` rows while it sorts).
   */
  #newestSymKeys(filter: SymKeyFilter, limit: number): SymKeyRecord[] {
    const states = filter.states === undefined ? null : JSON.stringify(filter.states);
    const reserved = filter.includeReserved === true ? 1 : 0;
    const rows =
      filter.party === undefined
        ? this.#sql.all<SymKeyRow & { rid: number }>(NEWEST_KEYS_SQL, states, states, reserved, limit)
        : this.#sql.all<SymKeyRow & { rid: number }>(
            NEWEST_KEYS_OF_PARTY_SQL,
            ...[filter.party, states, states, reserved, limit],
            ...[filter.party, filter.party, states, states, reserved, limit],
            limit,
          );
    return rows.reverse().map((r) => symKeyOf(r)!);
  }

  expireSymKeys(now: number): SymKeyRecord[] {
    return this.#sql
      .all<SymKeyRow>(
        `UPDATE sym_keys SET state = 'expired', state_changed_at = ?
       WHERE state = 'active' AND expires_at <= ? RETURNING *`,
        now,
        now,
      )
      .map((r) => symKeyOf(r)!);
  }

  deleteStaleReservations(before: number): number {
    return this.#sql.run(`DELETE FROM sym_keys WHERE state = 'reserved' AND created_at < ?`, before);
  }

  deleteExpiredSymKeys(before: number, limit: number): number {
    return this.#sql.run(DELETE_EXPIRED_KEYS_SQL, before, limit);
  }

  countSymKeysByState(): Record<string, number> {
    // The covering index sym_keys_by_state (state, expires_at): no table row is read.
    const out: Record<string, number> = {};
    for (const row of this.#sql.all<{ state: string; n: number }>(
      'SELECT state, count(*) AS n FROM sym_keys INDEXED BY sym_keys_by_state GROUP BY state',
    )) {
      out[row.state] = row.n;
    }
    return out;
  }

  countPendingDeliveries(): number {
    return this.#sql.get<{ n: number }>('SELECT count(*) AS n FROM pending_deliveries')!.n;
  }

  countActiveKeys(owner: string, peer: string, now: number): number {
    // One range of the covering index sym_keys_by_pair (owner, peer, state, expires_at): at most the
    // pair's bound of entries (~5 us at 84 keys).
    return this.#sql.get<{ n: number }>(
      `SELECT count(*) AS n FROM sym_keys INDEXED BY sym_keys_by_pair
       WHERE owner = ? AND peer = ? AND state = 'active' AND expires_at > ?`,
      owner,
      peer,
      now,
    )!.n;
  }

  countOpenReservations(owner: string, peer: string, since: number): number {
    // INDEXED BY: on its own the planner takes sym_keys_by_peer (peer, created_at), i.e. every key the
    // peer received in the last five minutes, read row by row; the (owner, peer, 'reserved') range of
    // sym_keys_by_pair is a few rows (stale reservations are deleted by every reservation).
    return this.#sql.get<{ n: number }>(
      `SELECT count(*) AS n FROM sym_keys INDEXED BY sym_keys_by_pair
       WHERE owner = ? AND peer = ? AND state = 'reserved' AND created_at >= ?`,
      owner,
      peer,
      since,
    )!.n;
  }

  insertPrekeys(owner: string, certSerial: string, prekeys: readonly NewPrekey[], at: number): void {
    const insert = this.#sql.statement(
      `INSERT INTO prekeys (owner, cert_serial, prekey_id, public_key, signature, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
    );
    try {
      this.#sql.atomic(() => {
        for (const p of prekeys) insert.run(owner, certSerial, p.prekeyId, p.publicKey, p.signature, at);
      });
    } catch (err) {
      throw storeError(err, 'cannot store prekeys');
    }
  }

  countPrekeys(owner: string, certSerial: string): number {
    return this.#sql.get<{ n: number }>(
      'SELECT count(*) AS n FROM prekeys WHERE owner = ? AND cert_serial = ?',
      owner,
      certSerial,
    )!.n;
  }

  claimPrekey(owner: string, certSerial: string): PrekeyRecord | undefined {
    // One statement: the row is chosen and deleted under the write lock, so two senders can never
    // claim the same one-time prekey.
    const row = this.#sql.get<PrekeyRow>(
      `DELETE FROM prekeys WHERE id = (
         SELECT id FROM prekeys WHERE owner = ? AND cert_serial = ? ORDER BY id LIMIT 1
       ) RETURNING *`,
      owner,
      certSerial,
    );
    return row === undefined ? undefined : prekeyOf(row);
  }

  deletePrekeys(owner: string, keepCertSerial?: string): number {
    const keep = repeat(keepCertSerial ?? null, 2);
    this.#sql.run(
      'DELETE FROM last_resort_prekeys WHERE owner = ? AND (? IS NULL OR cert_serial <> ?)',
      owner,
      ...keep,
    );
    return this.#sql.run(
      'DELETE FROM prekeys WHERE owner = ? AND (? IS NULL OR cert_serial <> ?)',
      owner,
      ...keep,
    );
  }

  putLastResortPrekey(owner: string, certSerial: string, p: NewPrekey, at: number): void {
    this.#sql.run(
      `INSERT INTO last_resort_prekeys (owner, cert_serial, prekey_id, public_key, signature, created_at)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (owner) DO UPDATE SET cert_serial = excluded.cert_serial, prekey_id = excluded.prekey_id,
         public_key = excluded.public_key, signature = excluded.signature, created_at = excluded.created_at`,
      owner,
      certSerial,
      p.prekeyId,
      p.publicKey,
      p.signature,
      at,
    );
  }

  getLastResortPrekey(owner: string, certSerial: string): PrekeyRecord | undefined {
    const row = this.#sql.get<PrekeyRow>(
      'SELECT * FROM last_resort_prekeys WHERE owner = ? AND cert_serial = ?',
      owner,
      certSerial,
    );
    return row === undefined ? undefined : prekeyOf(row);
  }

  enqueueDelivery(d: NewDelivery): number {
    try {
      const info = this.#sql
        .statement(
          `INSERT INTO pending_deliveries (recipient, kind, key_serial, payload, sender, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
        )
        .run(d.recipient, d.kind, d.keySerial, d.payload ?? null, d.sender ?? null, d.createdAt);
      return Number(info.lastInsertRowid);
    } catch (err) {
      throw storeError(err, 'cannot queue a delivery');
    }
  }

  countQueuedFrom(recipient: string, sender: string, kind: 'msg' | 'key'): number {
    // pending_deliveries_by_sender (recipient, sender, kind): one index range either way.
    return this.#sql.get<{ n: number }>(
      kind === 'msg'
        ? `SELECT count(*) AS n FROM pending_deliveries WHERE recipient = ? AND sender = ? AND kind = 'msg'`
        : `SELECT count(*) AS n FROM pending_deliveries WHERE recipient = ? AND sender = ? AND kind <> 'msg'`,
      recipient,
      sender,
    )!.n;
  }

  deleteQueuedKeyNotices(recipient: string, keySerial: string): number {
    // Scans the recipient's queue (bounded by the per-pair quotas), on revocations only: an index on
    // key_serial would cost every notice queued and acknowledged two more b-tree writes instead.
    return this.#sql.run(
      `DELETE FROM pending_deliveries WHERE recipient = ? AND key_serial = ? AND kind <> 'msg'`,
      recipient,
      keySerial,
    );
  }

  deleteQueueOf(recipient: string): number {
    return this.#sql.run('DELETE FROM pending_deliveries WHERE recipient = ?', recipient);
  }

  listDeliveries(recipient: string, limit = -1, keyNoticesOnly = false): DeliveryRecord[] {
    return this.#sql
      .all<DeliveryRow>(
        keyNoticesOnly
          ? `SELECT * FROM pending_deliveries WHERE recipient = ? AND kind <> 'msg' ORDER BY id LIMIT ?`
          : 'SELECT * FROM pending_deliveries WHERE recipient = ? ORDER BY id LIMIT ?',
        recipient,
        limit,
      )
      .map(deliveryOf);
  }

  getDelivery(recipient: string, id: number): DeliveryRecord | undefined {
    const row = this.#sql.get<DeliveryRow>(
      'SELECT * FROM pending_deliveries WHERE recipient = ? AND id = ?',
      recipient,
      id,
    );
    return row === undefined ? undefined : deliveryOf(row);
  }

  deleteDeliveries(recipient: string, ids: readonly number[]): number {
    if (ids.length === 0) return 0;
    // One id is the common case (a receiver acknowledges the delivery of the key it verifies): the
    // primary key directly, no JSON text and no json_each table for it.
    if (ids.length === 1) {
      return this.#sql.run(
        'DELETE FROM pending_deliveries WHERE recipient = ? AND id = ?',
        recipient,
        ids[0],
      );
    }
    return this.#sql.run(
      'DELETE FROM pending_deliveries WHERE recipient = ? AND id IN (SELECT value FROM json_each(?))',
      recipient,
      JSON.stringify(ids),
    );
  }

  countDeliveries(recipient?: string, keyNoticesOnly = false): number {
    // Separate statements, not one with `(? IS NULL OR recipient = ?)`: that form counts the whole
    // queue's index whoever asks, and every key.sync asks for its own recipient.
    if (recipient === undefined)
      return this.#sql.get<{ n: number }>('SELECT count(*) AS n FROM pending_deliveries')!.n;
    return this.#sql.get<{ n: number }>(
      keyNoticesOnly
        ? `SELECT count(*) AS n FROM pending_deliveries WHERE recipient = ? AND kind <> 'msg'`
        : 'SELECT count(*) AS n FROM pending_deliveries WHERE recipient = ?',
      recipient,
    )!.n;
  }

  heldPrekeyIds(owner: string, certSerial: string, reservedSince: number, limit: number): string[] {
    // One compound SELECT: a prekey moving from the stock to a reservation (claimPrekey) or from a
    // reservation to a queued delivery (deposit) is seen in exactly one branch, never in none.
    return this.#sql
      .all<{ prekey_id: string }>(
        `SELECT prekey_id FROM prekeys WHERE owner = ? AND cert_serial = ?
       UNION
       SELECT prekey_id FROM sym_keys
         WHERE peer = ? AND state = 'reserved' AND created_at >= ? AND prekey_id IS NOT NULL
       UNION
       SELECT s.prekey_id FROM pending_deliveries d JOIN sym_keys s ON s.serial = d.key_serial
         WHERE d.recipient = ? AND d.kind = 'key.delivered' AND s.mode = 'e2e' AND s.prekey_id IS NOT NULL
       UNION
       SELECT prekey_id FROM last_resort_prekeys WHERE owner = ? AND cert_serial = ?
       LIMIT ?`,
        owner,
        certSerial,
        owner,
        reservedSince,
        owner,
        owner,
        certSerial,
        limit,
      )
      .map((r) => r.prekey_id);
  }
}
