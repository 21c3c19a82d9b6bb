// Mallory in-process against an in-process KDC that also accepts insecure sessions (test/client/mitm/
// lab.ts): the interception really works in insecure mode (the stolen key is byte for byte the one the
// KDC gave the victim, and a message under it is decrypted), the same attack fails against a secure
// client with the defence named on both sides, and the proxy relays HTTP and reports what it saw.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import type { KdsError } from '../../../shared/errors.js';
import { keyFingerprint } from '../../../shared/keys/digest.js';
import { sealMessage } from '../../../shared/keys/message.js';
import { findAttack } from '../../../client/mitm/catalog.js';
import { readClientHome } from '../../../client/home.js';
import { openSession } from '../../../client/session.js';
import { printer } from '../../../cli/commands/mitm.js';
import { mitmLab } from './lab.js';

t.setTimeout(180_000);

const lab = await mitmLab(t, ['alice', 'bob', 'mallory']);

t.test(
  'passthrough: sessions and HTTP pass; the report sees only ciphertext and fails the attack',
  async (t) => {
    const m = await lab.mallory('passthrough');
    const res = await fetch(`${m.httpUrl}/healthz`);
    t.equal(res.status, 200, 'GET /healthz is relayed to the KDC');
    t.match(await res.json(), { ok: true });
    const s = await lab.session('alice', m.url);
    const data = randomBytes(16);
    const pong = await s.request('ping', { data });
    t.same(Buffer.from(pong.data as Uint8Array), data, 'the request and its reply cross Mallory intact');
    await s.close();
    await m.connectionsEnded(1);
    const report = await m.close();
    t.equal(report.outcome, 'failed');
    t.equal(report.defence, 'record encryption');
    t.equal(report.stolen, null);
    t.ok(
      report.frames.some((f) => f.type === 'record' && f.action === 'forward'),
      'records were forwarded',
    );
    t.notOk(JSON.stringify(report).includes(data.toString('hex')), 'the ping payload is not in the report');
    t.same(report.victims, { connections: 1, modes: ['auth'] });
  },
);

t.test('substitute-dh against a secure client: bad_signature in the handshake, nothing stolen', async (t) => {
  const m = await lab.mallory('substitute-dh');
  const err = (await lab.session('alice', m.url).then(
    () => undefined,
    (e: unknown) => e,
  )) as KdsError;
  t.equal(err?.code, 'bad_signature');
  t.equal(err?.details?.phase, 'handshake', 'marked as a handshake failure for the CLI');
  await m.connectionsEnded(1);
  const report = await m.close();
  t.equal(report.summary, 'attack substitute-dh: FAILED — stopped by transcript signature');
  t.equal(report.stolen, null);
  // She keeps the KDC's server_hello and sends her own (her DH share under the KDC's certificate).
  t.ok(
    report.frames.some((f) => f.type === 'server_hello' && f.action === 'terminate'),
    "the KDC's hello kept",
  );
  t.ok(
    report.frames.some((f) => f.type === 'server_hello' && f.action === 'inject'),
    'her own hello sent',
  );
});

t.test(
  'substitute-dh against an insecure client: Mallory steals the KDC key and reads the message',
  async (t) => {
    const m = await lab.mallory('substitute-dh');
    const s = await lab.session('alice', m.url, { insecure: true });
    t.equal(s.facts.identity.name, 'alice', 'the KDC (through Mallory) accepted the claimed name');
    const created = await s.request('key.create', { peer: 'bob' });
    const key = Buffer.from(created.key as Uint8Array);
    const serial = String(created.serial);
    const sealed = sealMessage(
      key,
      { serial, from: 'alice', to: 'bob', seq: 1 },
      Buffer.from('meet at the old mill', 'utf8'),
    );
    // The KDC refuses a message under an unverified key, but Mallory reads it on the way in.
    await s.request('msg.send', { to: 'bob', serial, ...sealed }).catch(() => undefined);
    await s.close();
    await m.connectionsEnded(1);
    const report = await m.close();
    t.equal(report.outcome, 'succeeded');
    t.equal(report.summary, `attack substitute-dh: SUCCEEDED — stole key ${key.toString('hex')}`);
    const stolen = report.stolen?.keys.find((k) => k.serial === serial);
    t.equal(stolen?.key, key.toString('hex'), 'byte for byte the key the KDC sent alice');
    t.equal(stolen?.fingerprint, keyFingerprint(key));
    t.ok(
      report.stolen?.plaintext.some((p) => p.type === 'message' && p.text.includes('meet at the old mill')),
      'the message is decrypted',
    );
    t.ok(
      m.events.some((e) => e.event === 'stolen-key'),
      'the theft is announced as it happens',
    );
  },
);

t.test('tamper and truncate-tag: record_auth on the side that receives the record', async (t) => {
  const m = await lab.mallory('tamper');
  const s = await lab.session('alice', m.url);
  await t.rejects(
    s.request('ping', {}),
    { code: 'record_auth' },
    'the KDC refused the flipped record and said so',
  );
  await s.closed;
  await m.connectionsEnded(1);
  t.equal((await m.close()).defence, 'record authentication');

  const m2 = await lab.mallory('truncate-tag');
  await t.rejects(
    lab.session('bob', m2.url),
    { code: 'record_auth' },
    'the client refused the ready push with a short tag',
  );
  await m2.connectionsEnded(1);
  t.match(await m2.close(), { outcome: 'failed', defence: 'record authentication' });
});

t.test('impersonate-server: a `kdc` certificate from another root fails the chain check', async (t) => {
  const m = await lab.mallory('impersonate-server');
  await t.rejects(lab.session('alice', m.url), { code: 'cert_unknown_issuer' });
  await m.connectionsEnded(1);
  t.match(await m.close(), { outcome: 'failed', defence: 'certificate chain', stolen: null });
});

