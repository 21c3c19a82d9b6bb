// The fuzzers of fuzz-frames.test.ts and fuzz-app.test.ts against a LIVE server process (`kds server
// start`, default settings): real sockets, real randomness in every handshake, the production wiring of
// server/kdc/kdc.ts (admission, rate limit, timeouts). KDS_FUZZ_LIVE mutants per frame type (CI 200,
// full 2,000; the in-process tests carry the 10,000-per-type volume, since a frame that ends a
// connection costs a new TCP connection and, from client_finish on, two RSA signatures here).
// Each mutant's connection comes from another loopback address (127.0.0.2..251), as many hosts would:
// the per-IP handshake rate limit stays on. An honest session opened first keeps pinging throughout.
// At the end: the server process never exited, /healthz answers, the honest session still works, a
// fresh handshake still works, and the server never logged an internal error.
import t from 'tap';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../../server/ca/authority.js';
import { openSession } from '../../client/session.js';
import { decodeFrame } from '../../shared/protocol/messages.js';
import { issueTestClient } from '../helpers/kdc-in-process.js';
import { initDataDir, startServer, TEST_CA_PASSPHRASE } from '../helpers/kds-process.js';
import { judge, type Outcome } from '../helpers/fuzz-judge.js';
import { fieldMutantsOf, mutantsOf, tally, type Mutant } from '../helpers/mutate.js';
import {
  loopbackAddress,
  newClientHandshake,
  rawConnect,
  rawHandshake,
  rawHello,
  requestPlaintext,
  type RawConnection,
} from '../helpers/raw-client.js';
import { PARAMS, param, seed } from '../helpers/hardening-params.js';

const CASES = param(PARAMS.fuzzLive);
const SEED = seed();

/** One mutant drawn from the template of THIS connection (client_finish and records differ each time). */
function draw(template: Buffer, caseSeed: number, family: 'frame' | 'field' = 'frame'): Mutant {
  const arb =
    family === 'field' ? fc.oneof(fieldMutantsOf(template), mutantsOf(template)) : mutantsOf(template);
  return fc.sample(arb, { numRuns: 1, seed: caseSeed })[0]!;
}

async function plaintextAnswer(conn: RawConnection): Promise<Outcome> {
  const frame = await conn.next(5_000);
  if (frame === 'hang') return { kind: 'hang' };
  if (frame === undefined) {
    const closed = await conn.closed;
    return { kind: 'closed-silently', closeCode: closed.code, closeReason: closed.reason };
  }
  let t: string;
  let code = '';
  try {
    const f = decodeFrame(frame);
    t = f.t;
    if (f.t === 'alert') code = f.code;
  } catch {
    return { kind: 'progress' }; // a record: the handshake went through
  }
  if (t !== 'alert') return { kind: 'progress' };
  const closed = await Promise.race([
    conn.closed,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000)),
  ]);
  return { kind: 'alert', code, closeCode: closed?.code };
}

