// Resumed handshakes (docs/protocol.md, "Resumption") between the pure state machines: a full `auth`
// session gives both sides the same resumption secret; a ticket sealed with it resumes with a fresh
// Diffie-Hellman and no RSA operation on either side; and every way to misuse a ticket is refused with
// its code before any Diffie-Hellman is computed.
import t from 'tap';
import { codeOf } from '../../helpers/code-of.js';
import { AuthError } from '../../../shared/errors.js';
import {
  ClientHandshake,
  ServerHandshake,
  type ServerHandshakeOptions,
} from '../../../shared/protocol/handshake.js';
import { decodeFrame, encodeFrame, type Frame } from '../../../shared/protocol/messages.js';
import { appendEntries } from '../../../shared/protocol/transcript.js';
import { encodeValue } from '../../../shared/protocol/codec.js';
import {
  newTicketKey,
  openTicket,
  sealTicket,
  type TicketContents,
  type TicketKeyRing,
} from '../../../shared/protocol/ticket.js';
import { clientCheck, handshake, makePki, serverCheck, type Pki } from './fixtures.js';
import { asPssSigner } from '../../../shared/crypto/signer.js';

t.setTimeout(120_000);

let pki: Pki;
t.before(async () => {
  pki = await makePki();
});

const HOUR = 3_600_000;
const ring: TicketKeyRing = (() => {
  const k = newTicketKey();
  return { current: k, all: [k] };
})();

/** A full auth handshake, then the ticket the KDC would send at its end. */
async function fullSession(
  now = Date.now(),
): Promise<{ ticket: Buffer; psk: Buffer; contents: TicketContents }> {
  const f = await handshake(
    { mode: 'auth', credentials: pki.client.credentials, checkServerCertificate: serverCheck(pki) },
    { credentials: pki.server.credentials, checkClientCertificate: clientCheck(pki) },
  );
  const cert = f.server.clientCertificate!;
  const contents: TicketContents = {
    v: 1,
    name: cert.subjectCN,
    serial: cert.serialHex,
    role: 'client',
    notAfter: cert.notAfter,
    issuedAt: now,
    expiresAt: now + HOUR,
    psk: Buffer.from(f.server.resumptionSecret!),
  };
  return { ticket: sealTicket(ring, contents), psk: Buffer.from(f.client.resumptionSecret!), contents };
}

interface Counters {
  signs: number;
  verifies: number;
  checks: number;
}

function resumeServer(
  counters: Counters,
  extra: Partial<NonNullable<ServerHandshakeOptions['resumption']>> = {},
  keys: TicketKeyRing = ring,
): ServerHandshakeOptions {
  return {
    credentials: {
      certificateDer: pki.server.credentials.certificateDer,
      sign: asPssSigner((d) => {
        counters.signs += 1;
        return pki.server.credentials.sign(d);
      }),
    },
    checkClientCertificate: clientCheck(pki),
    verifySignature: () => {
      counters.verifies += 1;
      return false;
    },
    resumption: {
      keys: () => keys,
      check: () => {
        counters.checks += 1;
      },
      ...extra,
    },
  };
}

t.test(
  'both sides of a full auth session derive the same resumption secret; enroll and insecure none',
  async (t) => {
    const f = await handshake(
      { mode: 'auth', credentials: pki.client.credentials, checkServerCertificate: serverCheck(pki) },
      { credentials: pki.server.credentials, checkClientCertificate: clientCheck(pki) },
    );
    t.equal(f.client.resumptionSecret!.length, 32);
    t.same(f.client.resumptionSecret, f.server.resumptionSecret);
    const e = await handshake(
      { mode: 'enroll', checkServerCertificate: serverCheck(pki) },
      { credentials: pki.server.credentials, checkClientCertificate: clientCheck(pki) },
    );
    t.equal(e.client.resumptionSecret, undefined, 'an anonymous session has nothing to resume');
    t.equal(e.server.resumptionSecret, undefined);
  },
);

