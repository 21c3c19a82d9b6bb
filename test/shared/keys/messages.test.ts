// The key-distribution catalog entries (shared/protocol/messages-keys.ts): registered through the
// catalog, valid bodies pass, malformed ones fail with `schema` naming the field.
import t from 'tap';
import { getAppType } from '../../../shared/protocol/catalog.js';
import { validate } from '../../../shared/protocol/schema.js';
import { KEY_PUSHES, KEY_REQUESTS, MAX_HELD_PREKEYS } from '../../../shared/protocol/messages-keys.js';
import { newKeySerial, newPrekeyId } from '../../../shared/keys/serial.js';

const serial = newKeySerial();

t.test('every key type is in the catalog', async (t) => {
  for (const name of [...Object.keys(KEY_REQUESTS), ...Object.keys(KEY_PUSHES)]) {
    t.ok(getAppType(name), name);
  }
  t.ok(getAppType('key.deposit')?.request);
  t.ok(getAppType('key.delivered')?.push);
});

t.test('requests: valid bodies pass, bad fields are named', async (t) => {
  const deposit = {
    serial,
    ephemeral: Buffer.alloc(32),
    signature: Buffer.alloc(256),
    ciphertext: Buffer.alloc(60),
  };
  t.doesNotThrow(() => validate(KEY_REQUESTS['key.deposit'].request, deposit, 'key.deposit'));
  t.throws(
    () =>
      validate(
        KEY_REQUESTS['key.deposit'].request,
        { ...deposit, ciphertext: Buffer.alloc(59) },
        'key.deposit',
      ),
    {
      code: 'schema',
      message: 'key.deposit.ciphertext: expected 60 bytes, got 59',
    },
  );
  t.throws(
    () =>
      validate(
        KEY_REQUESTS['key.deposit'].request,
        { ...deposit, serial: serial.toUpperCase() },
        'key.deposit',
      ),
    { code: 'schema' },
  );
  t.throws(() => validate(KEY_REQUESTS['key.reserve'].request, { peer: 'bob', extra: 1 }, 'key.reserve'), {
    code: 'schema',
    message: /extra: unknown field/,
  });
  t.throws(
    () =>
      validate(KEY_REQUESTS['key.revoke'].request, { serial, reason: 'certificateRevoked' }, 'key.revoke'),
    { code: 'schema' },
    'the cascade reason is not for clients',
  );
  for (const type of ['key.revoke', 'admin.key.revoke'] as const) {
    for (const reason of ['certificateHold', 'cACompromise', 'aACompromise']) {
      t.throws(
        () => validate(KEY_REQUESTS[type].request, { serial, reason }, type),
        { code: 'schema' },
        `${type} ${reason}`,
      );
    }
    t.doesNotThrow(() => validate(KEY_REQUESTS[type].request, { serial, reason: 'keyCompromise' }, type));
  }
  t.throws(() => validate(KEY_REQUESTS['key.ack'].request, { ids: [] }, 'key.ack'), { code: 'schema' });
  t.throws(
    () =>
      validate(
        KEY_REQUESTS['msg.send'].request,
        { to: 'bob', serial, seq: 1, nonce: Buffer.alloc(12), ciphertext: Buffer.alloc(40_000) },
        'msg.send',
      ),
    { code: 'schema', message: /msg\.send\.ciphertext/ },
  );
  // v2 messages: `seq` is required on msg.send and on the msg push, and a non-negative safe integer.
  const message = { to: 'bob', serial, seq: 1, nonce: Buffer.alloc(12), ciphertext: Buffer.alloc(20) };
  t.doesNotThrow(() => validate(KEY_REQUESTS['msg.send'].request, message, 'msg.send'));
  const { seq: _seq, ...v1Message } = message;
  t.throws(() => validate(KEY_REQUESTS['msg.send'].request, v1Message, 'msg.send'), {
    code: 'schema',
    message: /seq/,
  });
  t.throws(() => validate(KEY_REQUESTS['msg.send'].request, { ...message, seq: -1 }, 'msg.send'), {
    code: 'schema',
  });
  t.throws(() => validate(KEY_REQUESTS['msg.send'].request, { ...message, seq: 2 ** 53 }, 'msg.send'), {
    code: 'schema',
  });
  const push = {
    d: 1,
    from: 'alice',
    to: 'bob',
    serial,
    seq: 3,
    nonce: Buffer.alloc(12),
    ciphertext: Buffer.alloc(20),
    sentAt: 5,
  };
  t.doesNotThrow(() => validate(KEY_PUSHES.msg, push, 'msg'));
  const { seq: _pushSeq, ...v1Push } = push;
  t.throws(() => validate(KEY_PUSHES.msg, v1Push, 'msg'), { code: 'schema', message: /seq/ });
  const prekeys = Array.from({ length: 3 }, () => ({
    id: newPrekeyId(),
    publicKey: Buffer.alloc(32),
    signature: Buffer.alloc(256),
  }));
  t.doesNotThrow(() => validate(KEY_REQUESTS['key.prekeys'].request, { prekeys }, 'key.prekeys'));
  t.doesNotThrow(() =>
    validate(KEY_REQUESTS['key.prekeys'].request, { prekeys: [], listHeld: true }, 'key.prekeys'),
  );
  t.throws(() => validate(KEY_REQUESTS['key.prekeys'].request, { prekeys: [], listHeld: 1 }, 'key.prekeys'), {
    code: 'schema',
  });
  // The status reply lists the held prekey ids (bounded); no other new field is accepted.
  const status = KEY_REQUESTS['key.prekeys'].response;
  const held = Array.from({ length: MAX_HELD_PREKEYS }, () => newPrekeyId());
  t.doesNotThrow(() => validate(status, { stock: 3, wanted: 7, held }, 'key.prekeys'));
  t.doesNotThrow(() => validate(status, { stock: 3, wanted: 7 }, 'key.prekeys'), 'held is optional');
  t.throws(() => validate(status, { stock: 3, wanted: 7, held: [...held, newPrekeyId()] }, 'key.prekeys'), {
    code: 'schema',
  });
  t.throws(() => validate(status, { stock: 3, wanted: 7, held: ['XYZ'] }, 'key.prekeys'), { code: 'schema' });
  t.throws(() => validate(status, { stock: 3, wanted: 7, orphans: [] }, 'key.prekeys'), {
    code: 'schema',
    message: /orphans: unknown field/,
  });
});

