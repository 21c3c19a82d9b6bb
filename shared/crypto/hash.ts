// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) over a list of byte strings, via node:crypto.
// Parts are fed in order with no separators: callers that need framing encode it themselves.
import { createHash, createHmac } from 'node:crypto';

export function sha256(...parts: readonly Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return h.digest();
}

export function hmacSha256(key: Uint8Array, ...parts: readonly Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const part of parts) h.update(part);
  return h.digest();
}
