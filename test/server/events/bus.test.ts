// The event bus: readers get what their level and types ask for, in order, stamped by the bus's clock;
// a reader that throws affects neither the emitter nor the other readers; wants() answers what any
// reader wants, so emitters on hot paths can skip building events nobody reads.
import t from 'tap';
import { EventBus } from '../../../server/events/bus.js';
import { EVENT_LEVEL, EVENT_TYPES, atLeast, type KdcEvent } from '../../../shared/events/kdc-events.js';

t.test('no readers: nothing is wanted, emit is a no-op', async (t) => {
  const bus = new EventBus();
  t.equal(bus.readers, 0);
  t.notOk(bus.wants('error'));
  t.notOk(bus.wants('kdc.warning'));
  bus.emit({ type: 'kdc.warning', message: 'nobody listens' });
  t.equal(bus.readerErrors, 0);
});

t.test('levels and types filter per reader; at is the bus clock', async (t) => {
  let now = 1000;
  const bus = new EventBus({ now: () => now });
  const all: KdcEvent[] = [];
  const infoUp: KdcEvent[] = [];
  const keysOnly: KdcEvent[] = [];
  bus.subscribe((e) => all.push(e));
  bus.subscribe((e) => infoUp.push(e), { level: 'info' });
  const off = bus.subscribe((e) => keysOnly.push(e), { types: ['key.created'] });
  t.ok(bus.wants('debug'));
  bus.emit({
    type: 'request.served',
    connection: 'c',
    name: 'a',
    role: 'client',
    request: 'ping',
    code: 'ok',
    durationMs: 1,
  });
  now = 2000;
  bus.emit({ type: 'key.created', serial: 's', owner: 'alice', peer: 'bob', mode: 'kdc' });
  t.same(
    all.map((e) => e.type),
    ['request.served', 'key.created'],
  );
  t.same(
    infoUp.map((e) => e.type),
    ['key.created'],
  );
  t.same(
    keysOnly.map((e) => [e.type, e.at]),
    [['key.created', 2000]],
  );
  off();
  bus.emit({ type: 'key.created', serial: 's2', owner: 'alice', peer: 'bob', mode: 'e2e' });
  t.equal(keysOnly.length, 1, 'unsubscribed reader gets nothing more');
  t.equal(all.length, 3);
});

t.test('wants() follows the lowest level any reader asked for', async (t) => {
  const bus = new EventBus();
  const off = bus.subscribe(() => {}, { level: 'warn' });
  t.notOk(bus.wants('request.served'), 'debug type not wanted by a warn reader');
  t.notOk(bus.wants('info'));
  t.ok(bus.wants('handshake.refused'), 'warn type wanted');
  const off2 = bus.subscribe(() => {}, { level: 'debug' });
  t.ok(bus.wants('request.served'));
  off2();
  t.notOk(bus.wants('request.served'), 'back to warn once the debug reader left');
  off();
  t.notOk(bus.wants('error'));
});

t.test('wants() is per type: a reader of some types makes no other event of their level built', async (t) => {
  const bus = new EventBus();
  const seen: string[] = [];
  const off = bus.subscribe((e) => seen.push(e.type), { types: ['request.served', 'store.commit'] });
  t.ok(bus.wants('request.served'));
  t.notOk(bus.wants('connection.opened'), 'another debug type: nobody takes it');
  t.notOk(bus.wants('prekeys.uploaded'));
  t.ok(bus.wants('debug'), 'some debug events are wanted');
  bus.emit({ type: 'connection.opened', connection: 'c1', address: '127.0.0.1' });
  bus.emit({ type: 'store.commit', callers: 1, durationMs: 1 });
  t.same(seen, ['store.commit']);
  const off2 = bus.subscribe(() => {}, { level: 'info' });
  t.notOk(bus.wants('connection.opened'), 'an info reader does not take a debug type');
  t.ok(bus.wants('handshake.completed'));
  off2();
  t.notOk(bus.wants('handshake.completed'), 'not once the info reader left');
  off();
  t.notOk(bus.wants('request.served'));
});

t.test('a throwing reader is counted and does not stop the others', async (t) => {
  const bus = new EventBus();
  const seen: string[] = [];
  bus.subscribe(() => {
    throw new Error('reader bug');
  });
  bus.subscribe((e) => seen.push(e.type));
  t.doesNotThrow(() => bus.emit({ type: 'kdc.stopped', uptimeMs: 5 }));
  t.same(seen, ['kdc.stopped']);
  t.equal(bus.readerErrors, 1);
});

t.test('every event type has a level; atLeast orders them', async (t) => {
  t.ok(EVENT_TYPES.length >= 25);
  for (const type of EVENT_TYPES) t.ok(['debug', 'info', 'warn', 'error'].includes(EVENT_LEVEL[type]), type);
  t.ok(atLeast('warn', 'info'));
  t.notOk(atLeast('debug', 'info'));
  t.ok(atLeast('error', 'error'));
});
