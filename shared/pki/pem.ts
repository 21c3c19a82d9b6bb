// PEM armor (RFC 7468): strict decoding of one labelled block to DER, and encoding DER back to PEM.
import { InputError } from '../errors.js';

const BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----/;

/**
 * Decode the first PEM block of `text` to DER. It must carry one of `labels` (RFC 7468 section 2:
 * "the type of data encoded is labeled"), otherwise `malformed_pem` names the label it found (labels are
 * not secret; the body never appears in errors). Text before and after the block is ignored, as RFC 7468
 * section 5.2 allows ("explanatory text").
 */
export function pemToDer(text: string, labels: string | readonly string[]): Buffer {
  const want = typeof labels === 'string' ? [labels] : labels;
  const expected = want.join(' or ');
  if (typeof text !== 'string') throw new InputError('malformed_pem', `expected ${expected} PEM text`);
  const m = BEGIN.exec(text);
  if (!m) throw new InputError('malformed_pem', `expected ${expected} PEM, found no PEM block`);
  const label = m[1]!;
  if (!want.includes(label)) {
    throw new InputError('malformed_pem', `expected ${expected} PEM, got ${label}`);
  }
  const start = m.index + m[0].length;
  const endMarker = `-----END ${label}-----`;
  const end = text.indexOf(endMarker, start);
  if (end < 0) throw new InputError('malformed_pem', `truncated ${label} PEM (no END line)`);
  const body = text.slice(start, end);
  // Node's base64 decoder silently skips characters outside the alphabet, so check the alphabet first
  // (one pass; a CRL can be megabytes), then that the decoded length matches the characters given.
  const significant = countBase64Chars(body);
  const trimmed = body.trimEnd();
  const padding = trimmed.endsWith('==') ? 2 : trimmed.endsWith('=') ? 1 : 0;
  const firstPad = body.indexOf('=');
  if (
    significant < 0 ||
    significant === 0 ||
    significant % 4 !== 0 ||
    firstPad !== (padding === 0 ? -1 : trimmed.length - padding) // '=' only at the very end
  ) {
    throw new InputError('malformed_pem', `invalid base64 in ${label} PEM`);
  }
  const der = Buffer.from(body, 'base64');
  if (der.length !== (significant / 4) * 3 - padding) {
    throw new InputError('malformed_pem', `invalid base64 in ${label} PEM`);
  }
  return der;
}

// 1 = base64 alphabet or '=', 2 = whitespace RFC 7468 allows between lines, 0 = invalid.
const CHAR_CLASS = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=')
  CHAR_CLASS[c.charCodeAt(0)] = 1;
for (const c of '\r\n\t ') CHAR_CLASS[c.charCodeAt(0)] = 2;

/** Number of base64 characters (padding included) in `s`, or -1 if it holds anything else. */
function countBase64Chars(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const k = c < 128 ? CHAR_CLASS[c] : 0;
    if (k === 1) n++;
    else if (k !== 2) return -1;
  }
  return n;
}

/** Encode DER as PEM with 64-character lines (RFC 7468 section 2). */
export function derToPem(der: Uint8Array, label: string): string {
  // A 100k-entry CRL is ~6.6 MB of PEM, encoded on every revocation: base64 natively into one Buffer,
  // then one native copy per 64-character line into the output: ~3x less CPU than the earlier regex
  // `replace(/.{64}/g, '$&\n')`, which bench/revocation.ts measured at ~20% of a 100k revocation (a loop
  // over every character would be worse in the CLI's fresh, unoptimized process).
  const b64 = Buffer.from(
    Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64'),
    'latin1',
  );
  const n = b64.length;
  const body = Buffer.allocUnsafe(n + Math.ceil(n / 64));
  let at = 0;
  for (let i = 0; i < n; i += 64) {
    const line = b64.subarray(i, i + 64);
    body.set(line, at);
    at += line.length;
    body[at++] = 0x0a;
  }
  return `-----BEGIN ${label}-----\n${body.toString('latin1', 0, at)}-----END ${label}-----\n`;
}
