// The story `npm run demo` tells, one step per function, each narrated in plain words with
// what crossed the wire. The KDC is a real child process (`kds server init`, `kds server start`);
// Alice, Bob and the admin are the same library calls the `kds client` / `kds admin` commands make,
// each behind a wire tap (client/demo/wire-tap.ts) that shows their frames; Mallory is the MITM lab's
// proxy (client/mitm/proxy.ts) with its substitute-dh attack.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describeDefence, defenceForError } from '../../shared/defences.js';
import { toKdsError, InternalError } from '../../shared/errors.js';
import { parseCrl } from '../../shared/pki/crl.js';
import { openAdminSession } from '../admin.js';
import { enroll } from '../enroll.js';
import type { KeyEvent } from '../keys/key-client.js';
import { openKeyClient, type OpenedKeyClient } from '../keys/open.js';
import type { Mitm } from '../mitm/proxy.js';
import type { ClientSession } from '../session.js';
import { EventLog } from './event-log.js';
import type { KdcLines } from './kdc-lines.js';
import type { Narrator } from './narrator.js';
import type { KdcProcess, ProcessGroup } from './processes.js';
import { startWireTap, type WireTap } from './wire-tap.js';

export interface Party {
  name: string;
  home: string;
  tap: WireTap;
  log: EventLog<KeyEvent>;
  opened?: OpenedKeyClient | undefined;
}

export interface DemoState {
  n: Narrator;
  procs: ProcessGroup;
  tmp: string;
  dataDir: string;
  passphrase: string;
  progress: <T>(label: string, work: () => Promise<T>) => Promise<T>;
  /**
   * `--console`: the KDC serves the live console (its URL is printed when it starts), and Mallory serves
   * hers, her view of the same attacks (its URL is printed when she starts).
   */
  console?: boolean;
  /** The KDC's own log lines (its stderr), shown under each step unless `--no-kdc-log`. */
  kdcLines: KdcLines;
  kdc?: KdcProcess;
  caFingerprint?: string;
  adminTap?: WireTap;
  alice?: Party;
  bob?: Party;
  e2eSerial?: string;
  kdcSerial?: string;
  /** Bob's first certificate, revoked in step 10. */
  revokedCertSerial?: string;
  /**
   * Mallory's proxy: started against the insecure mode, kept for the secure mode (same proxy, same
   * attack, a new round of it), so that her console is one page with both runs on it.
   */
  mitm?: Mitm;
  /** Closed by the cleanup step (or on failure / Ctrl-C). */
  closers: (() => Promise<void>)[];
}

const DEMO_CA_BITS = '2048';
const ALLOW_INSECURE = { KDS_ALLOW_INSECURE: '1' };

function short(hex: string): string {
  return hex.length > 16 ? `${hex.slice(0, 16)}...` : hex;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Print a result; a false one ends the demo with a failure (exit 1) after cleaning up. */
function check(s: DemoState, ok: boolean, text: string, data: Record<string, unknown> = {}): void {
  s.n.result(ok, text, data);
  if (!ok) throw new InternalError('internal', `demo check failed: ${text}`);
}

/** The KDC's options every start of the demo shares: the console, and a silent log with --no-kdc-log. */
function kdcArgs(s: DemoState): string[] {
  return [
    ...(s.console === true ? ['--console'] : []),
    ...(s.kdcLines.enabled ? [] : ['--log-level', 'silent']),
  ];
}

/** Wait until the KDC logged each of `lines` (`who what`, see kdc-lines.ts) in this step. */
async function kdcLogged(s: DemoState, what: string, ...lines: RegExp[]): Promise<void> {
  await s.kdcLines.waitForAll(lines, what);
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined)
    throw new InternalError('internal', `demo: ${what} is missing (a previous step failed)`);
  return value;
}

async function newParty(s: DemoState, name: string, home: string): Promise<Party> {
  const tap = await startWireTap({
    who: name,
    target: () => need(s.kdc, 'KDC').url,
    onFrame: (f) => s.n.wire(f),
  });
  s.closers.push(() => tap.close());
  return { name, home, tap, log: new EventLog<KeyEvent>(name) };
}

