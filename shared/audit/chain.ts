// The audit trail's hash chain and signed heads (docs/operations.md "Audit trail"). Pure: hashing and
// the verification walk; the store writes the rows, the KDC signs the heads, the CLI reads both.
//
// Each entry commits to the previous entry's hash and to its own content, its id included:
//   hash_n = SHA-256("kds audit entry v1" || 0x00 || prev_hash_n || JSON([id, at, actor, action, subject, detail]))
// with prev_hash_1 = 32 zero bytes. Editing an entry breaks its own hash; recomputing that hash breaks
// the next entry's link; deleting an entry leaves a gap in the ids (AUTOINCREMENT never reuses one) and
// a broken link; moving entries (ids swapped) breaks the hash of each, which still matches its content
// under its ORIGINAL id, so the walk can say where it came from. What a writer of the database could
// still do is rewrite every hash from some entry on: the KDC therefore signs the chain's head (the last
// entry's id and hash) with its certificate key, periodically and at stop, and a rewritten chain no
// longer matches a signed head (Certificate Transparency's signed tree head, for a linear log).
// Entries after the last signed head are protected by their links only: truncating them is
// undetectable until the next head is signed (say so in the verification report).
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);
const ENTRY_LABEL = Buffer.from('kds audit entry v1\0', 'latin1');
const HEAD_LABEL = Buffer.from('kds audit head v1\0', 'latin1');

export interface AuditContent {
  id: number;
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  detail: Record<string, unknown>;
}

export interface ChainedEntry extends AuditContent {
  /** Hex; null for a row written before the chain existed and never backfilled (a bad row). */
  prevHash: string | null;
  hash: string | null;
}

export interface AuditHeadRecord {
  id: number;
  /** The last entry the head covers. */
  entryId: number;
  hash: string;
  signedAt: number;
  /** Serial of the KDC certificate whose key signed it. */
  certSerial: string;
  signature: Buffer;
}

/** hash_n from prev_hash_n and the entry's content (hex in, hex out). */
export function auditEntryHash(prevHash: string, entry: AuditContent): string {
  return createHash('sha256')
    .update(ENTRY_LABEL)
    .update(Buffer.from(prevHash, 'hex'))
    .update(
      JSON.stringify([entry.id, entry.at, entry.actor, entry.action, entry.subject ?? null, entry.detail]),
      'utf8',
    )
    .digest('hex');
}

/** The bytes a head signature covers: label, entry id (uint64 BE), head hash, signing time (uint64 BE). */
export function auditHeadSignedData(head: { entryId: number; hash: string; signedAt: number }): Buffer {
  const numbers = Buffer.alloc(16);
  numbers.writeBigUInt64BE(BigInt(head.entryId), 0);
  numbers.writeBigUInt64BE(BigInt(head.signedAt), 8);
  return Buffer.concat([
    HEAD_LABEL,
    numbers.subarray(0, 8),
    Buffer.from(head.hash, 'hex'),
    numbers.subarray(8),
  ]);
}

export type AuditProblem =
  | 'edited' // the content no longer matches its hash (or its hash was recomputed: the next link broke)
  | 'deleted' // ids missing before this entry
  | 'moved' // the content and hash of another id sit at this id (rows reordered or swapped)
  | 'unlinked' // the entry does not commit to the hash of the entry before it
  | 'unchained' // no hash at all
  | 'head_mismatch' // a signed head names a hash this entry does not have: the chain was rewritten up to here
  | 'head_missing_entry' // a signed head covers an entry the log no longer has (truncated)
  | 'bad_head_signature' // a head's signature does not verify with the KDC certificate it names
  | 'anchor_missing_entry' // an anchor kept outside the store names an entry the log no longer has
  | 'anchor_mismatch'; // an anchor kept outside the store names a hash this entry does not have

/**
 * A head kept OUTSIDE the store (the log's `audit.signed` event, a report of an earlier verification):
 * entry id and its hash, or at least the first 16 hex digits of it. The heads in the store prove
 * nothing to someone who can write the store, who can delete them with the entries they cover; an
 * anchor the operator kept elsewhere still does.
 */
export interface AuditAnchor {
  entryId: number;
  /** Lowercase hex: the whole hash (64) or a prefix of it (16 and more). */
  hash: string;
}

/** Fewest hex digits of an anchor's hash: 64 bits, what the text log prints. */
export const MIN_ANCHOR_HEX = 16;

export interface AuditFinding {
  /** The first bad entry (for head problems: the entry the head names). */
  entryId: number;
  problem: AuditProblem;
  detail: string;
}

export interface AuditVerification {
  ok: boolean;
  entries: number;
  firstEntry: number | undefined;
  lastEntry: number | undefined;
  /** Valid signed heads checked, and the entry the last one covers (0: none). */
  heads: number;
  signedThrough: number;
  /** Entries after the last signed head (protected by their links only). */
  unsigned: number;
  /** Anchors (kept outside the store) checked. */
  anchors: number;
  /** The last valid signed head: what to keep outside the store as the next anchor. */
  lastHead?: AuditAnchor;
  finding?: AuditFinding;
}

