// Random bytes for nonces and keys: node:crypto's CSPRNG (OpenSSL RAND_bytes), nothing else.
import { randomBytes as cryptoRandomBytes } from 'node:crypto';

export function randomBytes(length: number): Buffer {
  return cryptoRandomBytes(length);
}

/** Output drawn from the CSPRNG at once for publicRandomBytes: 128 handshake nonces. */
const PUBLIC_POOL_BYTES = 4096;
let publicPool: Buffer = Buffer.alloc(0);
let publicOffset = 0;

/**
 * Random bytes for values that are sent in the clear (the handshake nonces), cut from a pool of
 * CSPRNG output drawn 4 KiB at a time, as Node's own randomUUID() does. Each call into the CSPRNG
 * costs a native call, the DRBG's set-up and a getpid() system call (OpenSSL's fork check), the same
 * for 32 bytes as for 4 KiB; a handshake draws one nonce. Every byte is handed out once and the pool
 * is never refilled in place (a new buffer each time), so no two values share bytes. Never for keys
 * or other secrets: those come from randomBytes (or OpenSSL's key generation) and do not wait in
 * memory before their use.
 */
export function publicRandomBytes(length: number): Buffer {
  if (length > PUBLIC_POOL_BYTES / 8) return cryptoRandomBytes(length);
  if (publicOffset + length > publicPool.length) {
    publicPool = cryptoRandomBytes(PUBLIC_POOL_BYTES);
    publicOffset = 0;
  }
  // A copy: a nonce kept by its caller does not hold the whole pool in memory.
  const out = Buffer.from(publicPool.subarray(publicOffset, publicOffset + length));
  publicOffset += length;
  return out;
}
