// client/demo/narrator.ts: the demo quotes what its participants received; none of it reaches the
// terminal raw, and the --json event log keeps every text exactly.
import t from 'tap';
import { PassThrough } from 'node:stream';
import { KdcLines, parseKdcLine } from '../../../client/demo/kdc-lines.js';
import { Narrator, type DemoStyle } from '../../../client/demo/narrator.js';

const plain: DemoStyle = {
  symbol: (ok) => (ok ? 'OK' : 'FAIL'),
  ok: (s) => s,
  bad: (s) => s,
  bold: (s) => s,
  dim: (s) => s,
};
const hostile = 'hi\r\u001b[2K\u001b[1Aforged\nline\u009b2K\u202e\u001b[8m';

function narrate(json: boolean): { out: () => string } {
  const out = new PassThrough();
  let text = '';
  out.setEncoding('utf8').on('data', (d: string) => (text += d));
  const n = new Narrator({
    json,
    step: false,
    out,
    promptOut: new PassThrough(),
    input: new PassThrough(),
    style: plain,
  });
  void n.step(hostile);
  n.say(hostile);
  n.result(true, hostile, { text2: hostile });
  n.result(false, hostile);
  n.mallory(hostile, { kind: 'plaintext' }, true);
  n.wire({ who: 'alice', dir: 'out', frame: 'alert', bytes: 10, detail: hostile });
  // A line of the KDC's stderr quoting a hostile name (as if the KDC had not escaped it).
  n.kdc(parseKdcLine(`07:41:02.113  ${hostile}  handshake refused: bad_signature`));
  n.done(true);
  return { out: () => text };
}

t.test('human narration: no control character, nothing starts a line of its own', async (t) => {
  const text = narrate(false).out();
  // eslint-disable-next-line no-control-regex
  t.notMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
  t.notOk(text.split('\n').some((l) => l.startsWith('forged') || l.startsWith('line')));
  t.match(text, /hi\\r\\x1b\[2K\\x1b\[1Aforged\\nline\\x9b2K\\u202e\\x1b\[8m/);
  t.match(text, /^ {3}KDC \| hi\\r\\x1b\[2K.*handshake refused: bad_signature$/m, "the KDC's line, escaped");
});

t.test("the KDC's stderr: lines in any chunking, escaped, split into who and what", async (t) => {
  const seen: string[] = [];
  const lines = new KdcLines(true, (l) => seen.push(`${l.who}|${l.what}`));
  const waited = lines.waitFor(/^bob +key \S+ verified valid/, 'the verdict');
  lines.feed('07:41:02.113  alice      handshake ok (x25519, 1.3 ms)\n07:41:02.2');
  lines.feed('00  bob        key 3f2a9c01... verified valid\nWARNING \u001b[31mred\n');
  await waited;
  t.same(seen, [
    'alice|handshake ok (x25519, 1.3 ms)',
    'bob|key 3f2a9c01... verified valid',
    '|WARNING \\x1b[31mred',
  ]);
  lines.nextStep();
  await t.rejects(
    lines.waitFor(/^alice/, 'an old line', 50),
    { code: 'timeout' },
    'a new step waits for new lines',
  );
  const off = new KdcLines(false, () => {});
  await off.waitFor(/never/, 'anything');
  t.pass('--no-kdc-log: nothing is waited for');
});

t.test('--json: the exact texts, and still safe to print', async (t) => {
  const text = narrate(true).out();
  // eslint-disable-next-line no-control-regex
  t.notMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
  const events = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(events.find((e) => e.event === 'say')?.text, hostile);
  t.equal(events.find((e) => e.event === 'result')?.text2, hostile);
  t.equal(events.find((e) => e.event === 'wire')?.detail, hostile);
});
