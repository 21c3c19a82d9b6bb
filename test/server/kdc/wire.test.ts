// The KDC's HTTP endpoints and its behaviour on the wire before and around the handshake: framing
// violations, ordering violations, the handshake timeout, the unauthenticated-connection cap and the
// per-IP handshake rate limit. Each bad connection is answered with its code and closed, and never
// disturbs another connection.
import t from 'tap';
import WebSocket from 'ws';
import { pack } from 'msgpackr';
import fc from 'fast-check';
import { CLOSE, closeCodeFor, isErrorCode } from '../../../shared/errors.js';
import { ClientHandshake } from '../../../shared/protocol/handshake.js';
import { MAX_FRAME_BYTES } from '../../../shared/protocol/limits.js';
import { encodeFrame } from '../../../shared/protocol/messages.js';
import { openSession } from '../../../client/session.js';
import { issueTestClient, rawSocket, sessionFor, startTestKdc } from '../../helpers/kdc-in-process.js';
import { pssSigner } from '../../../shared/crypto/signer.js';

t.setTimeout(120_000);

const { kdc } = await startTestKdc(t);
const alice = await issueTestClient(kdc.ca, 'alice');

async function get(
  path: string,
  method = 'GET',
): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(`${kdc.httpUrl}${path}`, { method });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

t.test('HTTP: /ca.pem, /crl.pem (current), /healthz, 404, 405', async (t) => {
  const ca = await get('/ca.pem');
  t.equal(ca.status, 200);
  t.equal(ca.body, kdc.ca.caCertPem);
  const crl1 = await get('/crl.pem');
  t.equal(crl1.status, 200);
  t.match(crl1.body, /^-----BEGIN X509 CRL-----/);
  t.equal(crl1.body, kdc.ca.currentCrlPem());

  const victim = await issueTestClient(kdc.ca, 'crl-victim');
  await kdc.ca.revoke({ serialHex: victim.cert.serialHex }, 'keyCompromise', 'test');
  const crl2 = await get('/crl.pem');
  t.not(crl2.body, crl1.body, 'the CRL served changes as soon as a revocation is acknowledged');
  t.equal(crl2.body, kdc.ca.currentCrlPem());

  const health = await get('/healthz');
  t.equal(health.status, 200);
  t.equal(health.type, 'application/json');
  const h = JSON.parse(health.body) as Record<string, unknown>;
  t.equal(h.ok, true);
  t.equal(typeof h.version, 'string');
  t.equal(typeof h.sessions, 'number');

  t.equal((await get('/nope')).status, 404);
  t.equal((await get('/constructor')).status, 404);
  t.equal((await get('/kds')).status, 404, 'plain GET on the WebSocket path');
  t.equal((await get('/ca.pem', 'POST')).status, 405);
  t.equal((await get('/ca.pem?x=1')).status, 200, 'a query string is ignored');
});

t.test('healthz counts live sessions', async (t) => {
  const session = await sessionFor(kdc, alice);
  const h = JSON.parse((await get('/healthz')).body) as { sessions: number; authenticated: number };
  t.ok(h.sessions >= 1);
  t.ok(h.authenticated >= 1);
  await session.close();
});

t.test('WebSocket upgrade only at /kds', async (t) => {
  const ws = new WebSocket(kdc.url.replace('/kds', '/other'));
  const status = await new Promise<number>((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => resolve(-1));
  });
  t.equal(status, 404);
  ws.terminate();
});

t.test('a WebSocket upgrade from a web page (with an Origin) is refused: 403', async (t) => {
  // Browsers send Origin on every WebSocket upgrade; without the check a page on any site could open
  // sessions to a KDC its visitor's network reaches (cross-site WebSocket hijacking).
  for (const origin of ['http://attacker.example', 'http://127.0.0.1', 'null']) {
    const ws = new WebSocket(kdc.url, { origin });
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => resolve(-1));
    });
    t.equal(status, 403, `Origin ${origin}`);
    ws.terminate();
  }
  const plain = new WebSocket(kdc.url);
  const opened = await new Promise<boolean>((resolve) => {
    plain.on('open', () => resolve(true));
    plain.on('error', () => resolve(false));
  });
  t.ok(opened, 'a client without an Origin (a program) gets its WebSocket');
  plain.terminate();
});

t.test('text frame -> bad_frame alert and close 4000', async (t) => {
  const s = await rawSocket(t, kdc.url);
  s.send('{"t":"client_hello"}', false);
  const alert = await s.next();
  t.match(alert, { t: 'alert', code: 'bad_frame' });
  const closed = await s.closed;
  t.equal(closed.code, CLOSE.protocol);
  t.equal(closed.reason, 'bad_frame');
});

