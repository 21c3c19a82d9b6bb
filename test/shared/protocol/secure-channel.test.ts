// shared/protocol/secure-channel.ts: requests, responses and pushes inside records, validated against
// the catalog on both sides, and the errors a broken or hostile peer gets.
import t from 'tap';
import fc from 'fast-check';
import { KdsError, PolicyError } from '../../../shared/errors.js';
import { encodeValue } from '../../../shared/protocol/codec.js';
import { deriveTrafficKeys } from '../../../shared/protocol/key-schedule.js';
import { MAX_FRAME_BYTES, MAX_RECORD_PLAINTEXT } from '../../../shared/protocol/limits.js';
import { defineAppType } from '../../../shared/protocol/catalog.js';
import { s } from '../../../shared/protocol/schema.js';
import { decodeFrame, encodeFrame } from '../../../shared/protocol/messages.js';
import { RecordSealer } from '../../../shared/protocol/record-layer.js';
import { ClientChannel, ServerChannel } from '../../../shared/protocol/secure-channel.js';

let n = 0;
function channels(limit?: number) {
  n += 1;
  const keys = () => deriveTrafficKeys(Buffer.alloc(32, n), Buffer.alloc(32, 7));
  const opts = limit === undefined ? {} : { sequenceLimit: limit };
  return { client: new ClientChannel(keys(), opts), server: new ServerChannel(keys(), opts), keys: keys() };
}

/** What a hostile server could send: any map, sealed with the real server->client key. */
function rawServerRecord(tx: RecordSealer, value: Record<string, unknown>): Buffer {
  return encodeFrame({ t: 'r', c: tx.seal(encodeValue(value)) });
}

t.test('request -> ok, request -> error, push', async (t) => {
  const { client, server } = channels();
  t.equal(client.sessionId, server.sessionId);
  t.match(client.sessionId, /^[0-9a-f]{32}$/);
  const r1 = client.sealRequest('cert.status', 1, { serial: 'ab01' });
  t.same(decodeFrame(r1).t, 'r', 'on the wire it is a record');
  t.same(client.pendingIds, [1]);
  t.same(server.open(r1), { type: 'cert.status', id: 1, body: { serial: 'ab01' } });
  t.same(client.open(server.sealOk('cert.status', 1, { status: 'good' })), {
    kind: 'ok',
    type: 'cert.status',
    id: 1,
    body: { status: 'good' },
  });
  t.same(client.pendingIds, []);

  server.open(client.sealRequest('admin.token', 2, { name: 'bob' }));
  const err = client.open(server.sealError(2, 'forbidden', 'admin only'));
  t.equal(err.kind, 'error');
  if (err.kind === 'error') {
    t.equal(err.type, 'admin.token');
    t.ok(err.error instanceof PolicyError, 'forbidden is a PolicyError on both sides');
    t.match(err.error, { code: 'forbidden', message: 'admin only' });
  }
  t.same(
    client.open(server.sealPush('cert.revoked', { serial: 'ab01', reason: 'keyCompromise', revokedAt: 5 })),
    {
      kind: 'push',
      type: 'cert.revoked',
      body: { serial: 'ab01', reason: 'keyCompromise', revokedAt: 5 },
    },
  );
  t.equal(client.sentRecords, 2);
  t.equal(server.sentRecords, 3);
});

t.test('the sender validates before sealing (nothing consumed on a bug)', async (t) => {
  const { client, server } = channels();
  t.throws(() => client.sealRequest('cert.status', 1, { serial: 'XYZ' }), {
    code: 'schema',
    message: 'cert.status.b.serial: expected string matching ^[0-9a-f]+$',
  });
  t.throws(() => client.sealRequest('no.such', 1, {}), {
    code: 'unknown_type',
    message: 'unknown request type "no.such"',
  });
  t.throws(
    () => client.sealRequest('ready', 1, {}),
    { code: 'unknown_type' },
    'a push type is not a request',
  );
  t.throws(() => client.sealRequest('ping', -1, {}), { code: 'schema' });
  t.throws(() => client.sealRequest('ping', 2 ** 32, {}), { code: 'schema' });
  t.equal(client.sentRecords, 0);
  server.open(client.sealRequest('ping', 5, {}));
  t.throws(() => client.sealRequest('ping', 5, {}), {
    code: 'bad_request',
    message: 'request id 5 is already in flight',
  });
  t.throws(() => server.sealOk('ping', 5, { pong: 'yes' }), { code: 'schema' });
  t.throws(() => server.sealPush('ping', {}), { code: 'unknown_type' });
  t.throws(() => client.sealRequest('ping', 6, { data: Buffer.alloc(2000) }), { code: 'schema' });
  t.equal(server.sentRecords, 0);
  // Optional fields given as undefined are dropped, never encoded.
  server.open(client.sealRequest('cert.revoke', 7, { serial: undefined, name: 'bob', reason: 'superseded' }));
  t.pass('undefined optionals encode');
});

