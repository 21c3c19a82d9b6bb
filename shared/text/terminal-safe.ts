// Text from elsewhere (a peer's message, a name or reason in a KDC answer, an error message the KDC
// sent, a field of a certificate or CRL file) made safe to write to a terminal. A terminal obeys what
// it is sent: a carriage return plus "erase line" and "cursor up" rewrites lines already shown, ESC [8m
// hides everything after it, a right-to-left override reverses what follows. kds therefore never
// writes such a string raw: every character that is not ordinary visible text is shown as an escape
// (`\x1b`, `\r`, `\u202e`) instead (docs/security.md, "What reaches your terminal").
//
// Neutralised: every control character (general category Cc: C0 U+0000-U+001F, DEL U+007F, C1
// U+0080-U+009F with the 8-bit CSI U+009B), every format character (Cf: the bidirectional embeddings,
// overrides and isolates U+202A-U+202E and U+2066-U+2069, the marks U+200E, U+200F and U+061C, zero
// width space U+200B, word joiner U+2060, BOM U+FEFF, soft hyphen U+00AD, tag characters
// U+E0000-U+E007F...), the line and paragraph separators U+2028/U+2029 (Zl, Zp) and lone surrogate
// halves (Cs). Kept: ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER (U+200C, U+200D), which ordinary
// text needs (Persian and Indic spelling, emoji sequences) and which move nothing on a screen.
// Pure: no I/O.

/** Characters that never reach a terminal raw (see the header for the list and the exceptions). */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
const KEPT = new Set(['\u200c', '\u200d']);
/**
 * Printable ASCII only: nothing to escape. Names, serials, codes and addresses almost always are, and
 * this test is several times cheaper than the Unicode-property replace (the KDC's log runs it on every
 * field of every line).
 */
const PLAIN = /^[\x20-\x7e]*$/;

/** Marks the second and later lines of a multi-line text: no kds line starts like this. */
export const CONTINUATION = '  | ';

const SHORT: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** The visible stand-in of one unsafe character: `\t`, `\x1b`, `\u202e`, `\u{e0041}`. */
function visible(c: string): string {
  const short = SHORT[c];
  if (short !== undefined) return short;
  const cp = c.codePointAt(0)!;
  if (cp <= 0xff) return `\\x${hex(cp, 2)}`;
  if (cp <= 0xffff) return `\\u${hex(cp, 4)}`;
  return `\\u{${hex(cp, 5)}}`;
}

function escapeUnsafe(text: string): string {
  if (PLAIN.test(text)) return text;
  return text.replace(UNSAFE, (c) => (KEPT.has(c) ? c : visible(c)));
}

/**
 * One line of terminal-safe text: names, reasons, codes, error messages. Newlines are shown as `\n`
 * too, so the value can never start a line of its own.
 */
export function terminalSafe(value: unknown): string {
  return escapeUnsafe(String(value));
}

/**
 * Multi-line terminal-safe text (a message body): each line is escaped as terminalSafe does, and every
 * line after the first starts with `continuation`, so a line of the text can never pass for a line kds
 * printed itself ("message from ...", "key ... revoked"). CRLF counts as one line break.
 */
export function terminalSafeBlock(text: string, continuation: string = CONTINUATION): string {
  return String(text)
    .split(/\r?\n/)
    .map((line, i) => (i === 0 ? escapeUnsafe(line) : `${continuation}${escapeUnsafe(line)}`))
    .join('\n');
}

/**
 * JSON.stringify, with the characters it leaves raw that a terminal may still obey (DEL, C1 controls,
 * format characters, line separators) written as \u escapes: the same JSON value (JSON.parse gives
 * back exactly `value`), but safe to print. Those characters can only occur inside JSON strings, where
 * \uXXXX means the same character.
 */
export function terminalSafeJson(value: unknown, space?: number): string {
  return JSON.stringify(value, null, space).replace(UNSAFE, (c) => {
    // A raw newline is the indentation `space` asks for: inside strings JSON.stringify escapes C0.
    if (KEPT.has(c) || c === '\n') return c;
    let out = '';
    for (let i = 0; i < c.length; i += 1) out += `\\u${hex(c.charCodeAt(i), 4)}`;
    return out;
  });
}

/** Whether `text` holds nothing a terminal would obey (what terminalSafe guarantees for its output). */
export function isTerminalSafe(text: string): boolean {
  UNSAFE.lastIndex = 0;
  for (const m of text.matchAll(UNSAFE)) if (!KEPT.has(m[0])) return false;
  return true;
}