/** Open (or re-open) a party's key client through its wire tap. */
async function connect(
  s: DemoState,
  p: Party,
  server = p.tap.url,
  insecure = false,
): Promise<OpenedKeyClient> {
  const opened = await openKeyClient({
    name: p.name,
    home: p.home,
    server,
    acceptMessages: true,
    insecure,
    onEvent: p.log.push,
  });
  s.closers.push(() => opened.close().catch(() => undefined));
  return opened;
}

async function adminSession(s: DemoState): Promise<ClientSession> {
  return openAdminSession({
    dataDir: s.dataDir,
    server: need(s.adminTap, 'admin tap').url,
    passphrase: s.passphrase,
  });
}

// ---------------------------------------------------------------------------------------------------

async function stepCreateCa(s: DemoState): Promise<void> {
  await s.n.step(
    'Create the certificate authority',
    '`kds server init` makes a root CA (a self-signed RSA certificate), a certificate for the KDC and one for',
    'the admin, the first (empty) certificate revocation list and the database, in a temporary directory.',
    `Nothing goes over the network yet. (The demo uses an RSA-${DEMO_CA_BITS} root to be quick; the default is 3072.)`,
  );
  const out = await s.progress('generating RSA keys for the CA, the KDC and the admin', () =>
    s.procs.runKds(['server', 'init', '--data-dir', s.dataDir, '--ca-key-bits', DEMO_CA_BITS, '--json']),
  );
  const init = JSON.parse(out) as {
    caFingerprint256: string;
    caSerialHex: string;
    crlNumber: number;
    caNotAfter: number;
  };
  s.caFingerprint = init.caFingerprint256;
  check(s, true, `root CA ${short(init.caSerialHex)} valid until ${iso(init.caNotAfter)}`, {
    step: 'ca',
    caSerialHex: init.caSerialHex,
  });
  check(s, true, `root CA fingerprint (SHA-256): ${init.caFingerprint256}`, {
    caFingerprint: init.caFingerprint256,
  });
  s.n.say(
    'Clients pin this fingerprint: it is how they will know they talk to this KDC and not to an impostor.',
  );
}

async function stepStartKdc(s: DemoState): Promise<void> {
  await s.n.step(
    'Start the KDC',
    '`kds server start` runs the key distribution centre as its own process: WebSocket sessions at /kds, and',
    'the public files GET /ca.pem and /crl.pem over plain HTTP (they are signed, so they need no secrecy).',
  );
  s.kdc = await s.procs.startKdc(['--data-dir', s.dataDir, ...kdcArgs(s)], {}, undefined, 0, s.kdcLines.feed);
  await kdcLogged(s, 'its start', /^kdc +started/);
  check(s, true, `KDC process ${s.kdc.pid} listening on ${s.kdc.url}`, { url: s.kdc.url, pid: s.kdc.pid });
  if (s.kdc.consoleUrl !== undefined) {
    check(s, true, `live console: ${s.kdc.consoleUrl} (open it in a browser)`, {
      consoleUrl: s.kdc.consoleUrl,
    });
  }
  s.adminTap = await startWireTap({
    who: 'admin',
    target: () => need(s.kdc, 'KDC').url,
    onFrame: (f) => s.n.wire(f),
  });
  s.closers.push(() => need(s.adminTap, 'admin tap').close());
  s.n.say(
    'Alice, Bob and the admin each talk to it through a wire tap, so you can see every frame they exchange.',
  );
}

