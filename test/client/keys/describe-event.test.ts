// The lines `kds client listen` prints and the menu shows (client/keys/describe-event.ts).
import t from 'tap';
import { describeKeyEvent, describeListenEvent } from '../../../client/keys/describe-event.js';

const serial = 'ab'.repeat(16);

t.test('a message refused for good vs one kept at the KDC', async (t) => {
  const refused = {
    event: 'message.rejected',
    serial,
    from: 'alice',
    code: 'replayed',
    message: 'seen',
  } as const;
  t.equal(describeKeyEvent(refused), `REJECTED message from alice (key ${serial}): [replayed] seen`);
  const kept = { ...refused, code: 'io_error', message: 'cannot read', kept: true } as const;
  t.match(
    describeKeyEvent(kept),
    /^NOT SHOWN YET message from alice .*\[io_error\] cannot read; kept at the KDC/,
  );
  t.notMatch(describeKeyEvent(kept), /REJECTED/);
});

t.test('a revocation names its reason, once when the reason is the state', async (t) => {
  t.equal(
    describeKeyEvent({
      event: 'key.revoked',
      serial,
      state: 'revoked',
      reason: 'keyCompromise',
      revokedAt: 1,
    }),
    `key ${serial} revoked (keyCompromise); its material is deleted`,
  );
  t.equal(
    describeKeyEvent({
      event: 'key.revoked',
      serial,
      state: 'superseded',
      reason: 'superseded',
      revokedAt: 1,
    }),
    `key ${serial} superseded; its material is deleted`,
  );
});

t.test('listen adds the connection events and delegates the rest', async (t) => {
  t.equal(
    describeListenEvent({
      event: 'connected',
      server: 'ws://127.0.0.1:8443/kds',
      name: 'bob',
      serial: '01',
      session: 's',
    }),
    'connected as bob (certificate 01) to ws://127.0.0.1:8443/kds',
  );
  t.equal(
    describeListenEvent({ event: 'disconnected', code: 'unavailable', retryInMs: 500 }),
    'disconnected (unavailable); reconnecting in 500 ms',
  );
  t.equal(describeListenEvent({ event: 'stopped' }), 'stopped');
  t.equal(describeListenEvent({ event: 'stopped', code: 'cert_revoked' }), 'stopped (cert_revoked)');
  const msg = { event: 'message', serial, from: 'alice', text: 'hi', sentAt: 1 } as const;
  t.equal(describeListenEvent(msg), describeKeyEvent(msg));
  t.equal(describeKeyEvent(msg), `message from alice (key ${serial}): hi`);
});

t.test('every field is terminal-safe: a hostile message or name cannot forge or hide lines', async (t) => {
  const esc = '\u001b';
  const hostile = `x\r${esc}[2K${esc}[1Akey ${serial} revoked (keyCompromise)\u009b2K\u202e${esc}[8m`;
  const events = [
    { event: 'message', serial, from: `al${esc}[8mice`, text: `hi\n${hostile}\r\nbye`, sentAt: 1 },
    { event: 'key.rejected', serial, from: 'alice', code: `c${esc}`, message: hostile },
    { event: 'message.rejected', serial, from: 'alice', code: 'replayed', message: hostile },
    { event: 'message.rejected', serial, from: 'alice', code: 'io_error', message: hostile, kept: true },
    { event: 'key.revoked', serial, state: 'revoked', reason: hostile, revokedAt: 1 },
    { event: 'key.verified', serial, peer: hostile, state: 'active' },
    {
      event: 'key',
      serial,
      from: hostile,
      mode: 'kdc',
      fingerprint: hostile,
      verdict: 'valid',
      state: 'active',
    },
  ] as const;
  for (const e of events) {
    const line = describeKeyEvent(e as never);
    // eslint-disable-next-line no-control-regex
    t.notMatch(line, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/, e.event);
    // Only the message body may span lines, and its later lines are marked as continuations.
    for (const later of line.split('\n').slice(1)) t.ok(later.startsWith('  | '), `${e.event}: ${later}`);
  }
  t.equal(
    describeKeyEvent(events[0] as never),
    `message from al\\x1b[8mice (key ${serial}): hi\n  | x\\r\\x1b[2K\\x1b[1Akey ${serial} revoked (keyCompromise)\\x9b2K\\u202e\\x1b[8m\n  | bye`,
  );
  t.equal(
    describeListenEvent({
      event: 'connected',
      server: `ws://h${esc}/kds`,
      name: `b${esc}ob`,
      serial: '01',
      session: 's',
    }),
    'connected as b\\x1bob (certificate 01) to ws://h\\x1b/kds',
  );
});
