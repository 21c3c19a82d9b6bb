// Fuzzing every application request type BEHIND the record layer: the mutated message is sealed under
// the session's real traffic keys (test/helpers/frame-harness.ts knows them), so it authenticates and
// reaches the envelope check, the catalog schema, the role check and the handler, which a mutated
// ciphertext never would. Three in five mutants keep the message well-formed and change one field to
// an edge value of its own type (mutate.ts fieldMutantsOf), the rest are the frame mutators' mix.
// KDS_FUZZ_APP mutants per request type (CI 200; full 10,000), batched on one
// session per type: the protocol keeps a session after an `error` answer, and a new one is opened only
// when a mutant made the server end it. For each mutant the server must, within 5 s, answer with
//   - `ok` (the mutant was still a valid request) or `error` with a known code, keeping the session, or
//   - a `session.closing` push with a known code and then the close code shared/errors.ts maps it to;
// never a code that blames the server for the client's bytes (`internal`, `store_error`), never silence. Templates are VALID requests built from real state (a reserved
// key, a deposit signed for it, a KDC-generated key, a CSR), so mutations start deep in each handler.
import t from 'tap';
import fc from 'fast-check';
import { isErrorCode } from '../../shared/errors.js';
import { expectedClose, SERVER_FAULT_CODES } from '../helpers/fuzz-judge.js';
import { runSenderExchange } from '../../shared/keys/exchange.js';
import { generatePrekey } from '../../shared/keys/prekey.js';
import { encodeValue } from '../../shared/protocol/codec.js';
import { appTypeNames, getAppType } from '../../shared/protocol/app-types.js';
import { createCsr } from '../../shared/pki/csr.js';
import {
  startFrameHarness,
  type FakeSession,
  type FixedHandshake,
  type FrameHarness,
} from '../helpers/frame-harness.js';
import { issueTestClient, sessionFor, startTestKdc, testKeyPair } from '../helpers/kdc-in-process.js';
import { fieldMutantsOf, mutantsOf, tally, type Mutant } from '../helpers/mutate.js';
import { PARAMS, param, seed } from '../helpers/hardening-params.js';

const CASES = param(PARAMS.fuzzApp);
const SEED = seed();

type Body = Record<string, unknown>;
type Role = 'client' | 'admin' | 'enroll';

interface Template {
  type: string;
  role: Role;
  body: Body;
}

/** Owns the current fuzzing session of one role and replaces it when the server ends it. */
class SessionSlot {
  #session: FakeSession | undefined;
  #fixed: FixedHandshake;
  #generation = 0;
  readonly #h: FrameHarness;
  readonly #role: Role;
  constructor(h: FrameHarness, role: Role, fixed: FixedHandshake) {
    this.#h = h;
    this.#role = role;
    this.#fixed = fixed;
  }

