// cli/option-values.ts: its copies of the protocol's rules agree with their sources (it may not import
// them: --help must stay light), and each value check says what is valid.
import t from 'tap';
import { normalizeSerialHex } from '../../shared/pki/serial.js';
import * as values from '../../cli/option-values.js';
import * as names from '../../shared/pki/names.js';
import { MAX_MESSAGE_BYTES } from '../../shared/keys/message.js';
import { MAX_TOKEN_TTL_MS } from '../../server/ca/tokens.js';
import { MAX_KEY_TTL_MS, MIN_KEY_TTL_MS } from '../../shared/keys/lifetime.js';
import { MAX_TOKEN_TTL_MS as SCHEMA_TOKEN_TTL } from '../../shared/protocol/messages-core.js';

t.test('the copies agree with their sources', async (t) => {
  t.equal(values.NAME_PATTERN.source, names.NAME_PATTERN.source);
  t.equal(values.NAME_RULE, names.NAME_RULE);
  t.same(values.RESERVED_NAMES, names.RESERVED_NAMES);
  t.equal(values.HOSTNAME_PATTERN.source, names.HOSTNAME_PATTERN.source);
  t.equal(values.HOSTNAME_PATTERN.flags, names.HOSTNAME_PATTERN.flags);
  t.equal(values.MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES);
  t.equal(values.MAX_TOKEN_TTL_MS, MAX_TOKEN_TTL_MS);
  t.equal(values.MAX_TOKEN_TTL_MS, SCHEMA_TOKEN_TTL);
  t.equal(values.MIN_KEY_TTL_MS, MIN_KEY_TTL_MS);
  t.equal(values.MAX_KEY_TTL_MS, MAX_KEY_TTL_MS);
});

t.test('a certificate serial: the rules of shared/pki/serial.ts normalizeSerialHex', async (t) => {
  for (const input of ['1', '01', '0x0A:Bc', 'ff'.repeat(20), `00${'ff'.repeat(20)}`, '7F:00', 'abc'])
    t.equal(values.certSerialValue(input), normalizeSerialHex(input), input);
  for (const input of ['0', '00:00', `1${'00'.repeat(20)}`, 'xyz', '']) {
    t.throws(() => normalizeSerialHex(input), { code: 'bad_request' }, `the CA refuses ${input}`);
    t.throws(() => values.certSerialValue(input), { code: 'bad_request' }, `so does the CLI: ${input}`);
  }
});

t.test('what was typed is quoted with nothing a terminal obeys left raw', async (t) => {
  for (const [c, escaped] of [
    ['\u001b', '\\u001b'],
    ['\u009b', '\\u009b'],
    ['\u202e', '\\u202e'],
    ['\u007f', '\\u007f'],
  ]) {
    try {
      values.nameValue('--name')(`a${c}b`);
      t.fail('refused');
    } catch (err) {
      t.ok((err as Error).message.endsWith(`got "a${escaped}b"`), (err as Error).message);
    }
  }
});

t.test('values: accepted, normalised, or refused with the rule', async (t) => {
  t.equal(values.keySerialValue(' AB'.padEnd(33, 'c')), 'ab'.padEnd(32, 'c'));
  t.throws(() => values.keySerialValue('xyz'), { code: 'bad_request', message: /32 hex digits/ });
  t.equal(values.certSerialValue('0x0A:Bc'), '0abc');
  t.throws(() => values.certSerialValue('a'.repeat(65)), { code: 'bad_request' });
  for (const bad of ['0', '00', '0x0', '0:0', 'a'.repeat(41), '1'.padEnd(41, '0')])
    t.throws(() => values.certSerialValue(bad), { code: 'bad_request', message: /1 to 40 hex digits/ }, bad);
  t.equal(values.certSerialValue(`00${'a'.repeat(40)}`), 'a'.repeat(40), 'leading zeros are not digits');
  for (const bad of ['0x3', '1e1', '1e309', '3.0', '-1', ' ', '9'.repeat(400)])
    t.throws(
      () => values.integerValue('--limit', 1)(bad),
      { message: /^--limit: expected a whole number 1 or more in decimal digits/ },
      bad,
    );
  t.equal(values.integerValue('--limit', 1)(' 12 '), 12);
  t.throws(() => values.integerValue('--key-bits', 2048, 4096)('0x800'), {
    message: /from 2048 to 4096 in decimal digits, got "0x800"/,
  });
  t.throws(() => values.pathValue('--data-dir')(''), {
    code: 'bad_request',
    message: '--data-dir: expected a path, got ""',
  });
  t.equal(values.pathValue('--data-dir')('d'), 'd');
  t.equal(values.pathValue('<file>')(undefined), undefined, 'an optional path left out');
  t.equal(values.portValue('--port', { allowZero: true })('0'), 0);
  for (const bad of ['abc', '65536', '-5', '28443.5', '', '1e3'])
    t.throws(() => values.portValue('--port')(bad), { code: 'bad_request', message: /from 1 to 65535/ }, bad);
  t.throws(() => values.portValue('--port')('0'), { message: /from 1 to 65535/ });
  t.equal(values.nameValue('--to')('bob'), 'bob');
  t.throws(() => values.nameValue('--to')('Bob'), { message: /^--to: a name is 1 to 64 characters/ });
  t.throws(() => values.nameValue('--name')('admin'), { message: /reserved for the system/ });
  t.equal(values.nameValue('--name', { reservedOk: true })('kdc'), 'kdc');
  t.equal(values.keyTtlValue('90d'), '90d');
  t.throws(() => values.keyTtlValue('91d'), { message: '--ttl: at most 90d, got 91d' });
  t.throws(() => values.tokenTtlValue('400d'), { message: '--ttl: at most 7d, got 400d' });
  t.throws(() => values.tokenTtlValue('99999999999d'), { message: /at most 7d/ });
  t.throws(() => values.tokenTtlValue('0s'), { message: /at least 1s/ });
  t.throws(() => values.serverUrlValue('http://x'), { message: /ws:\/\/ or wss:\/\/ URL/ });
  t.equal(values.serverUrlValue('wss://kdc.example.org/kds'), 'wss://kdc.example.org/kds');
  t.throws(() => values.serverUrlValue('ws://127.0.0.1:8443/kds#frag'), {
    code: 'bad_request',
    message: /has a #fragment/,
  });
  const withPassword = (() => {
    try {
      values.serverUrlValue('ws://user:s3cret@127.0.0.1:8443/kds');
    } catch (err) {
      return err as Error;
    }
    return undefined;
  })();
  t.match(withPassword, { code: 'bad_request', message: /user:password@ credentials/ });
  t.notMatch(withPassword?.message ?? '', /s3cret/, 'the password is not repeated');
  t.throws(() => values.messageValue('x'.repeat(32 * 1024 + 1)), { message: /at most 32768 bytes/ });
  t.equal(values.hostValue('::1'), '::1');
  t.throws(() => values.hostValue('bad_host!'), { message: /DNS name or an IP address/ });
  t.equal(values.fingerprintValue(`sha256:${'AB:'.repeat(31)}AB`), 'ab'.repeat(32));
});