t.test('the server rejects bad requests, with the id when it was readable', async (t) => {
  const { keys } = channels();
  const server = new ServerChannel(keys);
  const tx = new RecordSealer(keys.c2sKey, keys.c2sIv, 'c2s');
  const send = (v: Record<string, unknown>) => encodeFrame({ t: 'r', c: tx.seal(encodeValue(v)) });
  t.throws(() => server.open(send({ t: 'nope.type', id: 3, b: {} })), {
    code: 'unknown_type',
    details: { id: 3 },
  });
  t.throws(() => server.open(send({ t: 'ping', id: 4, b: { extra: 1 } })), {
    code: 'schema',
    message: 'ping.b.extra: unknown field',
    details: { id: 4 },
  });
  t.throws(() => server.open(send({ t: 'ping', id: 5 })), {
    code: 'schema',
    message: 'request.b: missing',
    details: { id: 5 },
  });
  t.throws(() => server.open(send({ t: 'ping', id: 6, b: {}, x: 1 })), {
    code: 'schema',
    message: 'request.x: unknown field',
  });
  t.throws(() => server.open(send({ t: 'ping', b: {} })), { code: 'schema', message: /request.id/ });
  t.throws(() => server.open(send({ t: 'Ping!', id: 1, b: {} })), {
    code: 'schema',
    message: 'request.t: expected a message type',
  });
  t.throws(
    () => server.open(send({ t: 'ok', id: 1, b: {} })),
    { code: 'unknown_type' },
    'envelope names are not requests',
  );
  // A plaintext frame after the handshake, and a garbage record.
  t.throws(() => server.open(encodeFrame({ t: 'alert', code: 'x', message: 'y' })), {
    code: 'unexpected_message',
  });
  t.throws(() => server.open(Buffer.from('garbage')), { code: 'bad_frame' });
  t.throws(() => server.open(encodeFrame({ t: 'r', c: Buffer.alloc(10) })), { code: 'record_auth' });
});

t.test('the client rejects unsolicited or malformed server messages', async (t) => {
  const { keys } = channels();
  const mk = () => ({
    client: new ClientChannel(keys),
    tx: new RecordSealer(keys.s2cKey, keys.s2cIv, 's2c'),
  });
  let { client, tx } = mk();
  t.throws(() => client.open(rawServerRecord(tx, { t: 'ok', id: 9, b: {} })), {
    code: 'unexpected_message',
    message: 'ok for unknown request id 9',
  });
  ({ client, tx } = mk());
  client.sealRequest('ping', 1, {});
  t.throws(() => client.open(rawServerRecord(tx, { t: 'ok', id: 1, b: { pong: 1 } })), {
    code: 'schema',
    message: 'ping.b.pong: expected boolean, got number',
  });
  ({ client, tx } = mk());
  t.throws(() => client.open(rawServerRecord(tx, { t: 'key.secret.push', b: {} })), {
    code: 'unknown_type',
  });
  ({ client, tx } = mk());
  t.throws(
    () => client.open(rawServerRecord(tx, { t: 'cert.status', b: { serial: '01' } })),
    { code: 'unknown_type' },
    'a request type is not a push',
  );
  ({ client, tx } = mk());
  client.sealRequest('ping', 1, {});
  t.throws(() => client.open(rawServerRecord(tx, { t: 'error', id: 1, code: 'Bad Code', message: 'x' })), {
    code: 'schema',
  });
  ({ client, tx } = mk());
  client.sealRequest('ping', 1, {});
  const unknownCode = client.open(
    rawServerRecord(tx, { t: 'error', id: 1, code: 'from_the_future', message: 'x' }),
  );
  t.equal(unknownCode.kind === 'error' && unknownCode.error.code, 'internal');
  ({ client, tx } = mk());
  t.throws(() => client.open(rawServerRecord(tx, { t: 'ready', b: {}, id: 3 })), {
    code: 'schema',
    message: 'push.id: unknown field',
  });
});

