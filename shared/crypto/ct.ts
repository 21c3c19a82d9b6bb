// Constant-time comparison of secrets (MACs, tokens, digests) with crypto.timingSafeEqual.
import { timingSafeEqual } from 'node:crypto';

/**
 * True when a and b hold the same bytes. The comparison time depends only on the length. A length
 * mismatch returns false without throwing (timingSafeEqual throws on it); lengths are public here:
 * every secret kds compares has a fixed, known size.
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}
