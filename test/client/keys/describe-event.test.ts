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

t.test('listen adds the connection events and delegates the rest', async (t) => {
  t.equal(
    describeListenEvent({ event: 'connected', name: 'bob', serial: '01', session: 's' }),
    'connected as bob (certificate 01)',
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
