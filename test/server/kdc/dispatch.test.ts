import t from 'tap';
import {
  HandlerRegistry,
  type HandlerContext,
  type Identity,
  type KdcHandler,
  type KdcHandlers,
  type SessionHandle,
} from '../../../server/kdc/dispatch.js';
import { SessionTable } from '../../../server/kdc/session-table.js';
import { KDC_HANDLERS } from '../../../server/kdc-handlers/index.js';
import { appTypeNames, getAppType } from '../../../shared/protocol/catalog.js';

function fakeSession(identity: Identity): SessionHandle {
  return {
    id: `s-${identity.name}-${Math.random()}`,
    identity,
    remoteAddress: '127.0.0.1',
    push: () => {},
    close: async () => {},
    closeAfterReply: () => {},
    closingAfterReply: false,
    closed: false,
    takeResumptionSecret: () => undefined,
  };
}

function ctxFor(role: Identity['role']): HandlerContext {
  const identity: Identity = {
    name: role === 'anonymous' ? '' : 'alice',
    serialHex: role === 'anonymous' ? '' : 'ab',
    role,
    expiresAt: 0,
  };
  return { session: fakeSession(identity), identity, kdc: {} as HandlerContext['kdc'] };
}

t.test('dispatch: unknown type, role checks, then the handler', async (t) => {
  const reg = new HandlerRegistry({
    echo: { roles: ['client', 'admin'], handle: async (_ctx, body: { v: number }) => ({ echoed: body.v }) },
    'admin.only': { roles: ['admin'], handle: async () => ({ ok: true }) },
  });
  t.same(await reg.dispatch(ctxFor('client'), 'echo', { v: 7 }), { echoed: 7 });
  t.same(await reg.dispatch(ctxFor('admin'), 'admin.only', {}), { ok: true });
  await t.rejects(reg.dispatch(ctxFor('client'), 'admin.only', {}), { code: 'forbidden' });
  await t.rejects(reg.dispatch(ctxFor('anonymous'), 'echo', {}), { code: 'not_authenticated' });
  await t.rejects(reg.dispatch(ctxFor('admin'), 'nope', {}), { code: 'unknown_type' });
  await t.rejects(reg.dispatch(ctxFor('admin'), 'constructor', {}), { code: 'unknown_type' });
  t.same(reg.types(), ['admin.only', 'echo']);
  t.same(reg.rolesOf('admin.only'), ['admin']);
  t.equal(reg.rolesOf('nope'), undefined);
});

t.test('a handler that allows no role is a programming error', async (t) => {
  t.throws(() => new HandlerRegistry({ y: { roles: [], handle: async () => ({}) } }), /y allows no role/);
});

t.test("the KDC's table serves every request type of the catalog, each for some role", async (t) => {
  const registry = new HandlerRegistry(KDC_HANDLERS);
  const requests = appTypeNames().filter((n) => getAppType(n)!.request !== undefined);
  t.same(registry.types(), requests);
  for (const type of requests) t.ok((registry.rolesOf(type) ?? []).length > 0, type);
});

// Every `@ts-expect-error` line below is a compile-time test: had the table stopped checking what it
// checks, tsc would report the directive as unused and fail the build. The same values then run, as
// untyped code would, to show what the type keeps out.
t.test('the handler table is typed by the message catalog', async (t) => {
  const { ping: _ping, ...withoutPing } = KDC_HANDLERS;
  // @ts-expect-error a request type without a handler: `ping` is missing
  const missing: KdcHandlers = withoutPing;
  await t.rejects(new HandlerRegistry(missing).dispatch(ctxFor('client'), 'ping', {}), {
    code: 'unknown_type',
  });

  // @ts-expect-error a handler of another request type: cert.status reads a `serial` ping has not
  const swapped: KdcHandlers = { ...KDC_HANDLERS, ping: KDC_HANDLERS['cert.status'] };
  t.equal(swapped.ping, KDC_HANDLERS['cert.status']);

  const extra: KdcHandlers = {
    ...KDC_HANDLERS,
    // @ts-expect-error a handler for a type the catalog does not define
    'no.such.type': { roles: ['client'], handle: async () => ({}) },
  };
  t.ok(new HandlerRegistry(extra).types().includes('no.such.type'));

  const wrongBody: KdcHandler<'cert.status'> = {
    roles: ['client'],
    // @ts-expect-error cert.status's serial is a string (its schema's inferred type), not a number
    handle: async (_ctx, body: { serial: number }) => ({ status: body.serial > 0 ? 'good' : 'unknown' }),
  };
  t.same(await wrongBody.handle(ctxFor('client'), { serial: 'ab' }), { status: 'unknown' });

  const moreThanValidated: KdcHandler<'ping'> = {
    roles: ['client'],
    // @ts-expect-error a handler cannot ask for a field its schema does not guarantee
    handle: async (_ctx, body: { data?: Buffer; name: string }) => ({ pong: body.name.length > 0 }),
  };
  await t.rejects(moreThanValidated.handle(ctxFor('client'), {}), TypeError);

  const unknownField: KdcHandler<'admin.token'> = {
    roles: ['admin'],
    // @ts-expect-error admin.token's body has `name` and `ttl`, no `serial`
    handle: async (_ctx, body) => ({ serial: body.serial }),
  };
  t.same(await unknownField.handle(ctxFor('admin'), { name: 'bob' }), {});
});

t.test('session table indexes by serial and name; delete is idempotent', async (t) => {
  const table = new SessionTable();
  const a1 = fakeSession({ name: 'alice', serialHex: 'aa', role: 'client', expiresAt: 0 });
  const a2 = fakeSession({ name: 'alice', serialHex: 'aa', role: 'client', expiresAt: 0 });
  const b = fakeSession({ name: 'bob', serialHex: 'bb', role: 'client', expiresAt: 0 });
  table.add(a1);
  table.add(a2);
  table.add(b);
  t.equal(table.size, 3);
  t.equal(table.bySerial('aa').length, 2);
  t.same(table.byName('bob'), [b]);
  table.delete(a1);
  table.delete(a1);
  t.same(table.bySerial('aa'), [a2]);
  table.delete(a2);
  t.same(table.bySerial('aa'), []);
  t.same(table.byName('alice'), []);
  t.equal(table.size, 1);
});
