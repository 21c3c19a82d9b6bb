// The `--server` list: every entry checked, its position named (never its text: the CLI decides how to
// show what a user typed), order kept.
import t from 'tap';
import fc from 'fast-check';
import { InputError } from '../../shared/errors.js';
import { MAX_SERVERS, parseServerList } from '../../shared/server-urls.js';

const A = 'ws://127.0.0.1:8443/kds';
const B = 'wss://kdc-2.example:8444/kds';

t.test('one URL or several, in the order given, spaces around commas ignored', async (t) => {
  t.same(parseServerList(A), [A]);
  t.same(parseServerList(`${A},${B}`), [A, B]);
  t.same(parseServerList(`${B} , ${A}`), [B, A]);
});

t.test('each bad entry is refused with bad_request naming its position', async (t) => {
  const cases: [string, RegExp][] = [
    ['', /the URL is empty/],
    [`${A},,${B}`, /entry 2 of 3 is empty/],
    [`${A},`, /entry 2 of 2 is empty/],
    [`${A},http://127.0.0.1:8443/kds`, /entry 2 of 2 is not a ws:\/\/ or wss:\/\/ URL/],
    ['ws://', /the URL is not a ws:\/\/ or wss:\/\/ URL with a host/],
    ['not a url', /the URL is not a ws/],
    [`${A},${A}`, /entry 2 of 2 repeats an earlier one/],
    [`${A}#frag`, /the URL has a #fragment/],
    ['ws://127.0.0.1:8443/kds#', /the URL has a #fragment/],
    [`${A},ws://user:s3cret@127.0.0.1:8444/kds`, /entry 2 of 2 has user:password@ credentials/],
    ['ws://user@127.0.0.1:8443/kds', /credentials/],
    [`${A}, ws://127.0.0.1:8443/kds`, /repeats/],
    [
      Array.from({ length: MAX_SERVERS + 1 }, (_, i) => `ws://h${i}/kds`).join(','),
      /at most 8 KDC URLs, got 9/,
    ],
  ];
  for (const [text, message] of cases) {
    t.throws(() => parseServerList(text), { code: 'bad_request', message }, JSON.stringify(text));
  }
  t.throws(() => parseServerList(`${A},x`), InputError);
});

t.test('the message never repeats the entry text (a terminal escape in it stays out)', async (t) => {
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (junk) => {
      const text = `${A},\u001b[2J${junk}`;
      try {
        parseServerList(text);
      } catch (err) {
        return !(err as Error).message.includes('\u001b');
      }
      return true;
    }),
  );
  t.pass('checked');
});

t.test('up to MAX_SERVERS distinct URLs are accepted', async (t) => {
  const list = Array.from({ length: MAX_SERVERS }, (_, i) => `ws://127.0.0.1:${9000 + i}/kds`);
  t.same(parseServerList(list.join(',')), list);
});
