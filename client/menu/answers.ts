// Parsing and validating what a person types at the menu's prompts (the menu "validates every answer
// (bad numbers, unknown peers, empty input re-prompt with a clear message)"). Each parser returns the
// value or the sentence to show before asking again; none throws, so a typo can never end the menu.
// Whether a well-formed peer name is actually enrolled is the KDC's answer (client/menu/key-actions.ts).
import { NAME_PATTERN, isReservedName } from '../../shared/pki/names.js';
import { normalizeFingerprint } from '../../shared/pki/fingerprint.js';
import {
  KEY_REVOCATION_REASONS,
  REVOCATION_REASONS,
  type RevocationReason,
} from '../../shared/revocation-reasons.js';

type KeyReason = (typeof KEY_REVOCATION_REASONS)[number];
import { MAX_MESSAGE_BYTES } from '../../shared/keys/message.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const no = <T>(message: string): Parsed<T> => ({ ok: false, message });

/** Shown for an empty answer everywhere: nothing is ever chosen by default. */
export const EMPTY_ANSWER = 'please type an answer (0 goes back, Ctrl-D quits)';

/** Same length as client/enroll.ts TOKEN_PATTERN: `kds admin token` prints 43 base64url characters. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{16,256}$/;
const KEY_SERIAL_PATTERN = /^[0-9a-f]{32}$/;

/**
 * A menu choice: an integer from `min` (0 for a menu, whose 0 goes back; 1 for a question inside an
 * action, where `ask` takes 0 as "cancel" before parsing) to `max`, nothing else ("1.5", "01x", "-1").
 * The sentence names exactly the numbers the prompt offers.
 */
export function parseChoice(text: string, max: number, min = 0): Parsed<number> {
  const t = text.trim();
  if (!/^\d{1,3}$/.test(t) || Number(t) > max || Number(t) < min) {
    if (min === 0) return no(`please choose a number from 0 to ${max}`);
    const range = max - min === 1 ? `${min} or ${max}` : `a number from ${min} to ${max}`;
    return no(`please choose ${range} (0 goes back)`);
  }
  return ok(Number(t));
}

/** A peer's identity name: the name syntax, not reserved, not oneself. */
export function parsePeerName(text: string, self: string): Parsed<string> {
  const t = text.trim();
  if (!NAME_PATTERN.test(t)) {
    return no(`"${clip(t)}" is not a client name (lowercase letters, digits, '.', '_' or '-', at most 64)`);
  }
  if (isReservedName(t)) return no(`"${t}" is reserved for the system, not a client`);
  if (t === self) return no(`that is you (${self}): a key needs two different parties`);
  return ok(t);
}

/** A symmetric key serial: 32 hex digits (case and surrounding spaces ignored). */
export function parseKeySerial(text: string): Parsed<string> {
  const t = text.trim().toLowerCase();
  return KEY_SERIAL_PATTERN.test(t) ? ok(t) : no('a key serial is 32 hex digits (see "list keys")');
}

/** A certificate serial: hex, colons and a 0x prefix allowed (as openssl and browsers print them). */
export function parseCertSerial(text: string): Parsed<string> {
  const hex = text.trim().replace(/^0x/i, '').replace(/:/g, '').toLowerCase();
  return /^[0-9a-f]{1,64}$/.test(hex) ? ok(hex) : no('a certificate serial is hex digits (e.g. 3a9f0c...)');
}

/** Pick from a numbered list (1..n) or, when `serial` is given, type the item's serial instead. */
export function parseListPick(
  text: string,
  count: number,
  serial?: (t: string) => Parsed<string>,
): Parsed<number | string> {
  const t = text.trim();
  if (/^\d{1,4}$/.test(t)) {
    const n = Number(t);
    if (n >= 1 && n <= count) return ok(n);
    if (n === 0) return no('0 is not in the list (use a number from the list)');
    return no(count === 1 ? 'the list has one entry: type 1' : `please choose a number from 1 to ${count}`);
  }
  if (serial !== undefined) {
    const s = serial(t);
    if (s.ok) return s;
    return no(`type a number from 1 to ${count} or a serial; ${s.message}`);
  }
  return no(`please choose a number from 1 to ${count}`);
}

/** An enrollment token as `kds admin token` prints it. */
export function parseToken(text: string): Parsed<string> {
  const t = text.trim();
  return TOKEN_PATTERN.test(t)
    ? ok(t)
    : no('a token is 16 or more letters, digits, "-" or "_" (kds admin token prints one)');
}

/** A root CA fingerprint (hex SHA-256; colons, case, "sha256:" and openssl's prefix accepted). */
export function parseFingerprint(text: string): Parsed<string> {
  try {
    return ok(normalizeFingerprint(text.trim()));
  } catch {
    return no('a fingerprint is the 64 hex digits of SHA-256 (kds server start prints it)');
  }
}

export function parseYesNo(text: string): Parsed<boolean> {
  const t = text.trim().toLowerCase();
  if (t === 'y' || t === 'yes') return ok(true);
  if (t === 'n' || t === 'no') return ok(false);
  return no('please answer yes or no');
}

/** A revocation reason: its number in REASON_MENU, or its RFC 5280 name (any case). */
export function parseReason(text: string): Parsed<RevocationReason> {
  const t = text.trim();
  if (/^\d{1,2}$/.test(t)) {
    const r = REVOCATION_REASONS[Number(t) - 1];
    return r === undefined ? no(`please choose a number from 1 to ${REVOCATION_REASONS.length}`) : ok(r);
  }
  const byName = REVOCATION_REASONS.find((r) => r.toLowerCase() === t.toLowerCase());
  return byName === undefined ? no(`unknown reason "${clip(t)}": choose a number from the list`) : ok(byName);
}

/** The numbered list parseReason understands. */
export const REASON_MENU: readonly string[] = REVOCATION_REASONS.map((r, i) => `${i + 1}) ${r}`);

/**
 * A reason for revoking a symmetric key: its number in KEY_REASON_MENU or its name. The certificate-only
 * reasons are refused with why (a key revocation is final; CA and AA compromise are another key's).
 */
export function parseKeyReason(text: string): Parsed<KeyReason> {
  const t = text.trim();
  if (/^\d{1,2}$/.test(t)) {
    const r = KEY_REVOCATION_REASONS[Number(t) - 1];
    return r === undefined ? no(`please choose a number from 1 to ${KEY_REVOCATION_REASONS.length}`) : ok(r);
  }
  const byName = KEY_REVOCATION_REASONS.find((r) => r.toLowerCase() === t.toLowerCase());
  if (byName !== undefined) return ok(byName);
  const certOnly = REVOCATION_REASONS.find((r) => r.toLowerCase() === t.toLowerCase());
  if (certOnly !== undefined)
    return no(
      `${certOnly} is not a reason for revoking a key (it is about certificates): choose from the list`,
    );
  return no(`unknown reason "${clip(t)}": choose a number from the list`);
}

/** The numbered list parseKeyReason understands. */
export const KEY_REASON_MENU: readonly string[] = KEY_REVOCATION_REASONS.map((r, i) => `${i + 1}) ${r}`);

/** A message to send: any text up to the message limit (spaces kept as typed). */
export function parseMessage(text: string): Parsed<string> {
  if (text.trim() === '') return no(EMPTY_ANSWER);
  if (Buffer.byteLength(text, 'utf8') > MAX_MESSAGE_BYTES)
    return no(`a message is at most ${MAX_MESSAGE_BYTES} bytes`);
  return ok(text);
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
