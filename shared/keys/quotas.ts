// Per-peer bounds of the key service (docs/keys.md "Quotas"): what one enrolled client may make the KDC
// hold for another, so that no client can fill another's delivery queue, pile keys on it, or drain its
// one-time prekeys. The KDC enforces them (server/keys/key-quotas.ts, inside the transaction that writes);
// the client checks the one that protects its own home (client/keys/key-client.ts). Named here, in one
// place, because both sides and the documentation reason about the same numbers.

/**
 * Active keys one owner may hold with one peer (owner -> peer; the other direction counts apart). A
 * rotation (`replaces`) at the bound is allowed: the old key is superseded in the same commit.
 */
export const MAX_ACTIVE_KEYS_PER_PAIR = 128;

/**
 * Queued `key.delivered` / `key.revoked` notices one sender's actions left for one recipient. Checked
 * before a key is created, reserved or deposited (`quota_exceeded`); a revocation of an ACTIVE key is
 * never refused, so the count can pass the bound by at most the pair's active keys (2 x 128).
 */
export const MAX_QUEUED_KEY_NOTICES_PER_PAIR = 256;

/** Relayed messages one sender may have queued for one recipient (`msg.send` -> `quota_exceeded`). */
export const MAX_QUEUED_MESSAGES_PER_PAIR = 1000;

/**
 * Reservations (claimed prekeys not yet deposited, at most RESERVATION_TTL_MS old) one requester may
 * hold on one peer at a time. An honest sender deposits within a second of reserving.
 */
export const MAX_OPEN_RESERVATIONS_PER_PAIR = 4;

/**
 * Keys one client may create (key.create and key.reserve together): a token bucket of this many, refilled
 * at KEY_CREATION_PER_SECOND (`rate_limited` when empty). 128 covers the benchmark's 84 keys per pair in
 * ~15 s; one per second sustained is 3,600 keys an hour, far above a person's use and far below what
 * filled a queue with 11,000 keys.
 */
export const KEY_CREATION_BURST = 128;
export const KEY_CREATION_PER_SECOND = 1;

/**
 * What a client accepts from one sender: usable (pending or active, unexpired) keys it holds from that
 * sender. Twice the KDC's bound, so clock skew (a key the KDC already expired is still unexpired here)
 * never refuses a key an honest KDC let through; a KDC that does not enforce its bound (an older or a
 * compromised one) cannot fill the client's home beyond it.
 */
export const MAX_KEYS_ACCEPTED_PER_SENDER = 2 * MAX_ACTIVE_KEYS_PER_PAIR;

/**
 * What a client accepts from all senders together (usable keys it received). The per-sender bound is
 * by the sender's name, which a KDC that does not enforce its bounds could make up for every key; this
 * one holds whatever names it uses. 32 peers each at the KDC's full bound with this client.
 */
export const MAX_KEYS_ACCEPTED_IN_ALL = 32 * MAX_ACTIVE_KEYS_PER_PAIR;