async function stepEnroll(s: DemoState): Promise<void> {
  await s.n.step(
    'Enroll Alice and Bob',
    'The admin opens an authenticated session (admin certificate) and asks for one-time enrollment tokens.',
  );
  const admin = await adminSession(s);
  const tokens: Record<string, string> = {};
  try {
    for (const name of ['alice', 'bob']) {
      const t = await admin.request('admin.token', { name, ttl: 15 * 60_000 });
      tokens[name] = t.token;
    }
  } finally {
    await admin.close();
  }
  await kdcLogged(s, 'the tokens', /^admin +enrollment token for alice/, /^admin +enrollment token for bob/);
  check(
    s,
    true,
    'two tokens, each good for one enrollment of one name within 15 minutes (the KDC keeps only their hash)',
  );
  s.n.say(
    'Each client now generates its RSA-2048 key pair locally, fetches /ca.pem and checks it against the pinned',
    "fingerprint, then opens an 'enroll' session in which only the KDC proves who it is, and sends the token with",
    'a certificate signing request (CSR). The private key never leaves the client.',
  );
  s.alice = await newParty(s, 'alice', join(s.tmp, 'alice'));
  s.bob = await newParty(s, 'bob', join(s.tmp, 'bob'));
  for (const p of [s.alice, s.bob]) {
    const r = await s.progress(`${p.name}: generating an RSA-2048 key pair and enrolling`, () =>
      enroll({
        server: p.tap.url,
        name: p.name,
        token: tokens[p.name]!,
        caFingerprint: need(s.caFingerprint, 'CA fingerprint'),
        home: p.home,
      }),
    );
    await kdcLogged(s, `${p.name}'s certificate`, new RegExp(`^${p.name} +certificate \\S+ issued`));
    check(
      s,
      true,
      `${p.name} enrolled: certificate ${short(r.serialHex)} until ${iso(r.notAfter)}, root CA pinned`,
      { name: p.name, certSerial: r.serialHex },
    );
  }
}

async function stepHandshakes(s: DemoState): Promise<void> {
  await s.n.step(
    'Authenticated handshakes',
    'Each client opens a session: fresh X25519 Diffie-Hellman keys on both sides; the KDC sends its certificate',
    'and an RSA-PSS signature over the transcript (everything said so far); the client checks both against its',
    'pinned root, then sends its own certificate and signature; Finished MACs confirm both hold the same keys.',
    'From then on every message is an AES-256-GCM record: an observer sees sizes, nothing else.',
  );
  for (const p of [need(s.alice, 'alice'), need(s.bob, 'bob')]) {
    p.opened = await connect(s, p);
    await kdcLogged(s, `${p.name}'s handshake`, new RegExp(`^${p.name} +handshake ok`));
    const f = p.opened.session.facts;
    check(
      s,
      true,
      `${p.name}: session ${short(f.sessionId)}, ${f.group}, ${f.cipher}, KDC certificate CN=${f.serverCertificate.subjectCN} verified`,
      {
        name: p.name,
        sessionId: f.sessionId,
        group: f.group,
        cipher: f.cipher,
      },
    );
  }
  s.n.say(
    'On connecting, each client also uploads one-time prekeys: X25519 public keys signed with its RSA key,',
    'so that others can start an end-to-end exchange with it even while it is offline.',
  );
}