t.test('garbage msgpack -> bad_frame', async (t) => {
  const s = await rawSocket(t, kdc.url);
  s.send(Buffer.from([0xc1, 0xff, 0x00, 0x13, 0x37]));
  t.match(await s.next(), { t: 'alert', code: 'bad_frame' });
  t.equal((await s.closed).code, CLOSE.protocol);
});

t.test('msgpack extension types are refused (bad_frame)', async (t) => {
  const s = await rawSocket(t, kdc.url);
  // fixext 1 (type 1) as a map value
  s.send(Buffer.from([0x81, 0xa1, 0x74, 0xd4, 0x01, 0x00]));
  t.match(await s.next(), { t: 'alert', code: 'bad_frame' });
  await s.closed;
});

t.test('oversized frame -> close 1009', async (t) => {
  const s = await rawSocket(t, kdc.url);
  s.send(Buffer.alloc(MAX_FRAME_BYTES + 1, 0x90));
  const closed = await s.closed;
  t.equal(closed.code, CLOSE.tooBig);
});

t.test('unknown frame type -> unknown_type', async (t) => {
  const s = await rawSocket(t, kdc.url);
  s.send(Buffer.from(pack({ t: 'launch_missiles', v: 1 })));
  t.match(await s.next(), { t: 'alert', code: 'unknown_type' });
  t.equal((await s.closed).code, CLOSE.protocol);
});

t.test('a record before the handshake -> unexpected_message', async (t) => {
  const s = await rawSocket(t, kdc.url);
  s.send(encodeFrame({ t: 'r', c: Buffer.alloc(48, 7) }));
  const alert = await s.next();
  t.equal(alert.t, 'alert');
  t.ok(
    ['unexpected_message', 'not_authenticated'].includes(String(alert.code)),
    `code ${String(alert.code)}`,
  );
  t.equal((await s.closed).code, CLOSE.protocol);
});

t.test('a non-map top level -> bad_frame', async (t) => {
  const s = await rawSocket(t, kdc.url);
  s.send(Buffer.from(pack([1, 2, 3])));
  t.match(await s.next(), { t: 'alert', code: 'bad_frame' });
});

t.test('one misbehaving connection does not disturb a live session', async (t) => {
  const session = await sessionFor(kdc, alice);
  const bad = await rawSocket(t, kdc.url);
  bad.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
  await bad.closed;
  const pong = await session.request('ping', { data: Buffer.from('still here') });
  t.same(pong, { pong: true, data: Buffer.from('still here') });
  t.ok(session.isOpen);
  await session.close();
});

t.test('handshake timeout -> handshake_timeout alert, close 4003', async (t) => {
  const { kdc: slow } = await startTestKdc(t, { handshakeTimeoutMs: 150 });
  const s = await rawSocket(t, slow.url);
  t.match(await s.next(), { t: 'alert', code: 'handshake_timeout' });
  const closed = await s.closed;
  t.equal(closed.code, CLOSE.timeout);
  t.equal(closed.reason, 'handshake_timeout');
});

t.test('cap on unauthenticated connections -> too_many_connections; the slot frees on close', async (t) => {
  const { kdc: capped } = await startTestKdc(t, { maxUnauthenticated: 1 });
  const alice = await issueTestClient(capped.ca, 'alice');
  const idle = await rawSocket(t, capped.url);
  const second = await rawSocket(t, capped.url);
  t.match(await second.next(), { t: 'alert', code: 'too_many_connections' });
  t.equal((await second.closed).code, CLOSE.rateLimited);
  idle.ws.close();
  await idle.closed;
  // Give the server the close event, then a full handshake must be admitted again.
  await new Promise((r) => setTimeout(r, 50));
  const session = await sessionFor(capped, alice);
  t.equal(session.facts.identity.name, 'alice');
  await session.close();
  // An established session no longer counts against the cap.
  const s1 = await sessionFor(capped, alice);
  const s2 = await sessionFor(capped, alice);
  t.ok(s1.isOpen && s2.isOpen);
  await Promise.all([s1.close(), s2.close()]);
});

t.test('per-IP handshake rate limit -> rate_limited', async (t) => {
  const { kdc: limited } = await startTestKdc(t, { rateLimit: { burst: 2, perSecond: 0.001 } });
  const alice = await issueTestClient(limited.ca, 'alice');
  const a = await sessionFor(limited, alice);
  const b = await sessionFor(limited, alice);
  await t.rejects(sessionFor(limited, alice), { code: 'rate_limited' });
  t.ok(a.isOpen && b.isOpen, 'sessions already established are unaffected');
  await Promise.all([a.close(), b.close()]);
});

