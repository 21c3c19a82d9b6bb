// The menu's answer parsers (client/menu/answers.ts): what is accepted, and the sentence shown for
// what is not. Never a throw: a typo must not end the menu.
import t from 'tap';
import fc from 'fast-check';
import {
  EMPTY_ANSWER,
  parseCertSerial,
  parseChoice,
  parseFingerprint,
  parseKeySerial,
  parseListPick,
  parseMessage,
  parsePeerName,
  parseReason,
  parseKeyReason,
  KEY_REASON_MENU,
  parseToken,
  parseYesNo,
} from '../../../client/menu/answers.js';

t.test('parseChoice accepts exactly the integers 0..max', async (t) => {
  t.same(parseChoice('0', 2), { ok: true, value: 0 });
  t.same(parseChoice(' 2 ', 2), { ok: true, value: 2 });
  for (const bad of ['3', '-1', '1.5', '1e0', '0x1', 'one', '', '01x', '9999']) {
    t.same(
      parseChoice(bad, 2),
      { ok: false, message: 'please choose a number from 0 to 2' },
      JSON.stringify(bad),
    );
  }
  fc.assert(
    fc.property(fc.string(), fc.integer({ min: 0, max: 50 }), (text, max) => {
      const r = parseChoice(text, max);
      return r.ok
        ? Number.isInteger(r.value) &&
            r.value >= 0 &&
            r.value <= max &&
            String(r.value) === String(Number(text.trim()))
        : r.message.length > 0;
    }),
  );
});

t.test('parsePeerName: the name syntax, not reserved, not oneself', async (t) => {
  t.same(parsePeerName(' bob ', 'alice'), { ok: true, value: 'bob' });
  t.match(parsePeerName('alice', 'alice'), { ok: false, message: /that is you/ });
  t.match(parsePeerName('kdc', 'alice'), { ok: false, message: /reserved/ });
  t.match(parsePeerName('admin', 'alice'), { ok: false, message: /reserved/ });
  for (const bad of ['Bob', 'bob!', '-bob', 'a'.repeat(65), 'bo b', 'böb']) {
    t.match(parsePeerName(bad, 'alice'), { ok: false, message: /is not a client name/ }, bad);
  }
  t.match(
    parsePeerName('x'.repeat(500), 'alice'),
    { ok: false, message: /^"x{40}\.\.\." is not/ },
    'long input is clipped in the message',
  );
});

t.test('serials, tokens, fingerprints', async (t) => {
  const serial = 'ab'.repeat(16);
  t.same(parseKeySerial(` ${serial.toUpperCase()} `), { ok: true, value: serial });
  t.match(parseKeySerial(serial.slice(1)), { ok: false });
  t.same(parseCertSerial('0x3A:9F'), { ok: true, value: '3a9f' });
  t.match(parseCertSerial('xyz'), { ok: false, message: /hex digits/ });
  t.same(parseToken(' abcdefghijklmnopqrstuvwxyz_-0123 '), {
    ok: true,
    value: 'abcdefghijklmnopqrstuvwxyz_-0123',
  });
  t.match(parseToken('short'), { ok: false, message: /16 or more/ });
  t.match(parseToken('a'.repeat(20) + '!'), { ok: false });
  const fp = 'c0'.repeat(32);
  t.same(parseFingerprint(fp.match(/../g)!.join(':').toUpperCase()), { ok: true, value: fp });
  t.same(parseFingerprint(`sha256:${fp}`), { ok: true, value: fp });
  t.match(parseFingerprint('c0:ff'), { ok: false, message: /64 hex digits/ });
});

t.test('list picks: a number from the list or, where allowed, a serial', async (t) => {
  t.same(parseListPick('2', 3), { ok: true, value: 2 });
  t.match(parseListPick('0', 3), { ok: false, message: /0 is not in the list/ });
  t.match(parseListPick('4', 3), { ok: false, message: /from 1 to 3/ });
  t.match(parseListPick('5', 1), { ok: false, message: /the list has one entry: type 1/ });
  t.match(parseListPick('abc', 3), { ok: false, message: /from 1 to 3/ });
  const serial = 'cd'.repeat(16);
  t.same(parseListPick(serial, 3, parseKeySerial), { ok: true, value: serial });
  t.match(parseListPick('nope', 3, parseKeySerial), {
    ok: false,
    message: /a number from 1 to 3 or a serial; a key serial is 32 hex digits/,
  });
});

t.test('yes/no, reasons, messages', async (t) => {
  for (const y of ['y', 'YES', ' yes ']) t.same(parseYesNo(y), { ok: true, value: true });
  for (const n of ['n', 'No']) t.same(parseYesNo(n), { ok: true, value: false });
  t.match(parseYesNo('maybe'), { ok: false, message: 'please answer yes or no' });
  t.same(parseReason('2'), { ok: true, value: 'keyCompromise' });
  t.same(parseReason('KEYCOMPROMISE'), { ok: true, value: 'keyCompromise' });
  t.same(parseReason('9'), { ok: true, value: 'aACompromise' });
  t.match(parseReason('10'), { ok: false, message: /from 1 to 9/ });
  t.match(
    parseReason('removeFromCRL'),
    { ok: false, message: /unknown reason/ },
    'not a reason one may give',
  );
  t.same(parseMessage('  hi  '), { ok: true, value: '  hi  ' }, 'spaces are kept as typed');
  t.same(parseMessage('   '), { ok: false, message: EMPTY_ANSWER });
  t.match(
    parseMessage('é'.repeat(20_000)),
    { ok: false, message: /at most 32768 bytes/ },
    'the limit is in bytes',
  );
});

t.test('parseChoice inside an action (min 1): the sentence names the numbers offered', async (t) => {
  t.same(parseChoice('3', 2, 1), { ok: false, message: 'please choose 1 or 2 (0 goes back)' });
  t.same(parseChoice('0', 2, 1), { ok: false, message: 'please choose 1 or 2 (0 goes back)' });
  t.same(parseChoice('2', 2, 1), { ok: true, value: 2 });
  t.same(parseChoice('9', 4, 1), { ok: false, message: 'please choose a number from 1 to 4 (0 goes back)' });
  t.same(parseChoice('3', 2), { ok: false, message: 'please choose a number from 0 to 2' }, 'a menu keeps 0');
});

t.test('parseKeyReason: only the reasons that apply to a key', async (t) => {
  t.same(KEY_REASON_MENU, [
    '1) unspecified',
    '2) keyCompromise',
    '3) affiliationChanged',
    '4) superseded',
    '5) cessationOfOperation',
    '6) privilegeWithdrawn',
  ]);
  t.same(parseKeyReason('2'), { ok: true, value: 'keyCompromise' });
  t.same(parseKeyReason('KEYCOMPROMISE'), { ok: true, value: 'keyCompromise' });
  t.match(parseKeyReason('7'), { ok: false, message: /from 1 to 6/ });
  for (const r of ['certificateHold', 'cacompromise', 'aACompromise'])
    t.match(parseKeyReason(r), { ok: false, message: /is not a reason for revoking a key/ }, r);
  t.match(parseKeyReason('bogus'), { ok: false, message: /unknown reason/ });
});
