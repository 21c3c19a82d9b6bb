// Signed one-time prekeys (docs/keys.md, flow 1): what lets Alice run an authenticated DH with Bob whether
// he is online or not (the X3DH idea: Signal's "one-time prekeys", signal.org/docs/specifications/x3dh
// section 2.5). Bob's client uploads a stock of fresh X25519 public keys, each signed with his RSA
// identity key; the KDC hands one to Alice and deletes it (atomically consumed); Alice checks the
// signature against Bob's certificate, so a KDC or relay that substitutes its own key is caught.
//
// Signed bytes: "kds v1 prekey" || 0x00 || len-prefixed(name, cert serial, prekey id, public key).
// The certificate serial is bound in: a prekey signed under a revoked or superseded certificate no
// longer verifies against the peer's current one, so it is never used.
//
// Last-resort prekey (Signal's last-resort prekey, signal.org/docs/specifications/pqxdh; X3DH too
// proceeds without a one-time prekey when the server has none left): one more signed X25519 key per
// client, handed out only when the one-time stock is empty and NOT deleted on use, so that a requester
// who drains the stock cannot stop an end-to-end exchange from starting. It is signed under its own
// label ("kds v1 last-resort prekey"): the flag `lastResort` a sender is shown is the receiver's own
// statement (a KDC cannot pass a one-time prekey off as a last-resort one or the other way round), and
// the sender knows its exchange had no one-time forward secrecy (docs/keys.md "Last-resort prekey").
import { AuthError } from '../errors.js';
import { signPss, verifyPss, type PrivateKeyInput, type PublicKeyInput } from '../crypto/rsa.js';
import { generateDhKeyPair, X25519_KEY_BYTES } from '../crypto/dh.js';
import { randomBytes } from '../crypto/random.js';
import { encodeFields, text, bytes } from './transcript.js';
import { newPrekeyId } from './serial.js';

const PREKEY_LABEL = 'kds v1 prekey';
const LAST_RESORT_PREKEY_LABEL = 'kds v1 last-resort prekey';
/** How many one-time prekeys a client keeps at the KDC. */
export const PREKEY_STOCK = 10;

/**
 * The one-time prekeys a client may keep at the KDC (its last-resort one apart): the most one upload
 * may carry and the most a status reply may ask for. A bound on the reply too: a client generates,
 * signs and stores as many as `wanted` says, so a KDC (or relay) that asked for 2^32 made it throw.
 */
export const MAX_PREKEY_STOCK = 100;
/**
 * A reservation that takes the owner's one-time stock below this (to PREKEY_LOW_WATER - 1), or to 0, or
 * that hands out the last-resort prekey makes the KDC tell the owner's live sessions
 * (`key.prekeys.low`), which top the stock up at once.
 */
export const PREKEY_LOW_WATER = 5;
/**
 * A client replaces its last-resort prekey when the one the KDC holds is older than this (by the
 * client's record of when it made it), at a session start; a renewal replaces it too (new certificate).
 * It bounds how long one private key can open exchanges that used it (docs/keys.md).
 */
export const LAST_RESORT_PREKEY_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
/**
 * Prekey housekeeping (docs/keys.md): a client deletes the private half of a prekey the KDC no longer
 * holds only if it saved that private at least this long before it asked. The private is saved BEFORE
 * its upload is sent, so a status reply computed while an upload is still in flight (this process or
 * another one of the same client, e.g. `listen` and `send-key` side by side) does not list it yet; an
 * upload still uncommitted 10 minutes after its private was saved has failed (the request timeout is
 * 30 s), and its prekey can never be handed out.
 */
export const PREKEY_UPLOAD_GRACE_MS = 10 * 60 * 1000;

export interface PrekeyOwner {
  name: string;
  certSerial: string;
}

/** The public, signed part of a prekey: what the KDC stores and gives out. */
export interface SignedPrekey {
  id: string;
  publicKey: Buffer;
  signature: Buffer;
  /** The owner's last-resort prekey (signed under LAST_RESORT_PREKEY_LABEL), not a one-time one. */
  lastResort?: boolean;
}

/** A freshly made prekey with its private half (kept only in the owner's encrypted key store). */
export interface GeneratedPrekey extends SignedPrekey {
  /** The raw 32-byte X25519 private scalar (RFC 7748 section 5), for generateDhKeyPair('x25519', it). */
  privateKey: Buffer;
}

export function prekeySignedData(
  owner: PrekeyOwner,
  id: string,
  publicKey: Uint8Array,
  lastResort = false,
): Buffer {
  return encodeFields(lastResort ? LAST_RESORT_PREKEY_LABEL : PREKEY_LABEL, [
    text(owner.name),
    text(owner.certSerial),
    text(id),
    bytes('prekey public key', publicKey, X25519_KEY_BYTES),
  ]);
}

export async function generatePrekey(
  owner: PrekeyOwner,
  identityKey: PrivateKeyInput,
  opts: { lastResort?: boolean } = {},
): Promise<GeneratedPrekey> {
  const privateKey = randomBytes(X25519_KEY_BYTES);
  const pair = generateDhKeyPair('x25519', privateKey);
  const id = newPrekeyId();
  const lastResort = opts.lastResort === true;
  const signature = await signPss(prekeySignedData(owner, id, pair.publicKey, lastResort), identityKey);
  return { id, publicKey: pair.publicKey, signature, privateKey, ...(lastResort ? { lastResort } : {}) };
}

/**
 * Throws AuthError `bad_signature` (fixed message) unless the owner's identity key signed this prekey as
 * what it claims to be (one-time, or last-resort when `prekey.lastResort`).
 */
export function verifyPrekey(owner: PrekeyOwner, prekey: SignedPrekey, ownerPublicKey: PublicKeyInput): void {
  const data = prekeySignedData(owner, prekey.id, prekey.publicKey, prekey.lastResort === true);
  if (!verifyPss(data, prekey.signature, ownerPublicKey)) {
    throw new AuthError('bad_signature', 'signature verification failed');
  }
}