t.test(
  'impersonate-client: a valid certificate and signature of another name fail the Finished MAC',
  async (t) => {
    const m = await lab.mallory('impersonate-client', { identity: 'mallory' });
    await t.rejects(lab.session('alice', m.url), { code: 'bad_mac', details: { remote: true } });
    await m.connectionsEnded(1);
    t.match(await m.close(), { outcome: 'failed', defence: 'key confirmation' });

    const m2 = await lab.mallory('impersonate-client');
    const s = await lab.session('alice', m2.url);
    t.equal(
      s.facts.identity.name,
      'alice',
      'without --identity she has nothing to present and passes the frame',
    );
    await s.close();
    await m2.connectionsEnded(1);
    t.match(await m2.close(), { outcome: 'inconclusive', summary: /no identity of her own/ });
  },
);

t.test('downgrade: a secure client refuses the insecure reply of a KDC that allows it', async (t) => {
  const m = await lab.mallory('downgrade');
  await t.rejects(lab.session('alice', m.url), { code: 'insecure_refused' });
  await m.connectionsEnded(1);
  t.match(await m.close(), { outcome: 'failed', defence: 'downgrade protection' });
});

t.test('reflect, oversize, garbage', async (t) => {
  const cases: [string, string, string][] = [
    ['reflect', 'record_auth', 'record authentication'],
    ['oversize', 'frame_too_large', 'frame limits'],
    ['garbage', '', 'input validation'],
  ];
  for (const [attack, code, defence] of cases) {
    const m = await lab.mallory(attack);
    const err = (await lab.session('alice', m.url).then(
      async (s) =>
        s.request('ping', {}).then(
          () => undefined,
          (e: unknown) => e,
        ),
      (e: unknown) => e,
    )) as KdsError | undefined;
    t.ok(err !== undefined, `${attack}: the victim failed`);
    if (code !== '') t.equal(err?.code, code, `${attack}: ${code}`);
    await m.connectionsEnded(1);
    t.match(await m.close(), { outcome: 'failed', defence }, `${attack}: stopped by ${defence}`);
  }
});

t.test('switchAttack: one Mallory runs several attacks in turn (kds mitm --control)', async (t) => {
  const m = await lab.mallory('passthrough');
  const live = await lab.session('alice', m.url);
  await live.request('ping', {});
  const first = await m.switchAttack(findAttack('tamper'));
  t.equal(first?.attack, 'passthrough', 'the report of the attack that ended');
  t.equal(first?.outcome, 'failed');
  t.equal((await live.closed).code, 1012, 'its live connection was cut (1012 service restart)');
  t.equal(m.context.attack.name, 'tamper');

  const s = await lab.session('alice', m.url);
  await t.rejects(s.request('ping', {}), { code: 'record_auth' }, 'new connections meet the new attack');
  await m.connectionsEnded(1);
  const second = await m.switchAttack(undefined);
  t.match(second, { attack: 'tamper', outcome: 'failed', defence: 'record authentication' });
  t.throws(() => m.context, { code: 'bad_request' }, 'no attack running');
  await t.rejects(
    lab.session('alice', m.url),
    { code: 'unavailable' },
    'between attacks victims are turned away',
  );
  t.equal((await m.close()).attack, 'tamper', 'close() returns the last report');
});

t.test('replay: the refusal code is printed once', async (t) => {
  const m = await lab.mallory('replay');
  const s = await lab.session('alice', m.url);
  await s.request('ping', {}).catch(() => undefined);
  await s.closed;
  await m.connectionsEnded(1);
  const report = await m.close();
  const finding = report.findings.find((f) => f.conn === 1 && f.outcome === 'failed');
  t.match(finding, { defence: 'sequence number', code: 'record_auth' });
  t.notMatch(finding?.detail ?? '', /record_auth/, 'the detail leaves the code to its own field');
  const line = m.events.find((e) => e.event === 'finding' && e.conn === 1);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((x: string) => ((out += x), true)) as typeof process.stdout.write;
  try {
    printer(false)(line!);
  } finally {
    process.stdout.write = write;
  }
  t.equal(out.split('(record_auth)').length - 1, 1, `once: ${out}`);
});

t.test('a resumed server_hello is labelled as authenticated by the ticket psk', async (t) => {
  const files = readClientHome(lab.home('alice'), undefined);
  const auth = {
    credentials: { privateKey: files.privateKey, certPem: files.certPem },
    caCertPem: files.caPem,
    connectTimeoutMs: 10_000,
  };
  let ticket: { ticket: Buffer; psk: Buffer } | undefined;
  const first = await openSession({
    server: lab.kdc.url,
    mode: 'auth',
    ...auth,
    onTicket: (x) => (ticket = { ticket: x.ticket, psk: x.psk }),
    ticketWaitOnCloseMs: 60_000, // a loaded machine may take over 2 s to open the ticket keys
  });
  await first.request('ping', {});
  await first.close();
  t.ok(ticket !== undefined, 'the KDC handed out a ticket');
  const m = await lab.mallory('passthrough');
  const resumed = await openSession({ server: m.url, mode: 'resume', resumption: ticket!, ...auth });
  t.equal(resumed.facts.mode, 'resume');
  await resumed.close();
  await m.connectionsEnded(1);
  const report = await m.close();
  const hello = report.frames.find((f) => f.type === 'server_hello');
  t.match(hello?.note, /resumed \(authenticated by the ticket psk\)/);
  t.notMatch(hello?.note ?? '', /unauthenticated/);
});
