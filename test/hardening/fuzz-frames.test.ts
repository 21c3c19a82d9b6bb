// Fuzzing the three frames a client can send (client_hello, client_finish, record) through the KDC's
// real connection handler in-process (test/helpers/frame-harness.ts), KDS_FUZZ_FRAMES mutants per
// frame type (CI 3,000; full 10,000 with KDS_HARDENING_FULL=1): bit flips, truncation, extension, type
// confusion, huge length headers, deep nesting, msgpack extension types (test/helpers/mutate.ts). For
// every mutant the server must answer within 5 s with either
//   - an error code and a close whose code is the one shared/errors.ts maps that error to (an `alert`
//     before the handshake, a `session.closing` push inside the record layer after it, and for a
//     record that fails authentication no answer at all: a 4005 close whose reason is record_auth), or
//   - progress, when the mutant is still a valid frame (a bit flip in a nonce): server_hello / ready;
// never a code that blames the server (`internal`, `store_error`: test/helpers/fuzz-judge.ts), never
// a silent close, never a hang. A real-socket session to the same KDC pings throughout and must stay
// usable. The same mutators run against a live server process in fuzz-live.test.ts.
import t from 'tap';
import fc from 'fast-check';
import { encodeValue } from '../../shared/protocol/codec.js';
import { decodeFrame, encodeFrame } from '../../shared/protocol/messages.js';
import { RecordSealer } from '../../shared/protocol/record-layer.js';
import { startFrameHarness, plaintextOutcome, type FakeSession } from '../helpers/frame-harness.js';
import { judge, type Outcome } from '../helpers/fuzz-judge.js';
import { issueTestClient, sessionFor, startTestKdc } from '../helpers/kdc-in-process.js';
import { mutantsOf, tally, type Mutant } from '../helpers/mutate.js';
import { PARAMS, param, seed } from '../helpers/hardening-params.js';

const FRAMES = param(PARAMS.fuzzFrames);
const SEED = seed();
const HONEST_PING_EVERY = 500;

t.test(
  'in-process frame fuzzing: client_hello, client_finish, record',
  { timeout: Math.max(300_000, FRAMES * 3 * 20) },
  async (t) => {
    const { kdc, dataDir } = await startTestKdc(t, { rateLimit: false });
    const h = await startFrameHarness(kdc, dataDir);
    const fixed = await h.fixedHandshake('client', 'fuzzer');
    const honest = await sessionFor(kdc, await issueTestClient(kdc.ca, 'honest'));
    let cases = 0;
    const pingHonest = async (): Promise<void> => {
      if (++cases % HONEST_PING_EVERY !== 0) return;
      const pong = await honest.request('ping', { data: Buffer.from([cases & 0xff]) });
      if (pong.pong !== true) throw new Error('the honest session stopped answering');
    };
    t.comment(`seed ${SEED} (KDS_SEED=${SEED} replays), ${FRAMES} mutants per frame type`);

    /**
     * `authenticated(m)`: for frames whose every byte is covered by a MAC or an AEAD tag, a mutant the
     * server ACCEPTS must carry exactly the authenticated content of the template; anything else would
     * mean a modification went unnoticed.
     */
    const run = async (
      name: string,
      template: Buffer,
      attempt: (m: Mutant) => Promise<Outcome>,
      authenticated?: (m: Mutant) => boolean,
    ): Promise<void> => {
      const codes: string[] = [];
      const kinds: string[] = [];
      const started = performance.now();
      const cpu = process.cpuUsage();
      await fc.assert(
        fc.asyncProperty(mutantsOf(template), async (m) => {
          kinds.push(m.kind);
          let label = judge(m, await attempt(m));
          if (label === 'accepted' && m.bytes.equals(template)) label = 'unchanged (no-op mutant)';
          else if (label === 'accepted' && authenticated !== undefined && !authenticated(m)) {
            throw new Error(`${name}: a modified frame was accepted: ${m.kind} ${m.bytes.toString('hex')}`);
          }
          codes.push(label);
          await pingHonest();
        }),
        { numRuns: FRAMES, seed: SEED, endOnFailure: true },
      );
      t.equal(
        codes.length,
        FRAMES,
        `${name}: ${FRAMES} mutants, each answered with an error code and a close, or accepted`,
      );
      t.comment(`${name} outcomes: ${tally(codes)}`);
      t.comment(`${name} mutations: ${tally(kinds)}`);
      const used = process.cpuUsage(cpu);
      t.comment(
        `${name}: ${((performance.now() - started) / 1000).toFixed(1)} s, cpu ${((used.user + used.system) / 1e6).toFixed(1)} s`,
      );
    };

    await run('client_hello', fixed.clientHello, async (m) => {
      const { sock } = h.connection();
      sock.deliver(m.bytes);
      const out = await plaintextOutcome(sock);
      sock.peerClose();
      return out;
    });

    await run(
      'client_finish',
      fixed.clientFinish,
      async (m) => {
        const { sock } = h.connection();
        sock.deliver(fixed.clientHello);
        const sh = await sock.next();
        if (sh === undefined || !sh.equals(fixed.serverHello))
          throw new Error('the fixed server_hello changed');
        sock.deliver(m.bytes);
        const out = await plaintextOutcome(sock);
        sock.peerClose();
        return out;
        // Every byte of client_finish is in the transcript its MAC covers: only the template itself passes.
      },
      (m) => m.bytes.equals(fixed.clientFinish),
    );

    // The first client record of the fixed session: a ping, sealed at sequence 0 under the known keys.
    const ping = encodeValue({ t: 'ping', id: 1, b: { data: Buffer.alloc(16, 0x5a) } });
    const firstRecord = encodeFrame({
      t: 'r',
      c: new RecordSealer(fixed.keys.c2sKey, fixed.keys.c2sIv, 'c2s').seal(ping),
    });
    await run(
      'record',
      firstRecord,
      async (m) => {
        const s: FakeSession = await fixed.open();
        s.send(m.bytes);
        const reply = await s.next();
        if (reply === 'hang') return { kind: 'hang' };
        if (reply === undefined)
          return { kind: 'closed-silently', closeCode: s.sock.closeCode, closeReason: s.sock.closeReason };
        if (reply.t === 'ok' || reply.t === 'error') {
          await s.close();
          return reply.t === 'ok'
            ? { kind: 'progress' }
            : { kind: 'alert', code: 'error-response-to-a-broken-record', closeCode: undefined };
        }
        if (reply.t !== 'session.closing')
          throw new Error(`unexpected ${String(reply.t)} after a mutated record`);
        const closeCode = await s.sock.closed;
        return { kind: 'alert', code: String((reply.b as Record<string, unknown>).code), closeCode };
        // The AEAD covers `c`: an accepted record may differ from the template only in the msgpack
        // encoding of the frame around the same ciphertext.
      },
      (m) => sameCiphertext(m.bytes, firstRecord),
    );

    t.same(
      h.logs.filter((l) => l.includes('internal')),
      [],
      'no connection logged an internal error',
    );
    const pong = await honest.request('ping', {});
    t.equal(pong.pong, true, 'the honest session is still usable after the fuzzing');
    t.equal(kdc.sessions.size, 1, 'only the honest session is left in the session table');
    await honest.close();
  },
);

function sameCiphertext(a: Buffer, b: Buffer): boolean {
  const fa = decodeFrame(a);
  const fb = decodeFrame(b);
  return fa.t === 'r' && fb.t === 'r' && fa.c.equals(fb.c);
}