/**
 * Walk the entries (ascending id, all of them) and the heads; stop at the first problem. A head is
 * checked by `verifyHead` (signature and certificate) and against the entry it names.
 */
export function verifyAuditChain(
  entries: readonly ChainedEntry[],
  heads: readonly AuditHeadRecord[],
  verifyHead: (head: AuditHeadRecord) => boolean,
  anchors: readonly AuditAnchor[] = [],
): AuditVerification {
  const base = {
    entries: entries.length,
    firstEntry: entries[0]?.id,
    lastEntry: entries[entries.length - 1]?.id,
  };
  const fail = (finding: AuditFinding): AuditVerification => ({
    ok: false,
    ...base,
    heads: 0,
    signedThrough: 0,
    unsigned: 0,
    anchors: 0,
    finding,
  });
  const byId = new Map<number, ChainedEntry>();
  let prev: ChainedEntry | undefined;
  for (const entry of entries) {
    byId.set(entry.id, entry);
    const expectedId = prev === undefined ? 1 : prev.id + 1;
    if (entry.hash === null || entry.prevHash === null) {
      return fail({ entryId: entry.id, problem: 'unchained', detail: `entry ${entry.id} has no hash` });
    }
    const computed = auditEntryHash(entry.prevHash, entry);
    if (computed !== entry.hash) {
      const origin = originalId(entry, entries);
      if (origin !== undefined) {
        return fail({
          entryId: entry.id,
          problem: 'moved',
          detail: `entry ${entry.id} holds the content and hash of entry ${origin} (rows reordered)`,
        });
      }
      return fail({
        entryId: entry.id,
        problem: 'edited',
        detail: `entry ${entry.id} does not match its hash: its content was changed`,
      });
    }
    if (entry.id > expectedId) {
      const missing =
        entry.id - expectedId === 1 ? `entry ${expectedId} is` : `entries ${expectedId}-${entry.id - 1} are`;
      return fail({
        entryId: expectedId,
        problem: 'deleted',
        detail: `${missing} missing before entry ${entry.id} (deleted)`,
      });
    }
    const prevHash = prev?.hash ?? GENESIS_HASH;
    if (entry.prevHash !== prevHash) {
      // The entry before was rewritten with a recomputed hash (it no longer has the hash this entry
      // committed to), or this one was forged onto the chain.
      const culprit = prev?.id ?? entry.id;
      return fail({
        entryId: culprit,
        problem: prev === undefined ? 'unlinked' : 'edited',
        detail:
          prev === undefined
            ? `entry ${entry.id} does not start the chain`
            : `entry ${prev.id} was rewritten: entry ${entry.id} committed to a different hash for it`,
      });
    }
    prev = entry;
  }
  let signedThrough = 0;
  let checked = 0;
  let lastHead: AuditAnchor | undefined;
  for (const head of [...heads].sort((a, b) => a.entryId - b.entryId || a.id - b.id)) {
    if (!verifyHead(head)) {
      return fail({
        entryId: head.entryId,
        problem: 'bad_head_signature',
        detail: `the head signed at ${new Date(head.signedAt).toISOString()} (entry ${head.entryId}) has an invalid signature`,
      });
    }
    const entry = byId.get(head.entryId);
    if (entry === undefined) {
      return fail({
        entryId: head.entryId,
        problem: 'head_missing_entry',
        detail: `a signed head covers entry ${head.entryId}, which the log no longer has (truncated)`,
      });
    }
    if (entry.hash !== head.hash) {
      return fail({
        entryId: head.entryId,
        problem: 'head_mismatch',
        detail: `entry ${head.entryId} does not have the hash the KDC signed for it: the chain was rewritten at or before it`,
      });
    }
    checked += 1;
    if (head.entryId >= signedThrough) lastHead = { entryId: head.entryId, hash: head.hash };
    signedThrough = Math.max(signedThrough, head.entryId);
  }
  for (const anchor of anchors) {
    const entry = byId.get(anchor.entryId);
    if (entry === undefined) {
      return fail({
        entryId: anchor.entryId,
        problem: 'anchor_missing_entry',
        detail: `the anchor kept outside the store names entry ${anchor.entryId}, which the log no longer has (truncated)`,
      });
    }
    if (entry.hash === null || !entry.hash.startsWith(anchor.hash.toLowerCase())) {
      return fail({
        entryId: anchor.entryId,
        problem: 'anchor_mismatch',
        detail: `entry ${anchor.entryId} does not have the hash of the anchor kept outside the store: the chain was rewritten at or before it`,
      });
    }
  }
  const unsigned = entries.filter((e) => e.id > signedThrough).length;
  return {
    ok: true,
    ...base,
    heads: checked,
    signedThrough,
    unsigned,
    anchors: anchors.length,
    ...(lastHead === undefined ? {} : { lastHead }),
  };
}

/** The id under which this entry's stored hash is correct, when it is another entry's position. */
function originalId(entry: ChainedEntry, entries: readonly ChainedEntry[]): number | undefined {
  if (entry.prevHash === null || entry.hash === null) return undefined;
  for (const other of entries) {
    if (other.id === entry.id) continue;
    if (auditEntryHash(entry.prevHash, { ...entry, id: other.id }) === entry.hash) return other.id;
  }
  return undefined;
}