  async get(): Promise<FakeSession> {
    if (this.#session !== undefined && !this.#session.conn.closed) return this.#session;
    try {
      this.#session = await this.#fixed.open();
    } catch (err) {
      // A mutant revoked this identity's own certificate (its `ok` came before the close): renew it.
      if (!String((err as Error).message).includes('cert_revoked')) throw err;
      await this.renewIdentity();
      this.#session = await this.#fixed.open();
    }
    return this.#session;
  }

  /** The identity's certificate was revoked by a mutant (cert.revoke without a serial): get another. */
  async renewIdentity(): Promise<void> {
    this.#generation += 1;
    this.#fixed = await this.#h.fixedHandshake(this.#role, `fuzz-${this.#role}-${this.#generation}`);
    this.#session = undefined;
  }
}

// The tap timeout grows with the volume (the full figure, 190,000 mutants, takes about half an hour).
t.test(
  'application messages inside authenticated records',
  { timeout: Math.max(600_000, CASES * 19 * 30) },
  async (t) => {
    const { kdc, dataDir } = await startTestKdc(t, { rateLimit: false });
    const h = await startFrameHarness(kdc, dataDir);
    const fixed = {
      client: await h.fixedHandshake('client', 'fuzz-client'),
      admin: await h.fixedHandshake('admin', 'fuzz-admin'),
      enroll: await h.fixedHandshake('enroll'),
    };
    const me = fixed.client.identity!;

    // Real state for valid templates: a peer with prekeys, a reservation and a deposit signed for it,
    // a KDC-generated key, a CSR.
    const peer = await issueTestClient(kdc.ca, 'peer-b');
    const honest = await sessionFor(kdc, await issueTestClient(kdc.ca, 'honest'));
    const peerSession = await sessionFor(kdc, peer);
    const mine = await sessionFor(kdc, me);
    const prekeys = await Promise.all(
      Array.from({ length: 40 }, () =>
        generatePrekey({ name: 'peer-b', certSerial: peer.cert.serialHex }, peer.privateKey),
      ),
    );
    await peerSession.request('key.prekeys', {
      prekeys: prekeys.map((p) => ({ id: p.id, publicKey: p.publicKey, signature: p.signature })),
    });
    const reservation = await mine.request('key.reserve', { peer: 'peer-b' });
    const prekey = reservation.prekey as Body;
    const sent = await runSenderExchange(
      { name: me.name, certSerial: me.cert.serialHex, privateKey: me.privateKey },
      {
        serial: String(reservation.serial),
        expiresAt: Number(reservation.expiresAt),
        peer: 'peer-b',
        peerCert: reservation.peerCert as Buffer,
        prekey: {
          id: String(prekey.id),
          publicKey: prekey.publicKey as Buffer,
          signature: prekey.signature as Buffer,
        },
      },
      { ca: kdc.ca.caCert },
    );
    const created = await mine.request('key.create', { peer: 'peer-b' });
    const keySerial = String(created.serial);
    const ownPrekey = await generatePrekey({ name: me.name, certSerial: me.cert.serialHex }, me.privateKey);
    const pair = await testKeyPair();
    const csr = await createCsr('newcomer', pair.privateKeyPem, pair.publicKeyPem);
    const renewPair = await testKeyPair();
    const renewCsr = await createCsr(me.name, renewPair.privateKeyPem, renewPair.publicKeyPem);

    const templates: Template[] = [
      { type: 'ping', role: 'client', body: { data: Buffer.alloc(16, 7) } },
      { type: 'cert.status', role: 'client', body: { serial: peer.cert.serialHex } },
      { type: 'cert.revoke', role: 'client', body: { serial: peer.cert.serialHex, reason: 'keyCompromise' } },
      { type: 'enroll', role: 'enroll', body: { token: 'A'.repeat(43), csr } },
      { type: 'cert.renew', role: 'client', body: { csr: renewCsr } },
      { type: 'session.ticket', role: 'client', body: {} },
      { type: 'admin.token', role: 'admin', body: { name: 'newcomer', ttl: 60_000 } },
      { type: 'key.peer', role: 'client', body: { name: 'peer-b' } },
      {
        type: 'key.prekeys',
        role: 'client',
        body: {
          prekeys: [{ id: ownPrekey.id, publicKey: ownPrekey.publicKey, signature: ownPrekey.signature }],
        },
      },
      { type: 'key.reserve', role: 'client', body: { peer: 'peer-b', ttl: 3_600_000 } },
      { type: 'key.deposit', role: 'client', body: { ...sent.deposit } },
      { type: 'key.create', role: 'client', body: { peer: 'peer-b', ttl: 3_600_000 } },
      { type: 'key.verify', role: 'client', body: { serial: keySerial, digest: Buffer.alloc(32, 1) } },
      { type: 'key.create.batch', role: 'client', body: { peer: 'peer-b', count: 2, ttl: 3_600_000 } },
      {
        type: 'key.verify.batch',
        role: 'client',
        body: { items: [{ serial: keySerial, digest: Buffer.alloc(32, 1) }], ack: [1] },
      },
      { type: 'key.get', role: 'client', body: { serial: keySerial } },
      { type: 'key.list', role: 'client', body: {} },
      { type: 'key.revoke', role: 'client', body: { serial: keySerial, reason: 'superseded' } },
      { type: 'key.sync', role: 'client', body: {} },
      { type: 'key.ack', role: 'client', body: { ids: [1, 2, 3] } },
      {
        type: 'msg.send',
        role: 'client',
        body: {
          to: 'peer-b',
          serial: keySerial,
          seq: 1,
          nonce: Buffer.alloc(12, 3),
          ciphertext: Buffer.alloc(48, 4),
        },
      },
      { type: 'admin.keys', role: 'admin', body: { revoked: true } },
      { type: 'admin.key.revoke', role: 'admin', body: { serial: keySerial, reason: 'keyCompromise' } },
    ];
    const requestTypes = appTypeNames().filter((n) => getAppType(n)?.request !== undefined);
    t.same(
      requestTypes.filter((n) => !templates.some((tp) => tp.type === n)),
      [],
      'every request type in the catalog has a fuzz template',
    );
    t.comment(`seed ${SEED} (KDS_SEED=${SEED} replays), ${CASES} mutants per request type`);

    const slots = {
      client: new SessionSlot(h, 'client', fixed.client),
      admin: new SessionSlot(h, 'admin', fixed.admin),
      enroll: new SessionSlot(h, 'enroll', fixed.enroll),
    };
    for (const tp of templates) {
      const slot = slots[tp.role];
      const template = encodeValue({ t: tp.type, id: 1, b: tp.body });
      const outcomes: string[] = [];
      const kinds: string[] = [];
      const started = performance.now();
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            { weight: 3, arbitrary: fieldMutantsOf(template) },
            { weight: 2, arbitrary: mutantsOf(template) },
          ),
          async (m: Mutant) => {
            kinds.push(m.kind);
            const where = `${tp.type} ${m.kind} ${m.bytes.subarray(0, 96).toString('hex')}`;
            const s = await slot.get();
            s.send(s.seal(m.bytes));
            for (;;) {
              const reply = await s.next();
              if (reply === 'hang') throw new Error(`no answer within 5 s to ${where}`);
              if (reply === undefined)
                throw new Error(`closed (${s.sock.closeCode}) without an error code for ${where}`);
              if (reply.t === 'ok') {
                outcomes.push('ok');
                break;
              }
              if (reply.t === 'error') {
                const code = String(reply.code);
                if (!isErrorCode(code) || SERVER_FAULT_CODES.has(code))
                  throw new Error(`error code ${code} for ${where}: ${String(reply.message)}`);
                outcomes.push(code);
                break;
              }
              if (reply.t === 'session.closing') {
                const code = String((reply.b as Body).code);
                if (!isErrorCode(code) || SERVER_FAULT_CODES.has(code))
                  throw new Error(`session closed with ${code} for ${where}`);
                const closeCode = await s.sock.closed;
                if (closeCode !== expectedClose(code))
                  throw new Error(
                    `${code} closed with ${closeCode}, expected ${expectedClose(code)} (${where})`,
                  );
                if (code === 'cert_revoked') await slot.renewIdentity();
                outcomes.push(`closed:${code}`);
                break;
              }
              // a push (key.delivered, key.revoked, cert.revoked...): not the answer, keep reading
            }
          },
        ),
        { numRuns: CASES, seed: SEED, endOnFailure: true },
      );
      t.equal(
        outcomes.length,
        CASES,
        `${tp.type}: ${CASES} mutants answered (ok, error code, or error code and close)`,
      );
      t.comment(`${tp.type} (${((performance.now() - started) / 1000).toFixed(1)} s): ${tally(outcomes)}`);
      t.comment(`${tp.type} mutations: ${tally(kinds)}`);
      const pong = await honest.request('ping', {});
      if (pong.pong !== true) t.fail(`the honest session stopped answering after ${tp.type}`);
    }

    t.same(
      h.logs.filter((l) => l.includes('internal')),
      [],
      'no request logged an internal error',
    );
    t.equal(
      (await honest.request('ping', {})).pong,
      true,
      'the honest session is still usable after the fuzzing',
    );
    await Promise.all([honest.close(), peerSession.close(), mine.close()]);
  },
);
