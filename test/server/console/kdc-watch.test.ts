// The KDC's console watch under load: exchanges are drawn in full up to the drawing budget (a burst of
// DRAWN_BURST, then DRAWN_PER_SECOND), the others are only counted and reach the page as one `undrawn`
// row per state tick; a refused exchange is always drawn, with the frames it sent; the peer's second
// handshake frame is drawn as its finish when the handshake completed, and as an alert when the peer
// sent one in its place.
import t from 'tap';
import { ConsoleFeed } from '../../../io/console/feed.js';
import { DRAWN_BURST, DRAWN_PER_SECOND, KdcWatch } from '../../../server/console/kdc-watch.js';
import type { Connection } from '../../../server/kdc/connection.js';
import type { ConsoleEvent } from '../../../shared/console/events.js';
import { errorFor } from '../../../shared/errors.js';
import { encodeAlert, encodeFrame } from '../../../shared/protocol/messages.js';

function conn(name: string, role = 'client', mode = 'auth'): Connection {
  return {
    mode,
    identity: { name, role },
    claimed: { mode, name: name === '' ? undefined : name },
  } as unknown as Connection;
}

/** A complete authenticated handshake, one request, and the close, as connection.ts reports them. */
function handshake(watch: KdcWatch, c: Connection, finish: Buffer = Buffer.alloc(1500)): void {
  watch.opened(c);
  watch.frame(c, 'in', 'client_hello', 150, false);
  watch.frame(c, 'out', 'server_hello', 1400, false);
  watch.finish(c, finish);
  watch.established(c, 'x25519');
  watch.frame(c, 'out', 'ready', 120, true);
  watch.frame(c, 'in', 'ping', 60, true);
  watch.frame(c, 'out', 'ping ok', 60, true);
  watch.closed(c, 1000, '');
}

const of = (feed: ConsoleFeed, n: number): ConsoleEvent[] =>
  feed.history.filter((e) => 'exchange' in e && e.exchange === n);

t.test('a burst is drawn whole, the rest counted, and the budget refills with time', async (t) => {
  let clock = 0;
  const feed = new ConsoleFeed('kdc', () => 0);
  const watch = new KdcWatch(feed, () => clock);
  for (let i = 0; i < DRAWN_BURST + 25; i++) handshake(watch, conn(`c${i}`));
  t.same(
    of(feed, 1).map((e) => (e.kind === 'message' ? e.name : e.kind)),
    [
      'exchange.open',
      'client_hello',
      'server_hello',
      'client_finish',
      'established',
      'ready',
      'ping',
      'ping ok',
      'exchange.close',
    ],
    'a drawn exchange: every arrow, in order',
  );
  t.equal(of(feed, DRAWN_BURST).length, 9, `exchange ${DRAWN_BURST}, the last of the burst, is drawn`);
  t.same(of(feed, DRAWN_BURST + 1), [], 'the next is not drawn at all');
  t.same(of(feed, DRAWN_BURST + 25), [], 'nor the last');
  t.notOk(
    feed.history.some((e) => e.kind === 'undrawn'),
    'the count waits for the state tick',
  );
  watch.publishUndrawn();
  t.match(feed.history.at(-1), { kind: 'undrawn', count: 25, total: 25, perSecond: DRAWN_PER_SECOND });
  const length = feed.history.length;
  watch.publishUndrawn();
  t.equal(feed.history.length, length, 'nothing more to count: no row');
  t.equal(watch.exchangeOf(conn('x')), 0, 'a connection the watch never saw has no number');

  // A second later the budget holds DRAWN_PER_SECOND exchanges again.
  clock += 1000;
  const first = DRAWN_BURST + 26;
  for (let i = 0; i < DRAWN_PER_SECOND + 3; i++) handshake(watch, conn(`d${i}`));
  for (let i = 0; i < DRAWN_PER_SECOND; i++)
    t.equal(of(feed, first + i).length, 9, `exchange ${first + i} is drawn after the refill`);
  t.same(of(feed, first + DRAWN_PER_SECOND), [], 'then counting again');
  watch.publishUndrawn();
  t.match(feed.history.at(-1), { kind: 'undrawn', count: 3, total: 28 });
});