t.test('live server fuzzing', { timeout: Math.max(600_000, CASES * 4 * 100) }, async (t) => {
  const dataDir = await initDataDir(t);
  const ca = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  const fuzzer = await issueTestClient(ca, 'fuzzer');
  const honestId = await issueTestClient(ca, 'honest');
  await ca.close();
  const server = await startServer(t, dataDir);
  const caCertPem = readFileSync(join(dataDir, 'root_ca.pem'), 'utf8');
  const creds = { privateKey: fuzzer.privateKey, certPem: fuzzer.certPem };
  const honest = await openSession({
    server: server.url,
    mode: 'auth',
    credentials: { privateKey: honestId.privateKey, certPem: honestId.certPem },
    caCertPem,
  });
  t.comment(`seed ${SEED} (KDS_SEED=${SEED} replays), ${CASES} mutants per frame type`);
  let n = 0;

  const run = async (
    name: string,
    attempt: (caseSeed: number, address: string) => Promise<{ m: Mutant; out: Outcome }>,
  ): Promise<void> => {
    const labels: string[] = [];
    const kinds: string[] = [];
    const started = performance.now();
    await fc.assert(
      fc.asyncProperty(fc.integer(), async (caseSeed) => {
        const { m, out } = await attempt(caseSeed, loopbackAddress(n++));
        kinds.push(m.kind);
        labels.push(judge(m, out, `${name} `));
        if (n % 100 === 0 && (await honest.request('ping', {})).pong !== true)
          throw new Error('the honest session stopped answering');
      }),
      { numRuns: CASES, seed: SEED, endOnFailure: true },
    );
    t.equal(labels.length, CASES, `${name}: ${CASES} mutants against the live server, each answered`);
    t.comment(`${name} (${((performance.now() - started) / 1000).toFixed(1)} s): ${tally(labels)}`);
    t.comment(`${name} mutations: ${tally(kinds)}`);
  };

  await run('client_hello', async (caseSeed, localAddress) => {
    const m = draw(newClientHandshake({ credentials: creds, caCertPem }).clientHello(), caseSeed);
    const conn = await rawConnect(server.url, { localAddress });
    conn.send(m.bytes);
    const out = await plaintextAnswer(conn);
    conn.destroy();
    return { m, out };
  });

  await run('client_finish', async (caseSeed, localAddress) => {
    const { conn, hs } = await rawHello({ url: server.url, credentials: creds, caCertPem, localAddress });
    const sh = await conn.next(10_000);
    if (sh === undefined || sh === 'hang') throw new Error(`no server_hello (${String(sh)})`);
    const { clientFinish } = await hs.receiveServerHello(sh);
    const m = draw(clientFinish, caseSeed);
    conn.send(m.bytes);
    const out = await plaintextAnswer(conn);
    conn.destroy();
    return { m, out };
  });

  await run('record', async (caseSeed, localAddress) => {
    const s = await rawHandshake({ url: server.url, credentials: creds, caCertPem, localAddress });
    const m = draw(s.sealRaw(requestPlaintext('ping', 1, { data: Buffer.alloc(16, 1) })), caseSeed);
    s.conn.send(m.bytes);
    const reply = await s.readValue();
    let out: Outcome;
    if (reply === 'hang') out = { kind: 'hang' };
    else if (reply === undefined) {
      const closed = await s.conn.closed;
      out = { kind: 'closed-silently', closeCode: closed.code, closeReason: closed.reason };
    } else if (reply.t === 'ok') out = { kind: 'progress' };
    else if (reply.t === 'session.closing')
      out = {
        kind: 'alert',
        code: String((reply.b as Record<string, unknown>).code),
        closeCode: (await s.conn.closed).code,
      };
    else out = { kind: 'alert', code: `unexpected ${String(reply.t)}`, closeCode: undefined };
    s.conn.destroy();
    return { m, out };
  });

  // Application messages: one live session, replaced only when a mutant makes the server end it.
  const templates: [string, Record<string, unknown>][] = [
    ['ping', { data: Buffer.alloc(8, 2) }],
    ['cert.status', { serial: honestId.cert.serialHex }],
    ['key.peer', { name: 'honest' }],
    ['key.list', {}],
    ['key.get', { serial: '0'.repeat(32) }],
  ];
  let live = await rawHandshake({ url: server.url, credentials: creds, caCertPem });
  let id = 0;
  await run('application', async (caseSeed) => {
    if (live.conn.ws.readyState !== live.conn.ws.OPEN)
      live = await rawHandshake({ url: server.url, credentials: creds, caCertPem });
    const [type, body] = templates[Math.abs(caseSeed) % templates.length]!;
    const m = draw(requestPlaintext(type, ++id, body), caseSeed, 'field');
    live.conn.send(live.sealRaw(m.bytes));
    for (;;) {
      const reply = await live.readValue();
      if (reply === 'hang') return { m, out: { kind: 'hang' } };
      if (reply === undefined) {
        const closed = await live.conn.closed;
        return { m, out: { kind: 'closed-silently', closeCode: closed.code, closeReason: closed.reason } };
      }
      if (reply.t === 'ok') return { m, out: { kind: 'progress' } };
      // An `error` answer keeps the session: it is the error code without a close.
      if (reply.t === 'error') return { m, out: { kind: 'answered', code: String(reply.code) } };
      if (reply.t === 'session.closing') {
        return {
          m,
          out: {
            kind: 'alert',
            code: String((reply.b as Record<string, unknown>).code),
            closeCode: (await live.conn.closed).code,
          },
        };
      }
    }
  });

  t.equal(server.child.exitCode, null, 'the server process is still running');
  t.equal(server.child.signalCode, null, 'the server process was not killed by a signal');
  const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as { ok: boolean };
  t.equal(health.ok, true, '/healthz answers ok');
  t.equal(
    (await honest.request('ping', {})).pong,
    true,
    'the honest session opened before the fuzzing still works',
  );
  const fresh = await openSession({ server: server.url, mode: 'auth', credentials: creds, caCertPem });
  t.equal(fresh.facts.identity.name, 'fuzzer', 'a fresh handshake still completes');
  await Promise.all([fresh.close(), honest.close()]);
  t.notMatch(server.stderr(), /internal error/, 'the server never logged an internal error');
});
