// The values a person types for options, checked while yargs parses them (each is an option's `coerce`),
// so a typo is a usage error (exit 2) with a sentence saying what is valid, before any file is opened
// or any connection made. The rule for every option: whatever the KDC's schema or the CA would refuse
// is refused here first, so a mistake is never reported as a protocol failure ("a message had the
// wrong shape (possible MITM)"). cli/kds.ts turns the InputError thrown here into
// `error [bad_request]: <sentence>` and exit 2.
//
// Light on purpose (it loads with an area's builder, also for --help): no crypto, no store, no network.
import { isIP } from 'node:net';
import { InputError } from '../shared/errors.js';
import { terminalSafeJson } from '../shared/text/terminal-safe.js';
import { parseServerList } from '../shared/server-urls.js';
import { parseDuration } from './duration.js';

// The rules of the values, as the KDC and the CA apply them. Written out here rather than imported:
// this module loads with every command's --help, which must load no PKI, key, protocol or server
// module (test/cli/lazy-load.test.ts); test/cli/option-values.test.ts fails if a copy drifts from its
// source (named on each line).

/** shared/pki/names.ts NAME_PATTERN, NAME_RULE, RESERVED_NAMES. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const NAME_RULE =
  "a name is 1 to 64 characters: lowercase letters a-z, digits, '.', '_' or '-', starting with a letter or digit";
export const RESERVED_NAMES: readonly string[] = ['admin', 'kdc'];
/** shared/pki/names.ts HOSTNAME_PATTERN. */
export const HOSTNAME_PATTERN =
  /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
/** shared/keys/message.ts MAX_MESSAGE_BYTES. */
export const MAX_MESSAGE_BYTES = 32 * 1024;
/** server/ca/tokens.ts MAX_TOKEN_TTL_MS. */
export const MAX_TOKEN_TTL_MS = 7 * 86_400_000;
/** shared/keys/lifetime.ts MIN_KEY_TTL_MS, MAX_KEY_TTL_MS. */
export const MIN_KEY_TTL_MS = 1000;
export const MAX_KEY_TTL_MS = 90 * 86_400_000;

const usage = (message: string): InputError => new InputError('bad_request', message);

/** What was typed, for the message: clipped, quoted, and with nothing a terminal would obey left raw. */
function shown(value: unknown): string {
  return terminalSafeJson(String(value).slice(0, 60));
}

/** A port: a whole number 1..65535 (0 too where "any free port" makes sense). */
/** server/store/pg-store.ts SCHEMA_NAME (the `?schema=` of a store URL). */
const STORE_SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * --store / KDS_STORE: a PostgreSQL URL (postgres://user@host/db, optionally ?schema=NAME), or empty for
 * the data directory's SQLite file. Checked as server/store/pg-store.ts parseStoreUrl checks it.
 */
export function storeUrlValue(v: unknown): string | undefined {
  const text = String(v ?? '');
  if (text === '') return undefined;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw usage('--store must be a URL such as postgres://kds@db/kds (or leave it out for SQLite)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw usage(`--store must start with postgres:// (got ${shown(u.protocol)}); leave it out for SQLite`);
  }
  const schema = u.searchParams.get('schema');
  if (schema !== null && !STORE_SCHEMA_PATTERN.test(schema)) {
    throw usage('--store: ?schema= must be a lower-case SQL identifier');
  }
  return text;
}

export function portValue(what: string, opts: { allowZero?: boolean } = {}): (v: unknown) => number {
  const min = opts.allowZero === true ? 0 : 1;
  return (v) => {
    const text = String(v).trim();
    const n = Number(text);
    if (!/^[0-9]+$/.test(text) || n < min || n > 65535)
      throw usage(`${what}: expected a whole number from ${min} to 65535, got ${shown(v)}`);
    return n;
  };
}

/**
 * A whole number in [min, max] (milliseconds, counts, sizes), written in decimal digits only: not
 * 0x800, 1e1 or 2.0, which Number() would take.
 */
export function integerValue(
  what: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): (v: unknown) => number {
  const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
  return (v) => {
    const text = String(v).trim();
    const n = Number(text);
    if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max)
      throw usage(`${what}: expected a whole number ${range} in decimal digits, got ${shown(v)}`);
    return n;
  };
}

/** A file or directory path: anything but empty (an empty path names no file, and fails late). */
export function pathValue(what: string): (v: unknown) => unknown {
  return (v) => {
    if (v !== undefined && String(v).trim() === '') throw usage(`${what}: expected a path, got ""`);
    return v;
  };
}

/** A key serial: 32 hex digits (case and surrounding spaces ignored); returned lowercase. */
export function keySerialValue(v: unknown): string {
  const hex = String(v).trim().toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex))
    throw usage(`--serial: a key serial is 32 hex digits (kds client keys lists them), got ${shown(v)}`);
  return hex;
}

/** shared/pki/serial.ts MAX_SERIAL_OCTETS (RFC 5280 4.1.2.2: at most 20 octets). */
const MAX_SERIAL_OCTETS = 20;

