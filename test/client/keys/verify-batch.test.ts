// A receiver that comes online to many queued deliveries verifies them together (key.verify.batch,
// docs/keys.md "Batches"), acknowledging each notice inside that request; keys left `pending` by a
// stop are verified again at start, 32 to a request. And the sender's side: sendKdcKeys makes N keys in
// one key.create.batch.
import t from 'tap';
import type { ClientSession } from '../../../client/session.js';
import type { KeySession } from '../../../client/keys/key-client.js';
import { inProcessKdc } from './inproc.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

t.setTimeout(120_000);

type Sent = { type: string; body: Record<string, unknown> }[];

function recording(session: ClientSession, sent: Sent): KeySession {
  return {
    request: (type, body) => {
      sent.push({ type, body });
      return session.request(type, body);
    },
    onPush: (type, fn) => session.onPush(type, fn),
  };
}

t.test(
  'a backlog of deliveries is verified in batches; every key active, every notice acknowledged',
  async (t) => {
    const env = await inProcessKdc(t, ['alice', 'bob']);
    await (await env.open('bob')).close(); // bob's prekeys are published; then he is offline
    const alice = await env.open('alice');
    const batch = await alice.client.sendKdcKeys({ to: 'bob', count: 6 });
    t.equal(batch.length, 6);
    t.ok(batch.every((k) => k.state === 'pending' && k.mode === 'kdc' && k.peer === 'bob'));
    const single = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
    const e2e = await alice.client.sendKey({ to: 'bob' });
    const serials = [...batch.map((k) => k.serial), single.serial, e2e.serial];

    const sent: Sent = [];
    const bob = await env.open('bob', { wrap: (s) => recording(s, sent) });
    await bob.client.idle();
    for (const serial of serials) t.equal(bob.client.store.getKey(serial)?.state, 'active', serial);
    t.same(
      bob.events
        .filter((e) => e.event === 'key')
        .map((e) => [e.serial, 'verdict' in e && e.verdict])
        .sort(),
      serials.map((s) => [s, 'valid']).sort(),
      'one key event per key',
    );
    const batches = sent.filter((r) => r.type === 'key.verify.batch');
    const singles = sent.filter((r) => r.type === 'key.verify');
    t.ok(batches.length >= 1, 'key.verify.batch used');
    t.ok(
      batches.length + singles.length < serials.length,
      `${batches.length} + ${singles.length} requests for ${serials.length} keys`,
    );
    const acked = [...batches, ...singles].flatMap((r) => (r.body.ack as number[] | undefined) ?? []);
    t.equal(acked.length, serials.length, 'each delivery acknowledged inside a verification');
    t.notOk(
      sent.some((r) => r.type === 'key.ack'),
      'no separate key.ack',
    );
    const store = sqliteOf(env.kdc.services.store);
    t.equal(store.countDeliveries('bob'), 0, 'the KDC forgot every notice');
    for (const serial of serials) t.not(store.getSymKey(serial)!.peerVerifiedAt, null);

    // Bob "crashed" after those verifications committed, before storing the verdicts: the next start
    // asks again, in one request.
    for (const serial of serials) {
      const rec = bob.client.store.getKey(serial)!;
      bob.client.store.putKey({ ...rec, state: 'pending' });
    }
    await bob.close();
    const resent: Sent = [];
    const again = await env.open('bob', { wrap: (s) => recording(s, resent) });
    for (const serial of serials)
      t.equal(again.client.store.getKey(serial)?.state, 'active', `again ${serial}`);
    t.same(
      resent
        .filter((r) => r.type.startsWith('key.verify'))
        .map((r) => [r.type, (r.body.items as unknown[]).length]),
      [['key.verify.batch', serials.length]],
      'start() verified the pending keys in one key.verify.batch',
    );
    await again.close();
    await alice.close();
  },
);

t.test(
  'a revocation behind deliveries waiting for their batch applies after them, in arrival order',
  async (t) => {
    const env = await inProcessKdc(t, ['alice', 'bob']);
    await (await env.open('bob')).close();
    const alice = await env.open('alice');
    const keys = await alice.client.sendKdcKeys({ to: 'bob', count: 3 });
    // Revoked while bob is offline: its key.revoked replaces its queued delivery, and is queued last.
    await alice.client.revokeKey(keys[1]!.serial, 'keyCompromise');
    const later = await alice.client.sendKdcKeys({ to: 'bob', count: 2 });
    const sent: Sent = [];
    const bob = await env.open('bob', { wrap: (s) => recording(s, sent) });
    await bob.client.idle();
    for (const k of [keys[0]!, keys[2]!, ...later]) {
      t.equal(bob.client.store.getKey(k.serial)?.state, 'active', k.serial);
    }
    t.equal(bob.client.store.getKey(keys[1]!.serial), undefined, 'the revoked key never reached bob');
    const order = bob.events.map((e) => `${e.event}:${e.serial}`);
    const revoked = order.indexOf(`key.revoked:${keys[1]!.serial}`);
    t.ok(revoked >= 0, 'bob was told of the revocation');
    t.ok(
      order.indexOf(`key:${keys[0]!.serial}`) < revoked && order.indexOf(`key:${keys[2]!.serial}`) < revoked,
      'the deliveries queued before it were verified before it applied',
    );
    t.ok(order.indexOf(`key:${later[0]!.serial}`) > revoked, 'the ones queued after it, after');
    t.equal(sqliteOf(env.kdc.services.store).countDeliveries('bob'), 0);
    await bob.close();
    await alice.close();
  },
);
