// A handler's reply is its response schema's inferred type (server/kdc/dispatch.ts KdcHandler,
// shared/protocol/catalog.ts ResponseBody): a reply with a missing field, a wrong type or a value outside
// the wire's enum does not compile. This file is compiled with the rest of the tree
// (`npm run build`), so each `@ts-expect-error` below is itself a test: were the reply types widened
// again, the directive would be unused and the build would fail (TS2578). At run time the same replies
// are refused by the channel that seals them (ServerChannel.sealOk), with `schema` naming the field.
// The client side reads a reply as the same type (client/session.ts ClientSession.request): the last
// test shows what it may and may not read, through a real channel pair.
import t from 'tap';
import type { ClientSession } from '../../../client/session.js';
import type { HandlerContext, KdcHandler } from '../../../server/kdc/dispatch.js';
import { deriveTrafficKeys } from '../../../shared/protocol/key-schedule.js';
import { ClientChannel, ServerChannel } from '../../../shared/protocol/secure-channel.js';

const SERIAL = 'ab'.repeat(16);
/** The handlers below read nothing of their context. */
const CTX = {} as HandlerContext;

const goodToken: KdcHandler<'admin.token'> = {
  roles: ['admin'],
  handle: async () => ({ token: 't'.repeat(16), expiresAt: 1 }),
};

const missingField: KdcHandler<'admin.token'> = {
  roles: ['admin'],
  // @ts-expect-error expiresAt is required by the admin.token response schema
  handle: async () => ({ token: 't'.repeat(16) }),
};

const wrongType: KdcHandler<'ping'> = {
  roles: ['client'],
  // @ts-expect-error pong is a bool
  handle: async () => ({ pong: 'yes' }),
};

// An unknown field DOES compile: TypeScript checks excess properties of an object literal only where
// it is assigned to a declared type, not in what an async arrow function returns. The channel refuses
// it (below), so such a reply fails with `internal` at its first test instead of at build time.
const unknownField: KdcHandler<'key.sync'> = {
  roles: ['client'],
  handle: async () => ({ pushed: 0, remaining: 0, extra: 1 }),
};

const reservedState: KdcHandler<'key.get'> = {
  roles: ['client'],
  // @ts-expect-error a reserved serial is not a key yet: the wire's key states have no `reserved`
  handle: async () => ({
    serial: SERIAL,
    mode: 'kdc',
    owner: 'alice',
    peer: 'bob',
    state: 'reserved',
    createdAt: 1,
    expiresAt: 2,
    peerVerified: false,
  }),
};

const deltaOnlyReason: KdcHandler<'cert.status'> = {
  roles: ['client'],
  // @ts-expect-error RFC 5280 5.3.1: removeFromCRL "is for use with delta CRLs", never a certificate's
  handle: async () => ({ status: 'revoked', reason: 'removeFromCRL', revokedAt: 1 }),
};

function channels(): { client: ClientChannel; server: ServerChannel } {
  const keys = () => deriveTrafficKeys(Buffer.alloc(32, 21), Buffer.alloc(32, 7));
  return { client: new ClientChannel(keys()), server: new ServerChannel(keys()) };
}

t.test('a reply that does not compile is refused on the wire too', async (t) => {
  const { server } = channels();
  const REASONS =
    'unspecified|keyCompromise|cACompromise|affiliationChanged|superseded|cessationOfOperation|certificateHold|privilegeWithdrawn|aACompromise';
  const refused: [string, Record<string, unknown>, string][] = [
    ['admin.token', await missingField.handle(CTX, { name: 'bob' }), 'admin.token.b.expiresAt: missing'],
    ['ping', await wrongType.handle(CTX, {}), 'ping.b.pong: expected boolean, got string'],
    ['key.sync', await unknownField.handle(CTX, {}), 'key.sync.b.extra: unknown field'],
    [
      'key.get',
      await reservedState.handle(CTX, { serial: SERIAL }),
      'key.get.b.state: expected one of active|revoked|expired|superseded, got "reserved"',
    ],
    [
      'cert.status',
      await deltaOnlyReason.handle(CTX, { serial: 'ab' }),
      `cert.status.b.reason: expected one of ${REASONS}, got "removeFromCRL"`,
    ],
  ];
  for (const [type, body, message] of refused) {
    t.throws(() => server.sealOk(type, 1, body), { code: 'schema', message }, type);
  }
  t.equal(server.sentRecords, 0, 'nothing was sealed');
});

t.test('a well-typed reply is sealed and read back as sent', async (t) => {
  const { client, server } = channels();
  server.open(client.sealRequest('admin.token', 1, { name: 'bob' }));
  const reply = await goodToken.handle(CTX, { name: 'bob' });
  t.same(client.open(server.sealOk('admin.token', 1, reply)), {
    kind: 'ok',
    type: 'admin.token',
    id: 1,
    body: { token: 't'.repeat(16), expiresAt: 1 },
  });
});

/** A session whose requests go through a real channel pair to `answer`, as ClientSession's do. */
function loopback(answer: (type: string) => Record<string, unknown>): Pick<ClientSession, 'request'> {
  const { client, server } = channels();
  let id = 0;
  return {
    request: async (type, body) => {
      id += 1;
      const request = server.open(client.sealRequest(type, id, body));
      const reply = client.open(server.sealOk(request.type, request.id, answer(request.type)));
      if (reply.kind !== 'ok') throw new Error(`expected ok, got ${reply.kind}`);
      // As in client/session.ts: ClientChannel.open validated it against `type`'s response schema.
      return reply.body as never;
    },
  };
}

t.test("the client reads a reply as its response schema's type", async (t) => {
  const session = loopback(() => ({ pushed: 2, remaining: 0 }));
  const reply = await session.request('key.sync', {});
  const pushed: number = reply.pushed;
  t.equal(pushed, 2);
  // @ts-expect-error `remaining` is a number: no String() or cast needed, and none accepted
  const remaining: string = reply.remaining;
  t.equal(remaining, 0);
  // @ts-expect-error the key.sync reply has no `keys`
  t.equal(reply.keys, undefined);
  // @ts-expect-error a request body is typed too: key.sync takes no field (its empty map infers Record<string, never>)
  await t.rejects(session.request('key.sync', { peer: 'bob' }), {
    code: 'schema',
    message: 'key.sync.b.peer: unknown field',
  });
});