/**
 * A certificate serial: hex, colons and 0x allowed (as openssl prints them), a positive number of at
 * most 20 octets (RFC 5280 4.1.2.2); returned as kds writes it (shared/pki/serial.ts normalizeSerialHex).
 */
export function certSerialValue(v: unknown): string {
  const refused = (): InputError =>
    usage(
      `--serial: a certificate serial is 1 to ${MAX_SERIAL_OCTETS * 2} hex digits, not all zero, colons allowed (kds cert list shows them), got ${shown(v)}`,
    );
  let hex = String(v).trim().replace(/^0x/i, '').replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex)) throw refused();
  hex = hex.replace(/^0+/, '');
  if (hex.length === 0 || hex.length > MAX_SERIAL_OCTETS * 2) throw refused();
  return hex.length % 2 === 0 ? hex : `0${hex}`;
}

/** An identity name (the syntax every certificate and wire name follows), said in words. */
export function nameValue(what: string, opts: { reservedOk?: boolean } = {}): (v: unknown) => string {
  return (v) => {
    const name = String(v);
    if (!NAME_PATTERN.test(name)) throw usage(`${what}: ${NAME_RULE}, got ${shown(v)}`);
    if (opts.reservedOk !== true && RESERVED_NAMES.includes(name))
      throw usage(`${what}: "${name}" is reserved for the system, not a client`);
    return name;
  };
}

/** `--ttl` of a key: 1s to 90d. Returned as typed (the handler converts it). */
export function keyTtlValue(v: unknown): string {
  parseDuration(String(v), '--ttl', { minMs: MIN_KEY_TTL_MS, maxMs: MAX_KEY_TTL_MS });
  return String(v);
}

/** `--ttl` of an enrollment token: 1s to 7d. */
export function tokenTtlValue(v: unknown): string {
  parseDuration(String(v), '--ttl', { minMs: 1000, maxMs: MAX_TOKEN_TTL_MS });
  return String(v);
}

/** A DNS name (RFC 1123 labels) or an IP address: an address to bind or a name to certify. */
export function hostValue(v: unknown): string {
  const h = String(v).trim();
  if (isIP(h) === 0 && !HOSTNAME_PATTERN.test(h))
    throw usage(`--host: expected a DNS name or an IP address, got ${shown(v)}`);
  return h;
}

/**
 * A KDC URL (ws:// or wss://), or several nodes' URLs separated by commas, tried in order
 * (shared/server-urls.ts).
 */
export function serverUrlValue(v: unknown): string {
  const text = String(v);
  try {
    parseServerList(text);
  } catch (err) {
    const reason = err instanceof InputError ? err.message : '';
    const why =
      reason !== '' && (text.includes(',') || /#fragment|credentials/.test(reason)) ? ` (${reason})` : '';
    // A password typed into the URL is not repeated on the terminal.
    const got = /credentials/.test(reason) ? '' : `, got ${shown(v)}`;
    throw usage(
      `--server: expected the KDC's ws:// or wss:// URL (e.g. ws://127.0.0.1:8443/kds), or several separated by commas${why}${got}`,
    );
  }
  return text;
}

/** An enrollment token as `kds admin token` prints it. */
export function tokenValue(v: unknown): string {
  const text = String(v).trim();
  if (!/^[A-Za-z0-9_-]{16,256}$/.test(text))
    throw usage('--token: a token is 16 to 256 letters, digits, "-" or "_" (kds admin token prints one)');
  return text;
}

/** A root CA fingerprint: 64 hex digits of SHA-256 (colons, case, "sha256:" accepted). */
export function fingerprintValue(v: unknown): string {
  const hex = String(v)
    .trim()
    .replace(/^(sha-?256\s*fingerprint\s*=|sha-?256:)/i, '')
    .replace(/[:\s]/g, '')
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex))
    throw usage(
      '--ca-fingerprint: a fingerprint is the 64 hex digits of SHA-256, colons optional (kds server start prints it)',
    );
  return hex;
}

/** A message to send: at most MAX_MESSAGE_BYTES of UTF-8. */
export function messageValue(v: unknown): string {
  const text = String(v);
  if (Buffer.byteLength(text, 'utf8') > MAX_MESSAGE_BYTES)
    throw usage(`--message: at most ${MAX_MESSAGE_BYTES} bytes, got ${Buffer.byteLength(text, 'utf8')}`);
  return text;
}

/** `--metrics-listen HOST:PORT` (an IPv6 address in brackets: `[::1]:9464`). */
export function hostPortValue(what: string): (v: unknown) => { host: string; port: number } {
  return (v) => {
    const text = String(v).trim();
    const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]+)$/.exec(text);
    const host = m?.[1] ?? m?.[2];
    if (m === null || host === undefined || (isIP(host) === 0 && !HOSTNAME_PATTERN.test(host))) {
      throw usage(`${what}: expected HOST:PORT (an IPv6 address in brackets), got ${shown(v)}`);
    }
    const port = Number(m[3]);
    if (!Number.isSafeInteger(port) || port > 65535) {
      throw usage(`${what}: expected a port from 0 to 65535, got ${shown(v)}`);
    }
    return { host, port };
  };
}
