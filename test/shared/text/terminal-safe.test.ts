// shared/text/terminal-safe.ts: what reaches a terminal holds no control, format or bidi character,
// ordinary text is left alone, multi-line text cannot start a line of its own, and the JSON form is the
// same value.
import t from 'tap';
import fc from 'fast-check';
import {
  CONTINUATION,
  isTerminalSafe,
  terminalSafe,
  terminalSafeBlock,
  terminalSafeJson,
} from '../../../shared/text/terminal-safe.js';

/** What must never be in the output: C0 (newline aside where said), DEL, C1, bidi marks and controls. */
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;
const FORBIDDEN_BUT_NEWLINE =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The characters attacks use, so the generator hits them often, plus any code unit and code point. */
const NASTY = [
  '\u001b',
  '\r',
  '\n',
  '\u0007',
  '\u0008',
  '\u0000',
  '\u007f',
  '\u009b',
  '\u0085',
  '\u009d',
  '\u202e',
  '\u202d',
  '\u2066',
  '\u2069',
  '\u200e',
  '\u200f',
  '\u061c',
  '\u200b',
  '\ufeff',
  '\u2028',
  '\udb40\udc41',
  '\ud800',
  '\udfff',
  '[',
  ']',
  '2K',
  '8m',
  ';',
];
const anyText = fc.string({
  unit: fc.oneof(
    fc.constantFrom(...NASTY),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n)),
  ),
  maxLength: 60,
});

t.test('no control, DEL, C1, bidi or lone surrogate survives (any input)', async () => {
  fc.assert(
    fc.property(anyText, (s) => {
      const out = terminalSafe(s);
      return !FORBIDDEN.test(out) && !LONE_SURROGATE.test(out) && isTerminalSafe(out);
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(anyText, (s) => {
      const out = terminalSafeBlock(s);
      if (FORBIDDEN_BUT_NEWLINE.test(out) || LONE_SURROGATE.test(out)) return false;
      // Every line but the first is marked as a continuation: none can pass for a kds line.
      return out
        .split('\n')
        .slice(1)
        .every((line) => line.startsWith(CONTINUATION));
    }),
    { numRuns: 3000 },
  );
});

t.test('printable ASCII is unchanged', async () => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme-ascii' }), (s) => {
      const printable = s.replace(/[^\x20-\x7e]/g, '');
      return (
        terminalSafe(printable) === printable &&
        terminalSafeBlock(printable) === printable &&
        terminalSafeJson(printable) === JSON.stringify(printable)
      );
    }),
  );
});

t.test('ordinary Unicode text is unchanged', async (t) => {
  const ordinary = /^[\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}\u200c\u200d]*$/u;
  fc.assert(
    fc.property(
      fc.string({ unit: 'binary' }).filter((s) => ordinary.test(s)),
      (s) => terminalSafe(s) === s && terminalSafeBlock(s) === s,
    ),
    { numRuns: 2000 },
  );
  for (const s of [
    'Grüße aus Köln, ça va? ñ',
    '東京で会いましょう',
    'مرحبا بالعالم',
    'שלום עולם',
    'नमस्ते दुनिया',
    'family 👨‍👩‍👧 and a flag 🇫🇷, thumbs 👍🏽',
    'می‌خواهم', // Persian with a zero width non-joiner
    'tab-free "quotes" \\backslash\\ {braces} <tags> 100%',
  ]) {
    t.equal(terminalSafe(s), s, s);
    t.equal(terminalSafeJson({ s }), JSON.stringify({ s }), `json ${s}`);
  }
});

t.test('each unsafe character is shown as a readable escape', async (t) => {
  t.equal(terminalSafe('a\u001b[2Kb'), 'a\\x1b[2Kb');
  t.equal(terminalSafe('x\ry\nz\t'), 'x\\ry\\nz\\t');
  t.equal(terminalSafe('\u009b2K'), '\\x9b2K');
  t.equal(terminalSafe('\u007f\u0000'), '\\x7f\\x00');
  t.equal(terminalSafe('abc\u202etxt.exe'), 'abc\\u202etxt.exe');
  t.equal(
    terminalSafe('\u2066\u2069\u200e\u200f\u061c\u200b\ufeff\u2028'),
    '\\u2066\\u2069\\u200e\\u200f\\u061c\\u200b\\ufeff\\u2028',
  );
  t.equal(terminalSafe('tag\udb40\udc41'), 'tag\\u{e0041}');
  t.equal(terminalSafe('lone\ud800'), 'lone\\ud800');
  t.equal(terminalSafe(42), '42', 'any value is shown as its string');
});

t.test('a multi-line text: continuation lines are marked, CRLF is one break', async (t) => {
  t.equal(terminalSafeBlock('one\ntwo\r\nthree'), `one\n${CONTINUATION}two\n${CONTINUATION}three`);
  t.equal(terminalSafeBlock('a\rb'), 'a\\rb', 'a lone CR is shown, not obeyed');
  t.equal(terminalSafeBlock('x\n', '> '), 'x\n> ');
});

t.test('the JSON form is the same value, and safe to print', async (t) => {
  const value = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: 'small' },
      anyText,
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('node'), { maxLength: 4 }),
      fc.dictionary(anyText, tie('node'), { maxKeys: 4 }),
    ),
  })).node;
  fc.assert(
    fc.property(value, fc.constantFrom(undefined, 2), (v, space) => {
      const out = terminalSafeJson(v, space);
      t.same(JSON.parse(out), JSON.parse(JSON.stringify(v)));
      // Newlines only as the indentation of `space`: inside strings they are escaped.
      return (
        !(space === undefined ? FORBIDDEN : FORBIDDEN_BUT_NEWLINE).test(out) && !LONE_SURROGATE.test(out)
      );
    }),
    { numRuns: 1000 },
  );
  t.equal(terminalSafeJson({ text: 'a\u009bb\u202e' }), '{"text":"a\\u009bb\\u202e"}');
  t.equal(JSON.parse(terminalSafeJson({ text: 'a\u009bb\u202e' })).text, 'a\u009bb\u202e');
});