t.test('server close: sessions see 1001 with code unavailable', async (t) => {
  const { kdc: leaving } = await startTestKdc(t);
  const alice = await issueTestClient(leaving.ca, 'alice');
  const session = await sessionFor(leaving, alice);
  const closing: string[] = [];
  session.onPush('session.closing', (b) => closing.push(String(b.code)));
  await leaving.close();
  const info = await session.closed;
  t.equal(info.code, CLOSE.goingAway);
  t.equal(info.error?.code, 'unavailable');
  t.same(closing, ['unavailable']);
  await leaving.close(); // idempotent
});

t.test(
  'anonymous (enrollment) sessions hold an unauthenticated slot and have a short lifetime',
  async (t) => {
    const { kdc: strict } = await startTestKdc(t, { maxUnauthenticated: 1, anonymousSessionMs: 300 });
    const anonymous = await openSession({
      server: strict.url,
      mode: 'enroll',
      caCertPem: strict.ca.caCertPem,
    });
    t.equal(anonymous.facts.identity.role, 'anonymous');
    const other = await rawSocket(t, strict.url);
    t.match(await other.next(), { t: 'alert', code: 'too_many_connections' });
    const info = await anonymous.closed;
    t.equal(info.code, CLOSE.timeout);
    t.equal(info.error?.code, 'timeout');
  },
);

t.test(
  'random mutations of a client_hello: every connection gets a coded answer, the server survives',
  async (t) => {
    const { kdc: fuzzed } = await startTestKdc(t, { rateLimit: false });
    const local = await issueTestClient(fuzzed.ca, 'alice');
    const hello = new ClientHandshake({ mode: 'enroll', checkServerCertificate: () => {} }).clientHello();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat({ max: hello.length - 1 }), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        async (flips) => {
          const frame = Buffer.from(hello);
          for (const [at, xor] of flips) frame[at] = frame[at]! ^ xor;
          const s = await rawSocket(t, fuzzed.url);
          s.send(frame);
          const first = await s.next();
          if (first.t === 'server_hello') {
            s.ws.close();
          } else {
            if (first.t !== 'alert' || !isErrorCode(first.code))
              throw new Error(`unexpected answer ${JSON.stringify(first.t)}`);
            const closed = await s.closed;
            if (closed.code !== closeCodeFor(first.code))
              throw new Error(`close ${closed.code} for ${String(first.code)}`);
          }
          await s.closed;
        },
      ),
      { numRuns: 40 },
    );
    const session = await sessionFor(fuzzed, local);
    t.same(await session.request('ping', {}), { pong: true });
    await session.close();
    // The server sees each close a moment after the client does.
    for (let i = 0; i < 100 && fuzzed.connectionCount() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    t.equal(fuzzed.connectionCount(), 0, 'every fuzzed connection was cleaned up');
  },
);

t.test(
  'inside a session: a tampered or replayed record is never answered: close 4005 record_auth',
  async (t) => {
    const open = async (): Promise<{ s: Awaited<ReturnType<typeof rawSocket>>; request: Buffer }> => {
      const hs = new ClientHandshake({
        mode: 'auth',
        credentials: { certificateDer: alice.cert.der, sign: pssSigner(alice.privateKey) },
        checkServerCertificate: () => {},
      });
      const s = await rawSocket(t, kdc.url);
      s.send(hs.clientHello());
      await s.next();
      const { clientFinish, result } = await hs.receiveServerHello(s.raws[0]!);
      s.send(clientFinish);
      const ready = await s.next();
      t.equal(ready.t, 'r', 'the first record (ready) arrives');
      return { s, request: result.channel.sealRequest('ping', 1, {}) };
    };

    const tampered = await open();
    const bad = Buffer.from(tampered.request);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
    const before1 = tampered.s.frames.length;
    tampered.s.send(bad);
    const closed1 = await tampered.s.closed;
    t.equal(closed1.code, CLOSE.record);
    t.equal(closed1.reason, 'record_auth', 'the close reason names the code');
    // docs/protocol.md "Transport": no session.closing push (or anything else) answers a failed tag.
    t.equal(tampered.s.frames.length, before1, 'not answered');

    const replayed = await open();
    replayed.s.send(replayed.request);
    const pong = await replayed.s.next();
    t.equal(pong.t, 'r', 'the genuine request is answered');
    const before2 = replayed.s.frames.length;
    replayed.s.send(replayed.request);
    const closed2 = await replayed.s.closed;
    t.equal(closed2.code, CLOSE.record);
    t.equal(closed2.reason, 'record_auth');
    t.equal(replayed.s.frames.length, before2, 'the replay is not answered');
  },
);
