// The KDC's side of Mallory's attacks (docs/attacks.md "The KDC's side"): what its event log reports
// when she substitutes DH shares (the client refuses the handshake and closes) and when she
// flips a bit of a record (the KDC ends the session: record authentication).
import t from 'tap';
import type { EventOf, KdcEvent, KdcEventType } from '../../../shared/events/kdc-events.js';
import { eventLine } from '../../../server/events/terminal-lines.js';
import { mitmLab } from '../../client/mitm/lab.js';

function ofType<T extends KdcEventType>(events: KdcEvent[], type: T): EventOf<T>[] {
  return events.filter((e): e is EventOf<T> => e.type === type);
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 250 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
}

t.test('substitute-dh and tamper, seen from the KDC', async (t) => {
  const lab = await mitmLab(t, ['alice']);
  const events: KdcEvent[] = [];
  lab.kdc.events.subscribe((e) => events.push(e));

  const m = await lab.mallory('substitute-dh');
  await t.rejects(lab.session('alice', m.url), { code: 'bad_signature' });
  await m.connectionsEnded(1);
  await m.close();
  await until(() => ofType(events, 'handshake.refused').length > 0);
  const refused = ofType(events, 'handshake.refused');
  t.equal(refused.length, 1);
  // The client refuses the substituted server_hello and closes: the KDC cannot know why, but sees that
  // an otherwise valid handshake was abandoned right after its server_hello.
  t.match(refused[0], { by: 'peer', code: 'abandoned_after_server_hello', group: 'x25519' });
  t.match(eventLine(refused[0]!), /handshake refused by the client: abandoned_after_server_hello$/);
  t.equal(ofType(events, 'handshake.completed').length, 0);

  const m2 = await lab.mallory('tamper');
  const s = await lab.session('alice', m2.url);
  await t.rejects(s.request('ping', {}), { code: 'record_auth' });
  await s.closed;
  await m2.connectionsEnded(1);
  await m2.close();
  await until(() => ofType(events, 'session.failed').length > 0);
  const failed = ofType(events, 'session.failed');
  t.equal(failed.length, 1);
  t.match(failed[0], { name: 'alice', code: 'record_auth', defence: 'record authentication' });
  t.match(eventLine(failed[0]!), /alice\s+session ended: record_auth \(record authentication\)$/);
});
