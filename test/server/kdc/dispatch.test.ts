import t from 'tap';
import {
  HandlerRegistry,
  type HandlerContext,
  type Identity,
  type SessionHandle,
} from '../../../server/kdc/dispatch.js';
import { SessionTable } from '../../../server/kdc/session-table.js';

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
  const reg = new HandlerRegistry();
  reg.register('echo', { roles: ['client', 'admin'], handle: async (_ctx, body) => ({ echoed: body.v }) });
  reg.register('admin.only', { roles: ['admin'], handle: async () => ({ ok: true }) });
  t.same(await reg.dispatch(ctxFor('client'), 'echo', { v: 7 }), { echoed: 7 });
  t.same(await reg.dispatch(ctxFor('admin'), 'admin.only', {}), { ok: true });
  await t.rejects(reg.dispatch(ctxFor('client'), 'admin.only', {}), { code: 'forbidden' });
  await t.rejects(reg.dispatch(ctxFor('anonymous'), 'echo', {}), { code: 'not_authenticated' });
  await t.rejects(reg.dispatch(ctxFor('admin'), 'nope', {}), { code: 'unknown_type' });
  await t.rejects(reg.dispatch(ctxFor('admin'), 'constructor', {}), { code: 'unknown_type' });
  t.same(reg.types(), ['admin.only', 'echo']);
});

t.test('registering twice or with no roles is a programming error', async (t) => {
  const reg = new HandlerRegistry();
  reg.register('x', { roles: ['client'], handle: async () => ({}) });
  t.throws(() => reg.register('x', { roles: ['client'], handle: async () => ({}) }), /twice/);
  t.throws(() => reg.register('y', { roles: [], handle: async () => ({}) }), /no role/);
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
