// A session ends at its certificate's notAfter (docs/security.md "Hostile peers"): the KDC's expiry
// sweep (server/kdc/kdc.ts, every second) closes it with `cert_expired` after a `session.closing` push,
// and every request is checked against notAfter when it is dispatched (server/kdc/connection.ts), so
// none is served after it, even in the second before the sweep comes.
// "After notAfter" is the handshake's rule (RFC 5280 4.1.2.5, validity inclusive, at the whole seconds
// certificates carry): from notAfter + 1 s on. A new handshake with that certificate is then refused
// with `cert_expired` too.
import t from 'tap';
import { CLOSE } from '../../../shared/errors.js';
import { encodeValue } from '../../../shared/protocol/codec.js';
import { startFrameHarness } from '../../helpers/frame-harness.js';
import { issueTestClient, sessionFor, startTestKdc } from '../../helpers/kdc-in-process.js';

t.setTimeout(120_000);

const { kdc, dataDir } = await startTestKdc(t);

function within<T>(p: Promise<T>, ms: number): Promise<T | 'hang'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<'hang'>((r) => (timer = setTimeout(() => r('hang'), ms)))]).finally(
    () => clearTimeout(timer),
  );
}

t.test('a live session is closed with cert_expired at notAfter', async (t) => {
  const now = Date.now();
  // X.509 times have whole seconds: notAfter lands 5-6 s from now (room for a slow handshake).
  const shortLived = await issueTestClient(kdc.ca, 'short-lived', {
    validity: { notBefore: now - 60_000, notAfter: now + 6_000 },
  });
  const notAfter = shortLived.cert.notAfter;
  const honest = await sessionFor(kdc, await issueTestClient(kdc.ca, 'long-lived'));
  const session = await sessionFor(kdc, shortLived);
  t.equal(session.facts.identity.expiresAt, notAfter, 'ready says when the certificate expires');
  const pushes: Record<string, unknown>[] = [];
  session.onPush('session.closing', (body) => pushes.push(body));
  t.same(await session.request('ping', {}), { pong: true }, 'served before notAfter');
  const closed = await within(session.closed, notAfter - Date.now() + 10_000);
  if (closed === 'hang') {
    t.fail('the session outlived its certificate by 10 s');
    await session.close();
    return;
  }
  t.ok(Date.now() >= notAfter + 1000, 'not before the notAfter second is over (RFC 5280: inclusive)');
  t.equal(closed.code, CLOSE.auth, 'close code of cert_expired (4001)');
  t.equal(closed.error?.code, 'cert_expired');
  t.match(pushes, [{ code: 'cert_expired' }], 'a session.closing push said why first');
  await t.rejects(sessionFor(kdc, shortLived), { code: 'cert_expired' }, 'and a new handshake is refused');
  t.same(await honest.request('ping', {}), { pong: true }, 'a session with a valid certificate goes on');
  await honest.close();
});

t.test('no request is served after notAfter, even before the sweep closes the session', async (t) => {
  // The connection reads this clock at dispatch; the KDC's sweep reads the real one, by which the
  // certificate expires in 30 days: only the dispatch check can refuse here.
  let skew = 0;
  const harness = await startFrameHarness(kdc, dataDir, { now: () => Date.now() + skew });
  const session = await (await harness.fixedHandshake('client', 'clock-victim')).open();
  session.send(session.seal(encodeValue({ t: 'ping', id: 1, b: {} })));
  t.match(await session.next(), { t: 'ok', id: 1 }, 'served while the certificate is valid');
  skew = 31 * 86_400_000;
  session.send(session.seal(encodeValue({ t: 'ping', id: 2, b: {} })));
  const answer = await session.next();
  t.match(answer, { t: 'session.closing', b: { code: 'cert_expired' } }, 'refused: the session ends');
  t.equal(await session.sock.closed, CLOSE.auth);
});