t.test('key.delivered: e2e carries the exchange and never a key; kdc carries only the key', async (t) => {
  const common = {
    d: 1,
    serial,
    from: 'alice',
    fromCertSerial: 'aa',
    to: 'bob',
    toCertSerial: 'bb',
    createdAt: 1,
    expiresAt: 2,
  };
  const e2e = {
    ...common,
    mode: 'e2e',
    fromCert: Buffer.alloc(100),
    prekeyId: newPrekeyId(),
    ephemeral: Buffer.alloc(32),
    signature: Buffer.alloc(256),
    ciphertext: Buffer.alloc(60),
  };
  t.doesNotThrow(() => validate(KEY_PUSHES['key.delivered'], e2e, 'key.delivered'));
  t.throws(() => validate(KEY_PUSHES['key.delivered'], { ...e2e, key: Buffer.alloc(32) }, 'key.delivered'), {
    code: 'schema',
  });
  const { ciphertext: _c, ...noCiphertext } = e2e;
  t.throws(() => validate(KEY_PUSHES['key.delivered'], noCiphertext, 'key.delivered'), { code: 'schema' });
  t.doesNotThrow(() =>
    validate(KEY_PUSHES['key.delivered'], { ...common, mode: 'kdc', key: Buffer.alloc(32) }, 'key.delivered'),
  );
  t.throws(() => validate(KEY_PUSHES['key.delivered'], { ...common, mode: 'kdc' }, 'key.delivered'), {
    code: 'schema',
  });
  // A KDC-generated key has no sender-side exchange: nothing of flow 1 may ride along (docs/keys.md
  // "Flow 2": the receiver verifies nothing of the sender's, so a `fromCert` would only mislead).
  for (const [field, value] of [
    ['fromCert', Buffer.alloc(100)],
    ['prekeyId', newPrekeyId()],
    ['ephemeral', Buffer.alloc(32)],
    ['signature', Buffer.alloc(256)],
    ['ciphertext', Buffer.alloc(60)],
  ] as const) {
    t.throws(
      () =>
        validate(
          KEY_PUSHES['key.delivered'],
          { ...common, mode: 'kdc', key: Buffer.alloc(32), [field]: value },
          'key.delivered',
        ),
      { code: 'schema', message: 'key.delivered: a kdc delivery carries the key and none of the e2e fields' },
      `kdc with ${field}`,
    );
  }
});
