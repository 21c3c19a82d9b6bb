// The receiver acknowledges a delivered key inside its key.verify (client/keys/key-client.ts, `ack`):
// one request fewer per key, and no key lost. A receiver that stops after the KDC committed that
// verification but before it stored the verdict is left with a `pending` key and no queued notice:
// start() asks for the verdict again.
import t from 'tap';
import type { ClientSession } from '../../../client/session.js';
import type { KeySession } from '../../../client/keys/key-client.js';
import { inProcessKdc } from './inproc.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

t.setTimeout(120_000);

function recording(
  session: ClientSession,
  sent: { type: string; body: Record<string, unknown> }[],
): KeySession {
  return {
    request: (type, body) => {
      sent.push({ type, body });
      return session.request(type, body);
    },
    onPush: (type, fn) => session.onPush(type, fn),
  };
}

for (const mode of ['kdc', 'e2e'] as const) {
  t.test(`${mode}: the delivery is acknowledged by key.verify; a lost verdict is asked again`, async (t) => {
    const env = await inProcessKdc(t, ['alice', 'bob']);
    const sent: { type: string; body: Record<string, unknown> }[] = [];
    const bob = await env.open('bob', { wrap: (s) => recording(s, sent) });
    const alice = await env.open('alice');
    const { serial } = await alice.client.sendKey({ to: 'bob', mode });
    await bob.client.idle();
    t.equal(bob.client.store.getKey(serial)?.state, 'active', 'bob verified and stored the key');
    const verify = sent.find((r) => r.type === 'key.verify' && r.body.serial === serial);
    t.ok(Array.isArray(verify?.body.ack) && (verify.body.ack as unknown[]).length === 1, 'ack on key.verify');
    t.notOk(
      sent.some((r) => r.type === 'key.ack'),
      'no separate key.ack for the delivery',
    );
    const store = sqliteOf(env.kdc.services.store);
    t.equal(store.countDeliveries('bob'), 0, 'the KDC forgot the notice');
    t.not(store.getSymKey(serial)!.peerVerifiedAt, null);

    // Bob "crashed" after the KDC committed his verification, before storing the verdict.
    const rec = bob.client.store.getKey(serial)!;
    bob.client.store.putKey({ ...rec, state: 'pending' });
    await bob.close();
    const again = await env.open('bob');
    t.equal(again.client.store.getKey(serial)?.state, 'active', 'start() asked for the verdict again');
    t.equal(store.countDeliveries('bob'), 0);
    await again.close();
    await alice.close();
  });
}