t.test('records: replay and reorder close the channel; the sequence limit applies', async (t) => {
  const { client, server } = channels();
  const a = client.sealRequest('ping', 1, {});
  const b = client.sealRequest('ping', 2, {});
  server.open(a);
  t.throws(() => server.open(a), { code: 'record_auth' }, 'replayed');
  const c2 = channels();
  c2.client.sealRequest('ping', 1, {});
  const second = c2.client.sealRequest('ping', 2, {});
  t.throws(() => c2.server.open(second), { code: 'record_auth' }, 'reordered / dropped');
  void b;
  const lim = channels(2);
  lim.client.sealRequest('ping', 1, {});
  lim.client.sealRequest('ping', 2, {});
  t.throws(() => lim.client.sealRequest('ping', 3, {}), { code: 'sequence_exhausted' });
});

t.test(
  'size: a message larger than one record is refused before sealing; error messages are clipped',
  async (t) => {
    const { client, server } = channels();
    defineAppType('test.big', { push: s.map({ blob: s.bytes({ max: 2 * MAX_RECORD_PLAINTEXT }) }) });
    t.throws(() => server.sealPush('test.big', { blob: Buffer.alloc(MAX_RECORD_PLAINTEXT) }), {
      code: 'frame_too_large',
    });
    t.equal(server.sentRecords, 0, 'nothing was sealed');
    const fits = server.sealPush('test.big', { blob: Buffer.alloc(MAX_RECORD_PLAINTEXT - 100) });
    t.ok(fits.length <= MAX_FRAME_BYTES, 'the largest record still fits in one frame');
    t.equal(client.open(fits).kind, 'push');
    client.sealRequest('ping', 1, {});
    const e = client.open(server.sealError(1, 'internal', 'x'.repeat(10_000)));
    t.equal(e.kind === 'error' && e.error.message.length, 512);
  },
);

t.test('exporter', async (t) => {
  const { client, server } = channels();
  t.same(
    client.exportKeyingMaterial('prekey binding', 32),
    server.exportKeyingMaterial('prekey binding', 32),
  );
  t.not(
    client.exportKeyingMaterial('a', 32).toString('hex'),
    client.exportKeyingMaterial('b', 32).toString('hex'),
  );
  t.throws(() => client.exportKeyingMaterial('Bad Label', 32), { code: 'bad_request' });
});

t.test('property: random core requests round-trip through the channel', async (t) => {
  const { client, server } = channels();
  let id = 0;
  const serial = fc.stringMatching(/^[0-9a-f]{1,64}$/);
  const name = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/);
  const reason = fc.constantFrom('unspecified', 'keyCompromise', 'superseded', 'aACompromise');
  const request = fc.oneof(
    fc.record({ type: fc.constant('cert.status'), body: fc.record({ serial }) }),
    fc.record({
      type: fc.constant('ping'),
      body: fc.record(
        { data: fc.uint8Array({ maxLength: 1024 }).map((u) => Buffer.from(u)) },
        { requiredKeys: [] },
      ),
    }),
    fc.record({
      type: fc.constant('cert.revoke'),
      body: fc.record({ name, reason }, { requiredKeys: ['reason'] }),
    }),
    fc.record({
      type: fc.constant('admin.token'),
      body: fc.record({ name, ttl: fc.nat({ max: 604800000 }) }, { requiredKeys: ['name'] }),
    }),
  );
  fc.assert(
    fc.property(request, ({ type, body }) => {
      id += 1;
      const got = server.open(client.sealRequest(type, id, body));
      client.open(server.sealError(id, 'internal', 'x')); // settle the pending id
      return got.type === type && got.id === id && JSON.stringify(got.body) === JSON.stringify(body);
    }),
    { numRuns: 300 },
  );
  t.pass();
});

t.test(
  'property: mutated records always fail with record_auth (or a frame error), never anything else',
  async (t) => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const { client, server } = channels();
        const frame = client.sealRequest('ping', 1, { data: Buffer.from('payload') });
        const altered = Buffer.from(frame);
        altered[at % altered.length]! ^= x;
        try {
          server.open(altered);
          return false;
        } catch (err) {
          return (
            err instanceof KdsError &&
            [
              'record_auth',
              'bad_frame',
              'schema',
              'unknown_type',
              'unexpected_message',
              'frame_too_large',
            ].includes(err.code)
          );
        }
      }),
      { numRuns: 500 },
    );
    t.pass();
  },
);