async function stepE2eKey(s: DemoState): Promise<void> {
  const alice = need(s.alice, 'alice');
  await s.n.step(
    'End-to-end key exchange (the KDC never sees the key)',
    "Alice asks for Bob's certificate (key.peer) and reserves a key serial, receiving one of Bob's signed prekeys",
    "(key.reserve). She checks Bob's certificate and the prekey's signature, makes her own ephemeral X25519 key,",
    'derives a wrapping key (HKDF over the DH secret and the transcript), generates the AES-256 key, wraps it with',
    'AES-256-GCM, and signs the transcript: both names, both certificate serials, both DH keys, the serial.',
    'key.deposit carries her DH public key, the signature and the 60-byte wrapped key; the KDC keeps its digest.',
  );
  const out = await need(alice.opened, 'alice session').client.sendKey({ to: 'bob', mode: 'e2e' });
  s.e2eSerial = out.serial;
  await kdcLogged(
    s,
    'the deposit',
    /^alice +key \S+ created for bob \(end-to-end/,
    /^alice +key \S+ deposited/,
    /^bob +key \S+ delivered from alice/,
  );
  check(
    s,
    true,
    `key ${out.serial} deposited for bob, fingerprint ${out.fingerprint}, state ${out.state} until bob verifies`,
    {
      serial: out.serial,
      mode: 'e2e',
      fingerprint: out.fingerprint,
    },
  );
}

async function stepBobVerifies(s: DemoState): Promise<void> {
  const serial = need(s.e2eSerial, 'e2e key');
  const alice = need(s.alice, 'alice');
  const bob = need(s.bob, 'bob');
  await s.n.step(
    "Bob's verification",
    "The KDC pushes the deposit to Bob (key.delivered). Bob checks Alice's certificate and signature against his own",
    'view of the transcript, derives the same wrapping key from his prekey, unwraps the AES key, then asks the KDC',
    'to verify it (key.verify: the digest of what he received, signed by him). Only the verdict "valid" makes the',
    'key usable; then the KDC tells Alice (key.verified).',
  );
  const got = await bob.log.waitFor((e) => e.event === 'key' && e.serial === serial, 'the key');
  if (got.event !== 'key') throw new InternalError('internal', 'unexpected event');
  await kdcLogged(s, "bob's verdict", /^bob +key \S+ verified valid/);
  const sent = need(alice.opened, 'alice session').client.store.getKey(serial);
  const same = sent?.fingerprint === got.fingerprint;
  check(
    s,
    got.verdict === 'valid',
    `bob: verdict ${got.verdict}, key ${got.state}, fingerprint ${got.fingerprint}`,
    { name: 'bob', verdict: got.verdict, fingerprint: got.fingerprint },
  );
  check(
    s,
    same,
    same
      ? 'same fingerprint on both sides: they hold the same key, which the KDC never saw'
      : 'fingerprints differ!',
    { sameKey: same },
  );
  const v = await alice.log.waitFor((e) => e.event === 'key.verified' && e.serial === serial, 'key.verified');
  check(s, true, `alice: bob verified it, key ${v.event === 'key.verified' ? v.state : '?'}`, {
    name: 'alice',
  });
}

async function stepMessages(s: DemoState): Promise<void> {
  const serial = need(s.e2eSerial, 'e2e key');
  const alice = need(s.alice, 'alice');
  const bob = need(s.bob, 'bob');
  await s.n.step(
    'Encrypted messages both ways',
    'Each message is sealed with AES-256-GCM under the shared key, bound to its serial, sender and receiver;',
    'the KDC relays ciphertext it cannot read.',
  );
  const pairs: [Party, Party, string][] = [
    [alice, bob, 'Hi Bob, it is Alice. Our key works.'],
    [bob, alice, 'Hi Alice, Bob here: received and decrypted.'],
  ];
  for (const [from, to, text] of pairs) {
    await need(from.opened, `${from.name} session`).client.sendMessage({ to: to.name, text, serial: serial });
    const m = await to.log.waitFor(
      (e) => e.event === 'message' && e.from === from.name && e.text === text,
      `the message from ${from.name}`,
    );
    await kdcLogged(s, 'the relay', new RegExp(`^${from.name} +message to ${to.name} relayed`));
    check(s, m.event === 'message', `${to.name} decrypted: "${text}"`, {
      from: from.name,
      to: to.name,
      serial: serial,
    });
  }
}

async function stepKdcKey(s: DemoState): Promise<void> {
  const alice = need(s.alice, 'alice');
  const bob = need(s.bob, 'bob');
  await s.n.step(
    'A KDC-generated key (the classic key distribution centre)',
    'This time the KDC makes the key: it stores it wrapped under its key-encryption key (never in plaintext),',
    'returns it to Alice inside her encrypted session, and pushes it to Bob inside his. Same serials, same checks.',
  );
  const out = await need(alice.opened, 'alice session').client.sendKey({ to: 'bob', mode: 'kdc' });
  s.kdcSerial = out.serial;
  const kdcSerial = out.serial;
  check(s, true, `key ${out.serial} created by the KDC, fingerprint ${out.fingerprint}`, {
    serial: out.serial,
    mode: 'kdc',
    fingerprint: out.fingerprint,
  });
  await kdcLogged(
    s,
    'the new key',
    /^alice +key \S+ created for bob \(KDC-generated/,
    /^bob +key \S+ delivered from alice/,
  );
  const got = await bob.log.waitFor((e) => e.event === 'key' && e.serial === kdcSerial, 'the KDC key');
  await kdcLogged(s, "bob's verdict", /^bob +key \S+ verified valid/);
  check(
    s,
    got.event === 'key' && got.verdict === 'valid',
    `bob received and verified it: ${got.event === 'key' ? got.verdict : '?'}`,
    { name: 'bob' },
  );
  await alice.log.waitFor((e) => e.event === 'key.verified' && e.serial === kdcSerial, 'key.verified');
  check(s, true, 'alice: key active on both sides');
}

async function stepRevokeKey(s: DemoState): Promise<void> {
  const serial = need(s.e2eSerial, 'e2e key');
  const alice = need(s.alice, 'alice');
  const bob = need(s.bob, 'bob');
  await s.n.step(
    'Revoke a key',
    'Alice believes the end-to-end key leaked and revokes it (either party may). The revocation is durable at the',
    'KDC before it answers; both parties get a key.revoked notice and delete the key material.',
  );
  const aliceClient = need(alice.opened, 'alice session').client;
  const r = await aliceClient.revokeKey(serial, 'keyCompromise');
  await kdcLogged(s, 'the revocation', /^alice +key \S+ revoked: keyCompromise/);
  check(s, true, `alice revoked ${serial} (${r.reason})`, { serial: serial, reason: r.reason });
  const notice = await bob.log.waitFor(
    (e) => e.event === 'key.revoked' && e.serial === serial,
    'the revocation notice',
  );
  check(
    s,
    true,
    `bob was told at once: key ${notice.event === 'key.revoked' ? `${notice.state} (${notice.reason})` : ''}; his copy is deleted`,
    { name: 'bob', notice: 'key.revoked' },
  );
  const v = await need(bob.opened, 'bob session').client.verifyKey(serial);
  await kdcLogged(s, "bob's verdict", /^bob +key \S+ verified revoked/);
  check(s, v.verdict === 'revoked', `verifying it now says: ${v.verdict}`, { verdict: v.verdict });
  try {
    await aliceClient.sendMessage({ to: 'bob', text: 'still there?', serial: serial });
    check(s, false, 'alice could still use a revoked key');
  } catch (err) {
    const e = toKdsError(err);
    check(s, e.code === 'key_revoked', `alice cannot use it any more: [${e.code}] ${e.message}`, {
      code: e.code,
    });
  }
}

async function stepRevokeCert(s: DemoState): Promise<void> {
  const kdcSerial = need(s.kdcSerial, 'KDC key');
  const alice = need(s.alice, 'alice');
  const bob = need(s.bob, 'bob');
  await s.n.step(
    'Revoke a certificate',
    "Bob's laptop is stolen. The admin revokes Bob's certificate: the revocation and a new CRL are stored before",
    "the KDC answers; Bob's live session ends at once, and every key involving Bob is revoked (certificateRevoked)",
    'with a notice to the other party.',
  );
  const bobSession = need(bob.opened, 'bob session').session;
  const admin = await adminSession(s);
  let crlNumber: unknown;
  try {
    const out = await admin.request('cert.revoke', { name: 'bob', reason: 'keyCompromise' });
    crlNumber = out.crlNumber;
    s.revokedCertSerial = out.serial;
    await kdcLogged(
      s,
      'the revocation',
      /^bob +certificate \S+ revoked: keyCompromise/,
      /^bob +\d+ keys? revoked with certificate/,
      /^kdc +CRL \d+ published/,
    );
    check(s, true, `revoked bob's certificate ${short(out.serial)}; CRL number ${out.crlNumber}`, {
      serial: out.serial,
      crlNumber: out.crlNumber,
    });
  } finally {
    await admin.close();
  }
  const closed = await bobSession.closed;
  check(
    s,
    true,
    `bob's session was closed by the KDC${closed.error === undefined ? '' : ` (${closed.error.code})`}`,
    { code: closed.error?.code },
  );
  const notice = await alice.log.waitFor(
    (e) => e.event === 'key.revoked' && e.serial === kdcSerial,
    'the certificateRevoked notice',
  );
  check(
    s,
    true,
    `alice was told: key ${short(kdcSerial)} ${notice.event === 'key.revoked' ? `${notice.state} (${notice.reason})` : ''}`,
    { name: 'alice', reason: notice.event === 'key.revoked' ? notice.reason : undefined },
  );
  try {
    bob.opened = await connect(s, bob);
    check(s, false, "bob's revoked certificate was accepted");
  } catch (err) {
    const e = toKdsError(err);
    bob.opened = undefined;
    await kdcLogged(s, 'the refusal', /^bob\? +handshake refused: cert_revoked/);
    check(s, e.code === 'cert_revoked', `bob tries to reconnect: refused [${e.code}]`, { code: e.code });
  }
  const res = await fetch(`${need(s.kdc, 'KDC').httpUrl}/crl.pem`, { signal: AbortSignal.timeout(10_000) });
  const crl = parseCrl(await res.text());
  check(
    s,
    crl.entries.length > 0,
    `GET /crl.pem: CRL number ${crl.crlNumber}, ${crl.entries.length} revoked serial(s): ${crl.entries.map((e) => `${short(e.serialHex)} (${e.reason})`).join(', ')}`,
    {
      crlNumber: String(crlNumber),
    },
  );
  s.n.say(
    'Bob gets a new laptop: a new token, a new key pair and a new certificate (the old one stays revoked).',
  );
  const admin2 = await adminSession(s);
  let token: string;
  try {
    token = (await admin2.request('admin.token', { name: 'bob', ttl: 15 * 60_000 })).token;
  } finally {
    await admin2.close();
  }
  const newBob: Party = { ...bob, home: join(s.tmp, 'bob-new-laptop'), log: bob.log };
  const r = await s.progress('bob: generating a new RSA-2048 key pair and enrolling', () =>
    enroll({
      server: bob.tap.url,
      name: 'bob',
      token,
      caFingerprint: need(s.caFingerprint, 'CA fingerprint'),
      home: newBob.home,
    }),
  );
  s.bob = newBob;
  newBob.opened = await connect(s, newBob);
  await kdcLogged(s, "bob's new certificate", /^bob +certificate \S+ issued/, /^bob +handshake ok/);
  check(s, true, `bob is back with certificate ${short(r.serialHex)}`, { certSerial: r.serialHex });
}

type MitmModule = typeof import('../mitm/proxy.js');
type CatalogModule = typeof import('../mitm/catalog.js');

async function loadMallory(): Promise<{
  startMitm: MitmModule['startMitm'];
  findAttack: CatalogModule['findAttack'];
}> {
  const [{ startMitm }, { findAttack }] = await Promise.all([
    import('../mitm/proxy.js'),
    import('../mitm/catalog.js'),
  ]);
  return { startMitm, findAttack };
}

type MitmEvent = import('../mitm/context.js').MitmEvent;

/** Decrypted messages worth showing on screen (the rest of what Mallory reads goes to the event log). */
const LOOT_TYPES = new Set(['key.create ok', 'key.delivered', 'message', 'msg']);

/** Mallory's own lines, trimmed to what a viewer needs: handshake frames, findings and loot. */
function malloryLine(s: DemoState, e: MitmEvent): void {
  switch (e.event) {
    case 'frame':
      if (e.type === 'record' || e.type === 'r') {
        s.n.record({ ...e, event: 'mallory-frame' });
        return;
      }
      s.n.mallory(
        `${e.dir} ${e.type} ${e.size} B: ${e.action}${e.note === undefined ? '' : ` (${e.note})`}`,
        { ...e, kind: 'frame' },
      );
      return;
    case 'info':
      s.n.mallory(e.text, { kind: 'info', conn: e.conn });
      return;
    case 'finding':
      s.n.mallory(
        `${e.outcome === 'succeeded' ? 'ATTACK SUCCEEDED' : e.outcome === 'failed' ? `STOPPED by ${e.defence ?? '?'}` : 'inconclusive'}: ${e.detail}`,
        { ...e, kind: 'finding' },
        e.outcome === 'succeeded',
      );
      return;
    case 'stolen-key':
      s.n.mallory(
        `STOLE AES key ${e.key} (serial ${short(e.serial)}, fingerprint ${e.fingerprint}, from the ${e.source})`,
        { ...e, kind: 'stolen-key' },
        true,
      );
      return;
    case 'plaintext':
      // Everything she decrypts is in the event log; the screen shows what matters: keys and messages.
      if (LOOT_TYPES.has(e.type))
        s.n.mallory(`decrypted ${e.type}: ${e.text}`, { ...e, kind: 'plaintext' }, true);
      else s.n.record({ ...e, event: 'mallory-plaintext' });
      return;
  }
}

async function stepMalloryInsecure(s: DemoState): Promise<void> {
  const alice = need(s.alice, 'alice');
  const bob = need(s.bob, 'bob');
  await s.n.step(
    'Mallory against the insecure mode (the control group)',
    'The KDC restarts with --insecure-dh (and KDS_ALLOW_INSECURE=1): it now also accepts unauthenticated sessions,',
    'the naive design where nobody signs the DH keys. Mallory runs a proxy between Alice and the KDC with the',
    'substitute-dh attack: she swaps the DH public keys in both hellos for her own. Alice uses --insecure-dh.',
  );
  const mallory = await loadMallory();
  for (const p of [alice, bob]) await p.opened?.close().catch(() => undefined);
  const previous = need(s.kdc, 'KDC');
  await previous.stop();
  // With a console, the same port again: the open page reconnects by itself and keeps its history.
  s.kdc = await s.procs.startKdc(
    ['--data-dir', s.dataDir, '--insecure-dh', ...kdcArgs(s)],
    ALLOW_INSECURE,
    undefined,
    s.console === true ? Number(new URL(previous.url).port) : 0,
    s.kdcLines.feed,
  );
  await kdcLogged(s, 'its restart', /^kdc +stopped/, /^kdc +started/);
  check(s, true, `KDC restarted in lab mode on ${s.kdc.url} (process ${s.kdc.pid})`, {
    url: s.kdc.url,
    pid: s.kdc.pid,
  });
  bob.opened = await connect(s, bob);
  await kdcLogged(s, "bob's handshake", /^bob +handshake ok/);
  const revoked = need(s.revokedCertSerial, "bob's revoked certificate");
  const crl = parseCrl(
    await (await fetch(`${s.kdc.httpUrl}/crl.pem`, { signal: AbortSignal.timeout(10_000) })).text(),
  );
  check(
    s,
    crl.entries.some((e) => e.serialHex === revoked),
    'nothing was lost in the restart: bob reconnected with his new certificate, and the CRL still lists his old one',
  );
  const mitm = await mallory.startMitm({
    attack: mallory.findAttack('substitute-dh'),
    target: s.kdc.url,
    onEvent: (e) => malloryLine(s, e),
    ...(s.console === true ? { console: true } : {}),
  });
  s.mitm = mitm;
  s.closers.push(async () => void (await mitm.close()));
  s.n.say(`Mallory listens on ${mitm.url}; Alice's client is pointed at her, thinking it is the KDC.`);
  if (mitm.consoleUrl !== undefined) {
    // Her own page, beside the KDC's: what she forwarded, changed and injected, and how each attack
    // ended. The KDC's page shows her only as a suspicion (Mallory?), when a refusal looks like her.
    check(s, true, `Mallory's console: ${mitm.consoleUrl} (open it beside the KDC's)`, {
      malloryConsoleUrl: mitm.consoleUrl,
    });
  }
  const victim = await connect(s, alice, mitm.url, true);
  const out = await victim.client.sendKey({ to: 'bob', mode: 'kdc' });
  await kdcLogged(
    s,
    "alice's insecure session",
    /^alice +handshake ok \(.*INSECURE/,
    /^alice +key \S+ created for bob \(KDC-generated/,
  );
  check(
    s,
    true,
    `alice got KDC key ${short(out.serial)} (fingerprint ${out.fingerprint}) and does not suspect a thing`,
    { serial: out.serial },
  );
  await bob.log.waitFor((e) => e.event === 'key' && e.serial === out.serial, 'the lab key');
  await alice.log.waitFor((e) => e.event === 'key.verified' && e.serial === out.serial, 'key.verified');
  const secret = 'the vault code is 7-4-1-9';
  await victim.client.sendMessage({ to: 'bob', text: secret, serial: out.serial });
  await bob.log.waitFor((e) => e.event === 'message' && e.text === secret, "alice's message");
  await kdcLogged(
    s,
    'the lab key and message',
    /^bob +key \S+ delivered from alice/,
    /^bob +key \S+ verified valid/,
    /^alice +message to bob relayed/,
  );
  check(s, true, `bob received "${secret}" and has no idea Mallory read it too`);
  await victim.close();
  // The attack's round ends (its verdict is drawn on her console) and a new one starts for the secure
  // mode, on the same proxy.
  const report = await mitm.switchAttack(mallory.findAttack('substitute-dh'));
  if (report === undefined)
    throw new InternalError('internal', 'the insecure round of the attack did not end');
  const stolen = report.stolen?.keys.find((k) => k.serial === out.serial);
  check(s, report.outcome === 'succeeded', `Mallory's report: ${report.summary}`, {
    attack: report.attack,
    outcome: report.outcome,
    mode: 'insecure',
  });
  check(
    s,
    stolen?.fingerprint === out.fingerprint,
    stolen === undefined
      ? 'no key stolen?'
      : `the stolen key has fingerprint ${stolen.fingerprint}, the same as Alice's: the attack succeeded`,
    {
      stolenFingerprint: stolen?.fingerprint,
    },
  );
}

async function stepMallorySecure(s: DemoState): Promise<void> {
  const alice = need(s.alice, 'alice');
  await s.n.step(
    'Mallory against the secure mode',
    'Same KDC, same proxy, same attack; Alice uses the default authenticated handshake.',
  );
  const mitm = need(s.mitm, 'Mallory');
  try {
    const opened = await connect(s, alice, mitm.url);
    await opened.close();
    check(s, false, 'alice accepted a session through Mallory');
  } catch (err) {
    const e = toKdsError(err);
    const d = defenceForError(e);
    check(
      s,
      e.code === 'bad_signature',
      `alice refused the session: [${e.code}] ${describeDefence(e) ?? e.message}`,
      { code: e.code, defence: d?.defence },
    );
    if (d !== undefined) check(s, true, `stopped by: ${d.defence}`, { defence: d.defence });
  }
  // Alice's close carries her reason (bad_signature); Mallory passes it on to the KDC before she stops,
  // so the KDC's side (its console) learns why the handshake ended too.
  await mitm.connectionsEnded(1);
  await kdcLogged(
    s,
    'the refused handshake',
    /handshake refused by the client: bad_signature \(transcript signature\)/,
  );
  const report = await mitm.close();
  check(
    s,
    report.outcome === 'failed' && report.stolen === null,
    `Mallory's report: ${report.summary}; stolen: ${report.stolen === null ? 'nothing' : 'SOMETHING'}`,
    {
      attack: report.attack,
      outcome: report.outcome,
      defence: report.defence,
      mode: 'secure',
    },
  );
  s.n.say(
    "The KDC signed the transcript it saw, which holds Mallory's DH key; Alice checks that signature over her own",
    'transcript, which holds hers. They differ, so Alice stops before sending anything: Mallory learns nothing.',
    "The KDC's line names the check too: Alice closed with her reason and Mallory's proxy passed the close on.",
  );
}

async function stepCleanUp(s: DemoState): Promise<void> {
  await s.n.step('Clean up', 'Stop the KDC, close every connection and remove the temporary directory.');
  await closeAll(s);
  check(s, true, 'KDC stopped, temporary data removed: nothing is left behind');
}

/** Close everything the demo opened (idempotent): sessions, taps, Mallory, children, the temp dir. */
export async function closeAll(s: DemoState): Promise<void> {
  for (const close of s.closers.splice(0).reverse()) await close().catch(() => undefined);
  await s.procs.stopAll();
  rmSync(s.tmp, { recursive: true, force: true });
}

export const STEPS: readonly ((s: DemoState) => Promise<void>)[] = [
  stepCreateCa,
  stepStartKdc,
  stepEnroll,
  stepHandshakes,
  stepE2eKey,
  stepBobVerifies,
  stepMessages,
  stepKdcKey,
  stepRevokeKey,
  stepRevokeCert,
  stepMalloryInsecure,
  stepMallorySecure,
  stepCleanUp,
];
