// Random bytes for nonces and keys: node:crypto's CSPRNG (OpenSSL RAND_bytes), nothing else.
import { randomBytes as cryptoRandomBytes } from 'node:crypto';

export function randomBytes(length: number): Buffer {
  return cryptoRandomBytes(length);
}