t.test('a refused exchange over the budget is drawn, with the frames it sent', async (t) => {
  const clock = 0;
  const feed = new ConsoleFeed('kdc', () => 0);
  const watch = new KdcWatch(feed, () => clock);
  for (let i = 0; i < DRAWN_BURST; i++) handshake(watch, conn(`c${i}`));
  // Over the budget: a peer that answers the KDC's hello with an alert (it refused the KDC's signature).
  const c = conn('');
  watch.opened(c);
  watch.frame(c, 'in', 'client_hello', 150, false);
  watch.frame(c, 'out', 'server_hello', 1400, false);
  watch.finish(c, encodeAlert(errorFor('bad_signature', 'server signature over transcript invalid')));
  watch.failed(c, errorFor('bad_signature', 'peer alert', { remote: true }), false);
  watch.closed(c, 4003, 'bad_signature');
  const n = DRAWN_BURST + 1;
  t.same(
    of(feed, n).map((e) => (e.kind === 'message' ? e.name : e.kind)),
    ['exchange.open', 'client_hello', 'server_hello', 'alert', 'refused', 'exchange.close'],
    'drawn from its opening: the alert in place of the finish, then the refusal',
  );
  t.match(
    of(feed, n).find((e) => e.kind === 'refused'),
    {
      code: 'bad_signature',
      by: 'mallory',
      peer: 'kdc',
      possibleMitm: true,
    },
  );
  watch.publishUndrawn();
  t.notOk(
    feed.history.some((e) => e.kind === 'undrawn'),
    'a refused exchange is not counted as undrawn',
  );

  // An exchange counted, then refused once its session is open (its certificate revoked meanwhile).
  const late = conn('bob');
  watch.opened(late);
  watch.frame(late, 'in', 'client_hello', 150, false);
  watch.frame(late, 'out', 'server_hello', 1400, false);
  watch.finish(late, Buffer.alloc(1500));
  watch.established(late, 'x25519');
  watch.frame(late, 'in', 'ping', 60, true);
  watch.failed(late, errorFor('cert_revoked', 'certificate revoked'), true);
  watch.frame(late, 'out', 'session.closing', 80, true, 'cert_revoked');
  watch.closed(late, 4002, 'cert_revoked');
  t.same(
    of(feed, n + 1).map((e) => (e.kind === 'message' ? e.name : e.kind)),
    ['exchange.open', 'refused', 'session.closing', 'exchange.close'],
    'drawn from the refusal on',
  );
});

t.test('the finish of a completed handshake is never decoded: it was a finish', async (t) => {
  const feed = new ConsoleFeed('kdc', () => 0);
  const watch = new KdcWatch(feed, () => 0);
  // Bytes that would decode as an alert: had the watch decoded them, it would have drawn an alert.
  handshake(watch, conn('alice'), encodeFrame({ t: 'alert', code: 'internal', message: 'x' }));
  t.ok(
    of(feed, 1).some((e) => e.kind === 'message' && e.name === 'client_finish'),
    'drawn as client_finish',
  );
  t.notOk(
    of(feed, 1).some((e) => e.kind === 'message' && e.name === 'alert'),
    'not as an alert',
  );
});

const steps = (feed: ConsoleFeed, n: number): Record<string, string | undefined> =>
  Object.fromEntries(
    of(feed, n).flatMap((e) => (e.kind === 'message' && !e.sealed ? [[e.name, e.step]] : [])),
  );

t.test('a resumed session is described as one: the ticket, no certificate', async (t) => {
  const feed = new ConsoleFeed('kdc', () => 0);
  const watch = new KdcWatch(feed, () => 0);
  handshake(watch, conn('alice', 'client', 'resume'));
  const s = steps(feed, 1);
  t.match(s.client_hello, /session ticket and binder/);
  t.match(s.server_hello, /ticket's secret; no certificate \(resumption\)/);
  t.notMatch(s.server_hello, /KDC certificate|RSA-PSS/, 'no KDC certificate or signature in a resumption');
  t.match(s.client_finish, /ticket's secret; no certificate \(resumption\)/);
  t.notMatch(s.client_finish, /anonymous|enrollment/);
  t.match(
    of(feed, 1).find((e) => e.kind === 'established'),
    { party: 'alice' },
  );
});

t.test('a handshake refused for a revoked certificate: its mode, and the name it claimed', async (t) => {
  const feed = new ConsoleFeed('kdc', () => 0);
  const watch = new KdcWatch(feed, () => 0);
  // As connection.ts has it: nothing proven (no mode, nobody), only what the hello and finish claimed.
  let claimed: { mode: string | undefined; name: string | undefined } = { mode: undefined, name: undefined };
  const c = {
    mode: undefined,
    identity: { name: '', role: 'anonymous' },
    get claimed() {
      return claimed;
    },
  } as unknown as Connection;
  watch.opened(c);
  watch.frame(c, 'in', 'client_hello', 150, false);
  claimed = { mode: 'auth', name: undefined };
  watch.frame(c, 'out', 'server_hello', 1400, false);
  watch.finish(c, Buffer.alloc(1500));
  claimed = { mode: 'auth', name: 'bob' };
  watch.failed(c, errorFor('cert_revoked', 'certificate revoked'), false);
  watch.frame(c, 'out', 'alert', 90, false, 'cert_revoked');
  watch.closed(c, 4002, 'cert_revoked');
  t.match(
    of(feed, 1).find((e) => e.kind === 'refused'),
    { code: 'cert_revoked', by: 'kdc', peer: 'bob?' },
    'on the lane of the name it claimed, marked unverified',
  );
  const s = steps(feed, 1);
  t.match(s.client_finish, /^client certificate, RSA-PSS signature/, 'what it sent: a certificate');
  t.notMatch(s.client_finish, /anonymous/);
  t.match(s.server_hello, /KDC certificate/);
  t.notOk(
    of(feed, 1).some((e) => e.kind === 'message' && (e.from === '?' || e.to === '?')),
    'nothing on the unknown peer lane',
  );
});
