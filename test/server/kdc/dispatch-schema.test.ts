// The request schema is the handler's type (server/kdc/dispatch.ts): a body the schema refuses never
// reaches a handler. Each wrong-typed field below is answered with `schema` naming the field, before any
// handler runs, and the session stays open; a body of the right types then reaches the handler.
import t from 'tap';
import { HandlerRegistry, type Handler } from '../../../server/kdc/dispatch.js';
import { KDC_HANDLERS } from '../../../server/kdc-handlers/index.js';
import { encodeValue } from '../../../shared/protocol/codec.js';
import { startFrameHarness } from '../../helpers/frame-harness.js';
import { startTestKdc } from '../../helpers/kdc-in-process.js';

t.setTimeout(120_000);

const { kdc, dataDir } = await startTestKdc(t);

// The KDC's own handlers, each counting the bodies it is given.
const calls = new Map<string, number>();
const counted = new HandlerRegistry(
  Object.fromEntries(
    Object.entries(KDC_HANDLERS).map(([type, handler]: [string, Handler<never, Record<string, unknown>>]) => [
      type,
      {
        roles: handler.roles,
        handle: (ctx, body: never) => {
          calls.set(type, (calls.get(type) ?? 0) + 1);
          return handler.handle(ctx, body);
        },
      } satisfies Handler<never, Record<string, unknown>>,
    ]),
  ),
);

const WRONG: { type: string; body: Record<string, unknown>; message: string }[] = [
  {
    type: 'cert.status',
    body: { serial: 171 },
    message: 'cert.status.b.serial: expected string, got number',
  },
  { type: 'ping', body: { data: 'not bytes' }, message: 'ping.b.data: expected bytes, got string' },
  {
    type: 'key.deposit',
    body: {
      serial: '0'.repeat(32),
      ephemeral: 'x'.repeat(32),
      signature: Buffer.alloc(64),
      ciphertext: Buffer.alloc(60),
    },
    message: 'key.deposit.b.ephemeral: expected bytes, got string',
  },
  {
    type: 'key.prekeys',
    body: { prekeys: [{ id: '0'.repeat(16), publicKey: [1, 2, 3], signature: Buffer.alloc(64) }] },
    message: 'key.prekeys.b.prekeys[0].publicKey: expected bytes, got array',
  },
  {
    type: 'key.ack',
    body: { ids: ['1'] },
    message: 'key.ack.b.ids[0]: expected unsigned integer, got string',
  },
  {
    type: 'msg.send',
    body: {
      to: 'bob',
      serial: '0'.repeat(32),
      seq: 1.5,
      nonce: Buffer.alloc(12),
      ciphertext: Buffer.alloc(16),
    },
    message: 'msg.send.b.seq: expected unsigned integer, got 1.5',
  },
  { type: 'key.list', body: { peer: 'bob' }, message: 'key.list.b.peer: unknown field' },
];

t.test('a wrong-typed field is refused with `schema` before any handler runs', async (t) => {
  const harness = await startFrameHarness(kdc, dataDir, { registry: counted });
  const session = await (await harness.fixedHandshake('client', 'wrong-types')).open();
  let id = 0;
  for (const { type, body, message } of WRONG) {
    session.send(session.seal(encodeValue({ t: type, id: ++id, b: body })));
    t.same(await session.next(), { t: 'error', id, code: 'schema', message }, type);
  }
  t.same([...calls.keys()], [], 'no handler was called');
  t.equal(session.conn.closed, false, 'the session stays open');

  session.send(session.seal(encodeValue({ t: 'ping', id: ++id, b: { data: Buffer.from('hi') } })));
  t.same(await session.next(), { t: 'ok', id, b: { pong: true, data: Buffer.from('hi') } });
  t.equal(calls.get('ping'), 1, 'a body of the right types reaches the handler');
  t.same(harness.logs, [], 'nothing was logged as an internal error');
  await session.close();
});
