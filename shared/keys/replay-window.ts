// The receiver's anti-replay memory for relayed messages (docs/keys.md "Messages: replay"): a sliding
// window over the sender's sequence numbers, the method of IPsec ESP (RFC 4303 section 3.4.3) and DTLS
// (RFC 6347 section 4.1.2.6): "Duplicates are rejected through the use of a sliding receive window."
//
// Each sender numbers its messages under one key 1, 2, 3, ... (the number is bound into the AAD, so the
// relay cannot change it). The receiver keeps, per key, the highest number it accepted and a 64-bit
// bitmap of which of the 64 numbers at and below it it accepted. A number is fresh if it is above the
// highest, or inside the window and not yet marked; anything else is refused as `replayed`: a number
// seen before, or one so far below the highest (64 or more) that the window no longer remembers it
// (refusing those is what keeps the memory constant: 16 bytes per key, whatever the traffic).
//
// Pure: the caller persists the returned state BEFORE it shows the message (a crash between the two
// must not let the same message be shown again after a restart).
import { InputError, StateError } from '../errors.js';

/** How far below the highest accepted number a late (reordered) message is still accepted. */
export const REPLAY_WINDOW_SIZE = 64;
/** Sequence numbers are 1..2^53-1 (a JS safe integer; msgpack uint on the wire, u64 in the AAD). */
export const MAX_MESSAGE_SEQ = Number.MAX_SAFE_INTEGER;

/** What the receiver stores per key (JSON-safe: the bitmap is 16 lowercase hex digits). */
export interface ReplayState {
  /** The highest sequence number accepted so far (0: none yet). */
  highest: number;
  /** Bit i set: number `highest - i` was accepted (bit 0 is `highest` itself). */
  bitmap: string;
}

export const EMPTY_REPLAY_STATE: ReplayState = { highest: 0, bitmap: '0'.repeat(16) };

const MASK = (1n << BigInt(REPLAY_WINDOW_SIZE)) - 1n;

export function assertMessageSeq(seq: unknown): number {
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    throw new InputError('malformed', 'expected a message sequence number from 1 to 2^53-1');
  }
  return seq;
}

/** True when `seq` was not accepted before and is still inside (or above) the window. */
export function isFreshSeq(state: ReplayState | undefined, seq: number): boolean {
  assertMessageSeq(seq);
  const s = state ?? EMPTY_REPLAY_STATE;
  const bits = bitmapOf(s);
  if (seq > s.highest) return true;
  const back = s.highest - seq;
  if (back >= REPLAY_WINDOW_SIZE) return false;
  return ((bits >> BigInt(back)) & 1n) === 0n;
}

/**
 * The state after accepting `seq`; throws StateError `replayed` if it is not fresh (the caller must
 * not show or act on that message).
 */
export function acceptSeq(state: ReplayState | undefined, seq: number): ReplayState {
  if (!isFreshSeq(state, seq)) {
    throw new StateError('replayed', 'message refused: replayed (its sequence number was already accepted)', {
      seq,
    });
  }
  const s = state ?? EMPTY_REPLAY_STATE;
  const bits = bitmapOf(s);
  if (seq > s.highest) {
    const shift = seq - s.highest;
    const moved = shift >= REPLAY_WINDOW_SIZE ? 0n : (bits << BigInt(shift)) & MASK;
    return { highest: seq, bitmap: hex(moved | 1n) };
  }
  return { highest: s.highest, bitmap: hex(bits | (1n << BigInt(s.highest - seq))) };
}

function bitmapOf(s: ReplayState): bigint {
  if (!Number.isSafeInteger(s.highest) || s.highest < 0 || !/^[0-9a-f]{16}$/.test(s.bitmap)) {
    // A damaged record: fail closed (nothing is accepted under it) rather than forget what was seen.
    throw new InputError('malformed', 'the replay state of this key is damaged');
  }
  return BigInt(`0x${s.bitmap}`);
}

function hex(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}
