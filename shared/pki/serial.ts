// Certificate serial numbers (RFC 5280 4.1.2.2): "The serial number MUST be a positive integer assigned
// by the CA to each certificate. ... Conforming CAs MUST NOT use serialNumber values longer than 20
// octets." kds writes serials as lowercase hex without colons everywhere (serialHex).
import { randomBytes } from 'node:crypto';
import { InputError } from '../errors.js';

const SERIAL_BYTES = 16;
const MAX_SERIAL_OCTETS = 20;

/**
 * A fresh serial: 16 random bytes, top bit cleared (positive, so DER needs no 0x00 prefix) and the first
 * byte non-zero, redrawn otherwise. The last rule keeps every serialHex exactly 32 hex digits AND
 * canonical: a DER INTEGER must not start with a 0x00 octet followed by a byte < 0x80 (X.690 8.3.2), so
 * a serial starting 00 would come back from the certificate without its leading zeros. Entropy stays
 * above 126 bits.
 */
export function newSerialHex(): string {
  for (;;) {
    const bytes = randomBytes(SERIAL_BYTES);
    bytes[0] = bytes[0]! & 0x7f;
    if (bytes[0] !== 0) return bytes.toString('hex');
  }
}

/**
 * The canonical serialHex of a serial given as hex: colons/spaces dropped, lowercase, leading zero
 * octets removed (the INTEGER value, not its encoding). Throws InputError `bad_request` for non-hex,
 * zero, or more than 20 octets.
 */
export function normalizeSerialHex(input: string): string {
  if (typeof input !== 'string') throw new InputError('bad_request', 'expected a serial number as hex');
  let hex = input.replace(/[:\s]/g, '').toLowerCase();
  if (hex.startsWith('0x')) hex = hex.slice(2);
  if (!/^[0-9a-f]+$/.test(hex)) {
    throw new InputError(
      'bad_request',
      `invalid serial number ${JSON.stringify(input.slice(0, 80))}: expected hex`,
    );
  }
  hex = hex.replace(/^0+/, '');
  if (hex.length === 0) throw new InputError('bad_request', 'serial number must be positive');
  if (hex.length % 2 !== 0) hex = `0${hex}`;
  if (hex.length / 2 > MAX_SERIAL_OCTETS) {
    throw new InputError('bad_request', `serial number longer than ${MAX_SERIAL_OCTETS} octets`);
  }
  return hex;
}

/** Canonical serialHex from the magnitude octets of a DER INTEGER. */
export function serialHexFromBytes(magnitude: Buffer): string {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  return magnitude.subarray(i).toString('hex');
}
