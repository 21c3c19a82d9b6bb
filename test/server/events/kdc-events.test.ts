// Each kind of KDC decision appears on the event bus when it happens, with the parties, serials and
// codes an operator needs, and without key material: handshakes (completed, refused by revocation),
// requests, keys (created in both modes, deposited, delivered, verified, revoked, cascaded), messages
// (size only), certificate revocation with the sessions it closed, CRL publication, start and stop.
import t from 'tap';
import { EventBus } from '../../../server/events/bus.js';
import type { EventOf, KdcEvent, KdcEventType } from '../../../shared/events/kdc-events.js';
import { inProcessKdc } from '../../client/keys/inproc.js';

function until(events: KdcEvent[], pred: (e: KdcEvent) => boolean, ms = 5_000): Promise<KdcEvent> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      const found = events.find(pred);
      if (found !== undefined) resolve(found);
      else if (Date.now() > deadline) reject(new Error('event not seen'));
      else setTimeout(poll, 20);
    };
    poll();
  });
}

function ofType<T extends KdcEventType>(events: KdcEvent[], type: T): EventOf<T>[] {
  return events.filter((e): e is EventOf<T> => e.type === type);
}

t.test('the KDC reports every decision of a key-distribution walkthrough', async (t) => {
  const bus = new EventBus();
  const events: KdcEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const env = await inProcessKdc(t, ['alice', 'bob'], { events: bus });
  const started = ofType(events, 'kdc.started');
  t.equal(started.length, 1);
  t.equal(started[0]!.url, env.url);

  const alice = await env.open('alice');
  const bob = await env.open('bob');
  const hs = ofType(events, 'handshake.completed');
  t.same(
    hs.map((e) => [e.name, e.role, e.mode, e.group]),
    [
      ['alice', 'client', 'auth', 'x25519'],
      ['bob', 'client', 'auth', 'x25519'],
    ],
  );
  t.ok(hs.every((e) => e.durationMs > 0 && /^[0-9a-f]+$/.test(e.serial)));
  t.ok(ofType(events, 'connection.opened').length >= 2);

  // KDC-generated key: created, delivered to bob live, verified by bob.
  const kdcKey = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
  const keyB64 = String(alice.client.store.getKey(kdcKey.serial)?.key);
  t.equal(Buffer.from(keyB64, 'base64').length, 32, 'alice holds the 32-byte key');
  const created = ofType(events, 'key.created').find((e) => e.serial === kdcKey.serial);
  t.match(created, { owner: 'alice', peer: 'bob', mode: 'kdc' });
  const delivered = await until(events, (e) => e.type === 'key.delivered' && e.serial === kdcKey.serial);
  t.match(delivered, { from: 'alice', to: 'bob' });
  await bob.client.idle();
  const verdict = await bob.client.verifyKey(kdcKey.serial);
  t.equal(verdict.verdict, 'valid');
  t.match(
    ofType(events, 'key.verified').find((e) => e.serial === kdcKey.serial),
    { by: 'bob', verdict: 'valid' },
  );

  // End-to-end key: reserved (key.created e2e), then deposited.
  const e2eKey = await alice.client.sendKey({ to: 'bob', mode: 'e2e' });
  t.match(
    ofType(events, 'key.created').find((e) => e.serial === e2eKey.serial),
    { owner: 'alice', peer: 'bob', mode: 'e2e' },
  );
  t.match(
    ofType(events, 'key.deposited').find((e) => e.serial === e2eKey.serial),
    { owner: 'alice' },
  );

  // A message: its size is reported, never its text.
  await bob.client.idle();
  const text = 'the eagle lands at dawn';
  await alice.client.sendMessage({ to: 'bob', text, serial: kdcKey.serial });
  const relayed = ofType(events, 'message.relayed');
  t.equal(relayed.length, 1);
  t.match(relayed[0], { from: 'alice', to: 'bob', serial: kdcKey.serial });
  t.ok(relayed[0]!.bytes >= text.length);

  await alice.client.revokeKey(e2eKey.serial, 'keyCompromise');
  t.match(
    ofType(events, 'key.revoked').find((e) => e.serial === e2eKey.serial),
    {
      by: 'alice',
      reason: 'keyCompromise',
    },
  );

  const served = ofType(events, 'request.served');
  t.ok(served.some((e) => e.request === 'key.create' && e.code === 'ok' && e.name === 'alice'));

  // Bob's certificate revoked: his session closed first, his keys cascade, a CRL is published.
  await env.kdc.ca.revoke({ name: 'bob' }, 'keyCompromise', 'test');
  const revoked = ofType(events, 'cert.revoked');
  t.equal(revoked.length, 1);
  t.match(revoked[0], { name: 'bob', reason: 'keyCompromise', sessionsClosed: 1 });
  const cascade = ofType(events, 'key.cascade');
  t.match(cascade[0], { name: 'bob', certSerial: revoked[0]!.serial });
  t.ok(cascade[0]!.keys >= 1);
  const crl = ofType(events, 'crl.published');
  t.ok(crl.length >= 1, 'a CRL was published');
  t.ok(crl.some((c) => c.entries >= 1 && c.bytes > 0 && /^[0-9]+$/.test(c.crlNumber)));
  const closed = await until(events, (e) => e.type === 'connection.closed' && e.name === 'bob');
  t.match(closed, { code: 'cert_revoked' });

  // Bob again: refused by the revocation check, his claimed (unverified) name reported.
  await t.rejects(env.open('bob'), { code: 'cert_revoked' });
  const refused = await until(events, (e) => e.type === 'handshake.refused');
  t.match(refused, {
    claimedName: 'bob',
    code: 'cert_revoked',
    by: 'kdc',
    defence: 'revocation',
    group: 'x25519',
  });

  // No event carries a key: the KDC-generated key is in alice's local store only.
  const dump = JSON.stringify(events);
  t.notOk(dump.includes(keyB64), 'no key in events');
  t.notOk(dump.includes(Buffer.from(keyB64, 'base64').toString('hex')), 'no key (hex) in events');
  t.notOk(dump.includes(text), 'no plaintext in events');

  await alice.close();
  await env.kdc.close();
  t.equal(ofType(events, 'kdc.stopped').length, 1);
  t.equal(bus.readerErrors, 0);
});
