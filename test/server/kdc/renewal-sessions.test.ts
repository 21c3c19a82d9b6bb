// A renewal ends the sessions of the certificate it replaced (docs/protocol.md "Renewal"), and no
// session of it may open afterwards. The installer ends the ones in its session table; two ways round
// that are shut here:
// - a handshake that checked the certificate before the renewal and enters the table after the sweep:
//   a resumed one checks it at its client_hello, and the client chooses when to send client_finish
//   (up to the handshake timeout), so the KDC looks again when a renewal was installed meanwhile;
// - a session on another node (or KDC process) of the same store: the installer's sweep is local, so
//   the other node ends it when its catch-up reads the renewal's CRL entry.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readClientHome } from '../../../client/home.js';
import { renewClient } from '../../../client/renew.js';
import { openHomeSession } from '../../../client/session.js';
import { readTicket, TICKET_FILE } from '../../../client/ticket-file.js';
import { startKdc } from '../../../server/kdc/kdc.js';
import { parseCertificate } from '../../../shared/pki/x509.js';
import { ClientHandshake } from '../../../shared/protocol/handshake.js';
import { decodeFrame } from '../../../shared/protocol/messages.js';
import { TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { rawConnect } from '../../helpers/raw-client.js';
import { inProcessKdc, type Env } from '../../client/keys/inproc.js';

t.setTimeout(120_000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A full session of `name`'s home, kept open until it saved its ticket; then the ticket. */
async function ticketOf(env: Env, name: string): Promise<{ ticket: Buffer; psk: Buffer }> {
  const home = env.home(name);
  const s = await openHomeSession({ name, home, server: env.url });
  for (let i = 0; i < 400 && !existsSync(join(home, TICKET_FILE)); i++) await sleep(25);
  await s.close();
  const files = readClientHome(home);
  const saved = readTicket(home, name, files.privateKey, parseCertificate(files.certPem).serialHex);
  if (saved === undefined) throw new Error(`${name} has no ticket`);
  return saved;
}

/**
 * A resumed handshake that waits between the server_hello and its client_finish for `between`: the
 * first frame the KDC sends after the finish, as `ready` or `alert <code>`.
 */
async function resumeWaiting(
  env: Env,
  saved: { ticket: Buffer; psk: Buffer },
  between: () => Promise<void>,
): Promise<string> {
  const hs = new ClientHandshake({
    mode: 'resume',
    groups: ['x25519'],
    group: 'x25519',
    resumption: { ticket: saved.ticket, psk: saved.psk },
  });
  const conn = await rawConnect(env.url);
  try {
    conn.send(hs.clientHello());
    const serverHello = await conn.next(10_000);
    if (!Buffer.isBuffer(serverHello)) throw new Error(`no server_hello: ${String(serverHello)}`);
    const { clientFinish, result } = await hs.receiveServerHello(serverHello);
    await between();
    conn.send(clientFinish);
    const frame = await conn.next(10_000);
    if (!Buffer.isBuffer(frame)) return String(frame);
    const plain = decodeFrame(frame) as { t?: string; code?: string };
    if (plain.t === 'alert') return `alert ${plain.code}`;
    const msg = result.channel.open(frame) as { kind: string; type?: string };
    return `${msg.kind} ${msg.type ?? ''}`.trim();
  } finally {
    conn.destroy();
  }
}

t.test('a renewal installed while a resumed handshake waits for its finish: cert_revoked', async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob']);
  const control = await resumeWaiting(env, await ticketOf(env, 'alice'), async () => {});
  t.equal(control, 'push ready', 'nothing in between: the session opens');

  const bobTicket = await ticketOf(env, 'bob');
  let replaced = '';
  const outcome = await resumeWaiting(env, bobTicket, async () => {
    const renewed = await renewClient({ name: 'bob', home: env.home('bob'), server: env.url, keyBits: 2048 });
    replaced = renewed.previousSerialHex;
  });
  t.equal(
    (await env.kdc.ca.certificateRecord(replaced))?.status,
    'superseded',
    'the renewal was installed in between',
  );
  t.equal(outcome, 'alert cert_revoked', 'no session of the replaced certificate opens');
  t.equal(env.kdc.sessions.bySerial(replaced).length, 0, 'nor is one left in the session table');
});

t.test("another KDC's renewal ends the replaced certificate's sessions here", async (t) => {
  const env = await inProcessKdc(t, ['alice']);
  // A second KDC process on the same store, as a second node would be.
  const other = await startKdc({
    dataDir: env.dataDir,
    host: '127.0.0.1',
    port: 0,
    passphrase: TEST_CA_PASSPHRASE,
    rateLimit: false,
    log: () => {},
  });
  t.teardown(() => other.close());
  const here = await openHomeSession({
    name: 'alice',
    home: env.home('alice'),
    server: env.url,
    resume: false,
  });
  t.teardown(() => here.close().catch(() => undefined));
  const before = here.facts.identity.serialHex;

  const renewed = await renewClient({
    name: 'alice',
    home: env.home('alice'),
    server: other.url,
    keyBits: 2048,
  });
  t.equal(renewed.previousSerialHex, before, 'the renewal replaced the certificate of the open session');
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    here.closed,
    new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 15_000))),
  ]);
  clearTimeout(timer);
  t.ok(closed !== undefined, 'the session here was closed (within the revocation sync)');
  t.equal(closed?.error?.code, 'cert_revoked');
  const again = await openHomeSession({
    name: 'alice',
    home: env.home('alice'),
    server: env.url,
    resume: false,
  });
  t.teardown(() => again.close().catch(() => undefined));
  t.equal(again.facts.identity.serialHex, renewed.serialHex, 'the new certificate opens sessions here');
});
