// Deliveries across KDC nodes (server/kdc/cluster-push.ts): a KeyService given a node name announces
// every notice it queues on DELIVERY_CHANNEL, in its transaction; the service of another node pushes an
// announced notice to its own sessions, read from the store, and ignores its own announcements, those
// for identities with no session there, notices already acknowledged, and payloads that are not
// announcements. Two services on one store stand for two nodes (the store's notifications reach both).
import t from 'tap';
import type * as Tap from 'tap';
import { DELIVERY_CHANNEL, decodeAnnouncement } from '../../../server/keys/deliveries.js';
import type { KeyService } from '../../../server/keys/service.js';
import { harness, type Harness, type Pushed } from './fixtures.js';

t.setTimeout(120_000);

interface Nodes {
  h: Harness;
  one: KeyService;
  two: KeyService;
  online1: Map<string, Pushed[]>;
  online2: Map<string, Pushed[]>;
  heard: string[];
  /** Every announcement heard so far has been handled by both nodes. */
  settled(): Promise<void>;
}

async function twoNodes(t: Tap.Test): Promise<Nodes> {
  const h = await harness(t);
  const online1 = new Map<string, Pushed[]>();
  const online2 = new Map<string, Pushed[]>();
  const one = h.node('node-1', online1);
  const two = h.node('node-2', online2);
  const heard: string[] = [];
  let handled: Promise<unknown> = Promise.resolve();
  const stop = await h.asyncStore.listen(DELIVERY_CHANNEL, {
    onNotify: (payload) => {
      heard.push(payload);
      handled = Promise.all([handled, one.pushAnnounced(payload), two.pushAnnounced(payload)]);
    },
  });
  t.teardown(stop);
  const settled = async (): Promise<void> => {
    // The store calls listeners after the committing turn.
    await new Promise((r) => setImmediate(r));
    await handled;
  };
  return { h, one, two, online1, online2, heard, settled };
}

t.test('a key created through node 1 is pushed by node 2 to its session, once', async (t) => {
  const n = await twoNodes(t);
  n.online2.set('bob', []);
  const created = await n.one.create(n.h.alice.caller, { peer: 'bob' });
  await n.settled();
  const pushed = n.online2.get('bob')!;
  t.same(
    pushed.map((p) => p.type),
    ['key.delivered'],
    'node 2 pushed the delivery',
  );
  t.equal(pushed[0]!.body.serial, created.serial);
  t.ok(Buffer.from(pushed[0]!.body.key as Buffer).equals(created.key), 'the key, read from the store');
  t.equal(n.heard.length, 1, 'one announcement');
  const a = decodeAnnouncement(n.heard[0]!)!;
  t.same(a, { node: 'node-1', id: pushed[0]!.body.d, recipient: 'bob' });
  t.same(Object.keys(JSON.parse(n.heard[0]!) as object).sort(), ['d', 'n', 'r'], 'no key material');
});

t.test('a node ignores its own announcements: its own sessions were pushed after the commit', async (t) => {
  const n = await twoNodes(t);
  n.online1.set('bob', []);
  n.online2.set('bob', []);
  await n.one.create(n.h.alice.caller, { peer: 'bob' });
  await n.settled();
  t.equal(n.online1.get('bob')!.length, 1, 'node 1 session: one push (its own, after the commit)');
  t.equal(n.online2.get('bob')!.length, 1, 'node 2 session: one push (the announcement)');
});

t.test('a key revocation crosses too; acknowledged notices and junk do not', async (t) => {
  const n = await twoNodes(t);
  n.online2.set('bob', []);
  const created = await n.one.create(n.h.alice.caller, { peer: 'bob' });
  await n.settled();
  await n.one.revoke(n.h.alice.caller, { serial: created.serial, reason: 'keyCompromise' });
  await n.settled();
  const bob = n.online2.get('bob')!;
  t.same(
    bob.map((p) => p.type),
    ['key.delivered', 'key.revoked'],
  );
  t.match(bob[1]!.body, { serial: created.serial, state: 'revoked', reason: 'keyCompromise' });

  // Acknowledged before node 2 reads it (through another node): nothing to push.
  const before = bob.length;
  n.online2.delete('bob');
  await n.one.create(n.h.alice.caller, { peer: 'bob' });
  await n.settled();
  const id = decodeAnnouncement(n.heard.at(-1)!)!.id;
  await n.two.ack(n.h.bob.caller, [id]);
  n.online2.set('bob', bob);
  await n.two.pushAnnounced(n.heard.at(-1)!);
  t.equal(bob.length, before, 'an acknowledged delivery is not pushed');

  for (const junk of ['', 'x', '{}', '[]', '{"n":"node-1","d":0,"r":"bob"}', '{"n":1,"d":1,"r":"bob"}']) {
    t.equal(decodeAnnouncement(junk), undefined, `not an announcement: ${JSON.stringify(junk)}`);
    await n.two.pushAnnounced(junk);
  }
  t.equal(bob.length, before, 'junk pushes nothing');
});

t.test('a missed announcement is made up by pushing the backlog', async (t) => {
  const n = await twoNodes(t);
  const created = await n.one.create(n.h.alice.caller, { peer: 'bob' });
  await n.settled();
  // bob connected to node 2 after the announcement (or it was lost with the listening connection).
  n.online2.set('bob', []);
  await n.two.pushBacklogs(['bob', 'carol']);
  t.same(
    n.online2.get('bob')!.map((p) => p.body.serial),
    [created.serial],
  );
});

t.test('a service without a node name announces nothing (one node, SQLite)', async (t) => {
  const h = await harness(t);
  const heard: string[] = [];
  const stop = await h.asyncStore.listen(DELIVERY_CHANNEL, { onNotify: (p) => heard.push(p) });
  t.teardown(stop);
  h.online.set('bob', []);
  await h.service.create(h.alice.caller, { peer: 'bob' });
  await new Promise((r) => setImmediate(r));
  t.same(heard, []);
  t.equal(h.online.get('bob')!.length, 1, 'its own session is pushed as before');
});
