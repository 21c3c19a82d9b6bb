// Enrollment tokens (enrollment spends them, docs/protocol.md "Certificates and enrollment"): a random single-use secret
// bound to one name, with an expiry. Only SHA-256(token) is stored, so a copy of the database cannot be
// used to enroll; the token itself is shown once, to the admin who created it. A spent token remembers
// the certificate it produced, so that a retry of that same enrollment (its answer lost) gets that
// certificate back until the token's expiry (enroll-replay.ts), and never a second one.
//
// Lookup by hash: the hash of a 256-bit random token is itself unguessable, so an equality lookup in
// the store leaks nothing useful through timing (the secret is the token, never compared directly).
import { createHash, randomBytes } from 'node:crypto';
import { AuthError, InputError, PolicyError } from '../../shared/errors.js';
import { assertValidName, isReservedName } from '../../shared/pki/names.js';
import type { AsyncStore, AsyncStoreData, AsyncStoreTx } from '../store/async-store.js';
import type { AuditEntry } from '../store/store.js';

const TOKEN_BYTES = 32;
export const DEFAULT_TOKEN_TTL_MS = 15 * 60_000;
export const MAX_TOKEN_TTL_MS = 7 * 86_400_000;
/** One message for every token failure (unknown, used, expired, other name): nothing to probe. */
export const TOKEN_INVALID_MESSAGE = 'enrollment token invalid, expired or already used';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface CreatedToken {
  token: string;
  name: string;
  expiresAt: number;
}

export async function createEnrollmentToken(
  store: AsyncStore,
  opts: {
    name: string;
    ttlMs?: number;
    actor: string;
    now: number;
    /** The audit trail's HMAC of a sensitive value (shared/audit/hmac.ts): the token is never in it. */
    auditHash: (value: string) => string;
    /** Runs first inside the transaction that stores the token; throws to refuse (caller re-check). */
    beforeWrite?: (tx: AsyncStoreTx) => Promise<void>;
  },
): Promise<CreatedToken> {
  const name = assertValidName(opts.name);
  if (isReservedName(name)) throw new PolicyError('bad_name', `"${name}" is reserved and cannot be enrolled`);
  const ttl = opts.ttlMs ?? DEFAULT_TOKEN_TTL_MS;
  if (!Number.isFinite(ttl) || ttl < 1_000 || ttl > MAX_TOKEN_TTL_MS) {
    throw new InputError('bad_request', `token lifetime must be 1 s..7 days, got ${String(ttl)} ms`);
  }
  // base64url may start with '-', which a command line reads as a flag (`--token -abc...`): draw again
  // until it does not (costs 1/64 of the draws; the token keeps its full 256 bits of randomness).
  let token = randomBytes(TOKEN_BYTES).toString('base64url');
  while (token.startsWith('-')) token = randomBytes(TOKEN_BYTES).toString('base64url');
  const expiresAt = opts.now + ttl;
  await store.transaction(async (tx) => {
    await opts.beforeWrite?.(tx);
    await tx.insertEnrollmentToken({
      tokenHash: hashToken(token),
      name,
      createdAt: opts.now,
      expiresAt,
      createdBy: opts.actor,
    });
    await tx.appendAudit({
      at: opts.now,
      actor: opts.actor,
      action: 'token.create',
      subject: name,
      detail: { expiresAt, tokenHmac: opts.auditHash(token) },
    });
  });
  return { token, name, expiresAt };
}

/** What a presented token allows: a first enrollment, or the replay of the one that spent it. */
export type TokenLookup =
  | { kind: 'usable'; name: string }
  | {
      kind: 'spent';
      name: string;
      tokenId: number;
      /** The certificate issued when it was spent (server/ca/enroll-replay.ts). */
      serialHex: string;
    };

/**
 * What a token allows right now, WITHOUT consuming it: `usable` (known, unused, unexpired), `spent` (known,
 * unexpired, and spent by an enrollment whose certificate is recorded: only a replay of that same
 * enrollment may follow, server/ca/enroll-replay.ts), otherwise the one fixed `token_invalid` error.
 * Enrollment calls this before it reads anything else of the request (not even the CSR), so that an
 * anonymous peer without a valid token learns nothing (not whether a name is enrolled, not what the CSR
 * policy says) and costs one hash and one indexed lookup. The atomic consume below still decides races.
 * A spent token is answerable only within its original lifetime (expires_at): the window the operator
 * granted for this enrollment, no longer.
 */
export async function lookupEnrollmentToken(
  store: Pick<AsyncStoreData, 'getEnrollmentToken'>,
  opts: { token: string; now: number },
): Promise<TokenLookup> {
  if (typeof opts.token !== 'string' || opts.token.length === 0 || opts.token.length > 256) {
    throw new AuthError('token_invalid', TOKEN_INVALID_MESSAGE);
  }
  const row = await store.getEnrollmentToken(hashToken(opts.token));
  if (row === undefined || row.expiresAt <= opts.now) {
    throw new AuthError('token_invalid', TOKEN_INVALID_MESSAGE);
  }
  if (row.usedAt === null) return { kind: 'usable', name: row.name };
  // Spent before the store remembered the certificate (schema 6): nothing to give back.
  if (row.certSerial === null) throw new AuthError('token_invalid', TOKEN_INVALID_MESSAGE);
  return { kind: 'spent', name: row.name, tokenId: row.id, serialHex: row.certSerial };
}

/**
 * Consume a token for `name` exactly once; AuthError `token_invalid` (fixed message) otherwise. Runs in
 * the caller's transaction (`tx`), and returns the consume's audit entry, which the caller MUST append
 * in that transaction (issuance hands it to insertIssuedCertificate: the certificate and both entries in
 * one statement on PostgreSQL), so the consume and its entry commit together; a throw here rolls back
 * with what the caller wrote (issuance runs it inside its own savepoint of the group commit, and never
 * goes on after a throw). No savepoint of its own: on PostgreSQL that was two more round trips under
 * the write lock per enrollment (bench/cluster.ts).
 */
export async function consumeEnrollmentToken(
  tx: AsyncStoreTx,
  opts: {
    token: string;
    name: string;
    actor: string;
    now: number;
    /** The certificate being issued for it, remembered for a replay (server/ca/enroll-replay.ts). */
    serialHex: string;
    auditHash: (value: string) => string;
  },
): Promise<AuditEntry> {
  if (typeof opts.token !== 'string' || opts.token.length === 0 || opts.token.length > 256) {
    throw new AuthError('token_invalid', TOKEN_INVALID_MESSAGE);
  }
  const row = await tx.consumeEnrollmentToken(hashToken(opts.token), opts.name, opts.now, opts.serialHex);
  if (row === undefined) throw new AuthError('token_invalid', TOKEN_INVALID_MESSAGE);
  return {
    at: opts.now,
    actor: opts.actor,
    action: 'token.consume',
    subject: opts.name,
    detail: { tokenId: row.id, tokenHmac: opts.auditHash(opts.token) },
  };
}
