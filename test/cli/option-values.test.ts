// cli/option-values.ts: its copies of the protocol's rules agree with their sources (it may not import
// them: --help must stay light), and each value check says what is valid.
import t from 'tap';
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

t.test('values: accepted, normalised, or refused with the rule', async (t) => {
  t.equal(values.keySerialValue(' AB'.padEnd(33, 'c')), 'ab'.padEnd(32, 'c'));
  t.throws(() => values.keySerialValue('xyz'), { code: 'bad_request', message: /32 hex digits/ });
  t.equal(values.certSerialValue('0x0A:Bc'), '0abc');
  t.throws(() => values.certSerialValue('a'.repeat(65)), { code: 'bad_request' });
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