t.test('a resumed handshake: fresh keys, the ticket identity, no RSA on either side', async (t) => {
  const { ticket, psk, contents } = await fullSession();
  const counters: Counters = { signs: 0, verifies: 0, checks: 0 };
  const f = await handshake({ mode: 'resume', resumption: { ticket, psk } }, resumeServer(counters));
  t.equal(f.client.mode, 'resume');
  t.equal(f.server.mode, 'resume');
  t.equal(f.client.sessionId, f.server.sessionId);
  const { psk: _psk, ...identity } = contents;
  t.same(f.server.resumed, identity, 'the identity of the ticket');
  t.notOk('psk' in f.server.resumed!, 'the psk is not handed to the caller');
  t.same(
    counters,
    { signs: 0, verifies: 0, checks: 1 },
    'no signature made or verified; standing checked once',
  );
  t.equal(f.client.serverCertificate, undefined);
  t.same(f.client.resumptionSecret, f.server.resumptionSecret, 'a new secret for the next ticket');
  t.not(f.client.resumptionSecret!.toString('hex'), psk.toString('hex'), 'not the old one');
  // The channels work both ways.
  const sealed = f.client.channel.sealRequest('ping', 1, {});
  t.match(f.server.channel.open(sealed), { type: 'ping', id: 1 });
  const fh = decodeFrame(f.clientHello) as Frame & { binder?: Buffer };
  t.equal(fh.t, 'client_hello');
  t.ok(
    fh.binder !== undefined && f.clientHello.subarray(-32).equals(fh.binder),
    'the binder is the last entry',
  );
  // Two resumptions with the same ticket get different keys (fresh DH and nonces each time).
  const g = await handshake({ mode: 'resume', resumption: { ticket, psk } }, resumeServer(counters));
  t.not(g.client.sessionId, f.client.sessionId);
});

t.test('every refusal of a ticket, with its code', async (t) => {
  const { ticket, psk, contents } = await fullSession();
  const counters: Counters = { signs: 0, verifies: 0, checks: 0 };
  const attempt = (
    opts: { ticket: Buffer; psk: Buffer },
    server: ServerHandshakeOptions = resumeServer(counters),
    tamper: Parameters<typeof handshake>[2] = {},
  ): Promise<string> => codeOf(handshake({ mode: 'resume', resumption: opts }, server, tamper));

  t.equal(
    await attempt({ ticket, psk: Buffer.alloc(32, 7) }),
    'ticket_invalid',
    'the wrong psk: the binder fails',
  );
  const flipped = Buffer.from(ticket);
  flipped[flipped.length - 1]! ^= 1;
  t.equal(await attempt({ ticket: flipped, psk }), 'ticket_invalid', 'a bit flipped in the ticket');
  const other = newTicketKey();
  t.equal(
    await attempt({ ticket, psk }, resumeServer(counters, {}, { current: other, all: [other] })),
    'ticket_invalid',
    'a key this KDC does not have (rotated out, or another KDC)',
  );
  t.equal(
    await attempt({ ticket, psk }, resumeServer(counters, { now: () => contents.expiresAt })),
    'ticket_invalid',
    'expired',
  );
  const late = sealTicket(ring, { ...contents, notAfter: Date.now() - 1 });
  t.equal(await attempt({ ticket: late, psk }), 'ticket_invalid', 'the certificate expired meanwhile');
  const { resumption: _none, ...noResumption } = resumeServer(counters);
  t.equal(
    await attempt({ ticket, psk }, noResumption),
    'ticket_invalid',
    'a server that does not resume: the client falls back to a full handshake',
  );
  t.equal(
    await attempt(
      { ticket, psk },
      resumeServer(counters, {
        check: () => {
          throw new AuthError('cert_revoked', 'certificate revoked');
        },
      }),
    ),
    'cert_revoked',
    'the identity was revoked since: the answer of the full handshake',
  );
  // Mallory changes the key share in flight: the binder covers it.
  const swapShare = (b: Buffer): Buffer => {
    const f = decodeFrame(Buffer.from(b)) as unknown as Record<string, unknown>;
    const share = Buffer.from(f.share as Buffer);
    share[0]! ^= 1;
    const { binder, ...core } = f;
    return appendEntries(encodeValue({ ...core, share }), [['binder', binder as Buffer]]);
  };
  t.equal(await attempt({ ticket, psk }, undefined, { clientHello: swapShare }), 'ticket_invalid');
  // An entry after the binder would not be covered by it.
  const trailing = (b: Buffer): Buffer => appendEntries(b, [['x', Buffer.alloc(1)]]);
  t.equal(await attempt({ ticket, psk }, undefined, { clientHello: trailing }), 'schema');
  t.equal(counters.signs + counters.verifies, 0, 'no refusal cost an RSA operation');
});

