// Identity names of kds principals (clients, the KDC, the admin): the one syntax every certificate CN,
// SAN dNSName and wire `name` field must match (docs/architecture.md, "Names").
import { PolicyError } from '../errors.js';

/**
 * Lowercase ASCII letters, digits, '.', '_' and '-', starting with a letter or digit, 1..64 characters
 * (64 = ub-common-name, RFC 5280 Appendix A). Deliberately narrow: no case folding, no Unicode, no
 * spaces, so a name compares equal byte for byte everywhere it appears.
 */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** NAME_PATTERN in words, for people (error messages never show the regular expression). */
export const NAME_RULE =
  "a name is 1 to 64 characters: lowercase letters a-z, digits, '.', '_' or '-', starting with a letter or digit";

/** A DNS host name (RFC 1123 labels, 253 characters at most), for --host and certificate dNSNames. */
export const HOSTNAME_PATTERN =
  /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** Names the system itself uses; clients cannot enroll them (the enrollment path checks this). */
export const RESERVED_NAMES: readonly string[] = ['admin', 'kdc'];

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_PATTERN.test(name);
}

/** Throws PolicyError `bad_name` unless `name` matches NAME_PATTERN; returns it typed as string. */
export function assertValidName(name: unknown, title = 'name'): string {
  if (!isValidName(name)) {
    // The value is echoed (it is not secret) but clipped, so a megabyte of junk stays out of logs.
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : typeof name;
    throw new PolicyError('bad_name', `invalid ${title} ${shown}: ${NAME_RULE}`);
  }
  return name;
}

/** Reserved names are valid syntax but belong to the system (`admin`, `kdc`). */
export function isReservedName(name: string): boolean {
  return RESERVED_NAMES.includes(name);
}
