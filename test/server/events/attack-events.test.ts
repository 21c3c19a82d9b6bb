// The KDC's side of Mallory's attacks (docs/attacks.md "The KDC's side"): what its event log reports
// when she substitutes DH shares (the client refuses the handshake and closes) and when she
// flips a bit of a record (the KDC ends the session: record authentication).
import t from 'tap';
import type { EventOf, KdcEvent, KdcEventType } from '../../../shared/events/kdc-events.js';
import { eventLine } from '../../../server/events/terminal-lines.js';
import { closeCodeFor } from '../../../shared/errors.js';
import { rawHello } from '../../helpers/raw-client.js';
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
  // The client refuses the substituted server_hello and closes with its reason; Mallory passes the
  // close on, so the KDC says which check refused (the client's claim, a known code only).
  t.match(refused[0], {
    by: 'peer',
    code: 'bad_signature',
    defence: 'transcript signature',
    group: 'x25519',
  });
  t.match(eventLine(refused[0]!), /handshake refused by the client: bad_signature \(transcript signature\)$/);
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

t.test(
  "a client's close reason names the check only when it is a known code with its close code",
  async (t) => {
    const lab = await mitmLab(t, []);
    const events: KdcEvent[] = [];
    lab.kdc.events.subscribe((e) => events.push(e));
    const cases: [number, string, string, string | undefined][] = [
      [closeCodeFor('bad_signature'), 'bad_signature', 'bad_signature', 'transcript signature'],
      // Anything else is the peer's free text: not believed, not printed.
      [
        closeCodeFor('bad_signature'),
        'bad_signature\u001b[2K forged',
        'abandoned_after_server_hello',
        undefined,
      ],
      [1000, 'bad_signature', 'abandoned_after_server_hello', undefined],
    ];
    for (const [code, reason, expected, defence] of cases) {
      const before = ofType(events, 'handshake.refused').length;
      // An enrollment hello needs no certificate; the KDC answers it with its signed server_hello.
      const { conn } = await rawHello({ url: lab.kdc.url, mode: 'enroll', caCertPem: lab.kdc.ca.caCertPem });
      t.not(await conn.next(10_000), 'hang', 'the server_hello came');
      conn.ws.close(code, reason);
      await conn.closed;
      await until(() => ofType(events, 'handshake.refused').length > before);
      const refused = ofType(events, 'handshake.refused')[before]!;
      t.equal(refused.code, expected, `close ${code} ${JSON.stringify(reason)}`);
      t.equal(refused.defence, defence);
      t.equal(refused.by, 'peer');
    }
  },
);