t.test('Mallory without the psk: replay and downgrade fail at the Finished MACs', async (t) => {
  const { ticket, psk } = await fullSession();
  const counters: Counters = { signs: 0, verifies: 0, checks: 0 };
  // Replay: the client's hello captured and sent again to a new server handshake. The server answers
  // (the ticket and binder are genuine), but the replayer has neither the DH private key nor the psk,
  // so the only client_finish she has (the real one, bound to the first server_hello) fails.
  const client = new ClientHandshake({ mode: 'resume', resumption: { ticket, psk } });
  const hello = client.clientHello();
  const first = new ServerHandshake(resumeServer(counters));
  const { clientFinish } = await client.receiveServerHello(await first.receiveClientHello(hello));
  await first.receiveClientFinish(clientFinish);
  const replayed = new ServerHandshake(resumeServer(counters));
  await replayed.receiveClientHello(Buffer.from(hello));
  t.equal(await codeOf(replayed.receiveClientFinish(clientFinish)), 'bad_mac');

  // Downgrade: Mallory answers the resume hello with an unauthenticated (insecure) server_hello of her
  // own, or a full server_hello: the client refuses both.
  const victim = new ClientHandshake({ mode: 'resume', resumption: { ticket, psk } });
  victim.clientHello();
  const mallory = new ClientHandshake({ mode: 'insecure', name: 'mallory' });
  const insecureServer = new ServerHandshake({
    credentials: pki.server.credentials,
    checkClientCertificate: clientCheck(pki),
    allowInsecure: true,
  });
  const hers = await insecureServer.receiveClientHello(mallory.clientHello());
  t.equal(await codeOf(victim.receiveServerHello(hers)), 'bad_mac', 'her server_hello: no psk, wrong MAC');
  const victim2 = new ClientHandshake({ mode: 'resume', resumption: { ticket, psk } });
  victim2.clientHello();
  const full = new ServerHandshake({
    credentials: pki.server.credentials,
    checkClientCertificate: clientCheck(pki),
  });
  const fullHello = await full.receiveClientHello(
    new ClientHandshake({ mode: 'enroll', checkServerCertificate: serverCheck(pki) }).clientHello(),
  );
  t.equal(await codeOf(victim2.receiveServerHello(fullHello)), 'schema', 'a certificate in a resumed reply');
});

t.test('tickets: sealed contents are unreadable, and open only under their key', async (t) => {
  const { ticket, contents } = await fullSession();
  t.notOk(ticket.includes(Buffer.from(contents.name)), 'the name is not in clear');
  t.notOk(ticket.includes(contents.psk), 'nor the psk');
  const opened = openTicket(ring, ticket, Date.now());
  t.same(opened.psk, contents.psk);
  t.equal(opened.serial, contents.serial);
  const older = newTicketKey();
  const rotated: TicketKeyRing = { current: newTicketKey(), all: [] };
  const withOld: TicketKeyRing = { current: rotated.current, all: [rotated.current, ring.current, older] };
  t.equal(openTicket(withOld, ticket, Date.now()).serial, contents.serial, 'a previous key still opens');
  t.throws(() => openTicket(ring, ticket.subarray(0, 20), Date.now()), { code: 'ticket_invalid' });
  t.throws(() => sealTicket(ring, { ...contents, name: 'Bad Name' }), { code: 'schema' });
  // re-encoding a decoded frame keeps resume frames valid for the schema (encodeFrame refuses a bad mix)
  t.throws(
    () =>
      encodeFrame({
        t: 'client_hello',
        v: 1,
        mode: 'auth',
        groups: ['x25519'],
        group: 'x25519',
        nonce: Buffer.alloc(32),
        share: Buffer.alloc(32, 9),
        ticket,
      } as Frame),
    { code: 'schema' },
  );
});
