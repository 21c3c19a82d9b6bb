// Identifiers of the symmetric-key service (docs/keys.md): key serials and prekey ids.
//
// Key serials are 16 random bytes written as 32 lowercase hex digits (docs/architecture.md
// "Conventions"): unguessable, so a serial alone reveals nothing and cannot be enumerated. Prekey ids
// only need to be unique per owner, so 8 random bytes suffice.
import { randomBytes } from '../crypto/random.js';
import { InputError } from '../errors.js';

const KEY_SERIAL_BYTES = 16;
const PREKEY_ID_BYTES = 8;

const KEY_SERIAL_PATTERN = /^[0-9a-f]{32}$/;
const PREKEY_ID_PATTERN = /^[0-9a-f]{16}$/;

export function newKeySerial(): string {
  return randomBytes(KEY_SERIAL_BYTES).toString('hex');
}

export function newPrekeyId(): string {
  return randomBytes(PREKEY_ID_BYTES).toString('hex');
}

export function isKeySerial(value: unknown): value is string {
  return typeof value === 'string' && KEY_SERIAL_PATTERN.test(value);
}

export function assertKeySerial(value: unknown): string {
  if (!isKeySerial(value)) {
    throw new InputError('malformed', 'expected a key serial of 32 lowercase hex digits');
  }
  return value;
}

export function isPrekeyId(value: unknown): value is string {
  return typeof value === 'string' && PREKEY_ID_PATTERN.test(value);
}
