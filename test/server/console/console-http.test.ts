// The console's HTTP side on a real KDC (in process): the page and its files with a CSP that allows no
// inline script, the feed for loopback clients under a loopback Host only (DNS rebinding) or with the
// console key, the arrows of a real handshake with their sizes, a refused exchange with its code and
// defence, and nothing secret in the feed. Without --console the routes do not exist.
import t from 'tap';
import { readFeed } from '../../helpers/console-feed.js';
import { request, type IncomingMessage } from 'node:http';
import { ConsoleAccess } from '../../../io/console/access.js';
import { CONSOLE_CSP } from '../../../io/console/http.js';
import type { ConsoleEvent } from '../../../shared/console/events.js';
import { defencesWithout } from '../../../shared/lab-switches.js';
import { issueTestClient, rawSocket, sessionFor, startTestKdc } from '../../helpers/kdc-in-process.js';
import { openSession } from '../../../client/session.js';

t.setTimeout(60_000);

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

function get(url: string, opts: { host?: string; method?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: opts.method ?? 'GET', headers: opts.host === undefined ? {} : { host: opts.host } },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

t.test('the page, its files and its headers', async (t) => {
  const { kdc } = await startTestKdc(t, { console: true });
  t.equal(kdc.consoleUrl, `${kdc.httpUrl}/console`, 'a loopback KDC prints the URL without a key');
  const page = await get(`${kdc.httpUrl}/console`);
  t.equal(page.status, 200);
  t.match(page.headers['content-type'], /^text\/html/);
  t.equal(page.headers['content-security-policy'], CONSOLE_CSP);
  t.notMatch(CONSOLE_CSP, /unsafe-inline|unsafe-eval/, 'no inline script or eval is allowed');
  t.match(CONSOLE_CSP, /script-src 'self'/);
  t.match(CONSOLE_CSP, /connect-src 'self'/);
  t.equal(page.headers['x-frame-options'], 'DENY');
  t.notMatch(page.body, /<script>|<script [^>]*>[^<]/, 'no inline script in the page');
  t.notMatch(page.body, /\son[a-z]+=/i, 'no inline event handler in the page');
  const app = await get(`${kdc.httpUrl}/console/app.js`);
  t.equal(app.status, 200);
  t.match(app.headers['content-type'], /^text\/javascript/);
  t.equal(app.headers['content-security-policy'], CONSOLE_CSP, 'every answer carries the CSP');
  t.equal((await get(`${kdc.httpUrl}/console/../package.json`)).status, 404, 'no path outside the set');
  t.equal((await get(`${kdc.httpUrl}/console/%2e%2e/package.json`)).status, 404);
  t.equal((await get(`${kdc.httpUrl}/console/nope.js`)).status, 404);
  t.equal((await get(`${kdc.httpUrl}/console`, { method: 'POST' })).status, 405);
  t.equal((await get(`${kdc.httpUrl}/ca.pem`)).status, 200, "the KDC's own routes still answer");
});

t.test('the feed: loopback under a loopback name, or the key', async (t) => {
  const { kdc } = await startTestKdc(t, { console: true });
  const rebound = await get(`${kdc.httpUrl}/console/events`, { host: 'attacker.example:80' });
  t.equal(rebound.status, 403, 'a loopback connection under a foreign Host name (DNS rebinding) is refused');
  const wrongKey = await get(`${kdc.httpUrl}/console/events?key=nope`, { method: 'HEAD' });
  t.equal(wrongKey.status, 403, 'a wrong key is refused, even from loopback');
  const head = await get(`${kdc.httpUrl}/console/events`, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.match(head.headers['content-type'], /^text\/event-stream/);

  const access = new ConsoleAccess('s3cret-console-key');
  const fake = (address: string, host: string): IncomingMessage =>
    ({ socket: { remoteAddress: address }, headers: { host } }) as unknown as IncomingMessage;
  t.notOk(access.allows(fake('192.0.2.7', 'kdc.example:8443'), null), 'a remote peer without the key: no');
  t.notOk(
    access.allows(fake('192.0.2.7', 'kdc.example:8443'), 'wrong'),
    'a remote peer with a wrong key: no',
  );
  t.ok(access.allows(fake('192.0.2.7', 'kdc.example:8443'), 's3cret-console-key'), 'with the key: yes');
  t.ok(
    access.allows(fake('::ffff:127.0.0.1', 'localhost:8443'), null),
    'loopback (v4-mapped) under localhost: yes',
  );
  t.ok(access.allows(fake('::1', '[::1]:8443'), null), 'IPv6 loopback: yes');
  t.notOk(access.allows(fake('127.0.0.1', 'evil.example'), null), 'loopback under a foreign name: no');
});

t.test('a handshake, a request and a refusal, as arrows; nothing secret', async (t) => {
  const { kdc } = await startTestKdc(t, { console: true });
  const alice = await issueTestClient(kdc.ca, 'alice');
  const session = await sessionFor(kdc, alice);
  await session.request('ping', {});
  await session.close();
  const raw = await rawSocket(t, kdc.url);
  raw.send(Buffer.from('not a kds frame'));
  await raw.closed;
  // The state panel is re-read on a 500 ms tick after a change, so it may arrive after the refusal.
  const aliceActive = (e: ConsoleEvent): boolean =>
    e.kind === 'state' && e.state.certs.some((c) => c.name === 'alice' && c.status === 'active');
  const { events, raw: text } = await readFeed(
    `${kdc.httpUrl}/console/events`,
    (es) => es.some((e) => e.kind === 'refused' && e.code === 'bad_frame') && es.some(aliceActive),
  );
  const arrows = events.filter((e) => e.kind === 'message');
  for (const [name, from, to, sealed] of [
    ['client_hello', 'alice', 'kdc', false],
    ['server_hello', 'kdc', 'alice', false],
    ['client_finish', 'alice', 'kdc', false],
    ['ready', 'kdc', 'alice', true],
    ['ping', 'alice', 'kdc', true],
    ['ping ok', 'kdc', 'alice', true],
  ] as const) {
    const a = arrows.find((e) => e.name === name);
    t.ok(a, `${name} is drawn`);
    t.match(a, { from, to, sealed }, `${name}: ${from} -> ${to}, ${sealed ? 'inside a record' : 'in clear'}`);
    t.ok((a?.bytes ?? 0) > 0, `${name} has its size`);
  }
  t.match(
    events.find((e) => e.kind === 'established'),
    { party: 'alice', role: 'client', group: 'x25519' },
    'the session is shown authenticated, with its group',
  );
  t.match(
    events.find((e) => e.kind === 'refused'),
    {
      by: 'kdc',
      peer: 'mallory',
      code: 'bad_frame',
      defence: 'input validation',
      phase: 'handshake',
      possibleMitm: true,
    },
    'the refusal names its code and defence; a peer that never said who it is and sent garbage is drawn as Mallory',
  );
  const state = [...events].reverse().find((e) => e.kind === 'state');
  t.ok(state?.kind === 'state' && state.state.certs.some((c) => c.name === 'alice' && c.status === 'active'));
  const der = alice.cert.der.toString('base64');
  t.notOk(text.includes(der.slice(0, 40)), 'no certificate bytes in the feed');
  t.notOk(text.includes(alice.certPem.split('\n')[1]!), 'no PEM in the feed');
  t.notOk(/PRIVATE KEY|passphrase/i.test(text), 'no key material in the feed');
});

t.test('without --console there is no console', async (t) => {
  const { kdc } = await startTestKdc(t);
  t.equal(kdc.consoleUrl, undefined);
  t.equal((await get(`${kdc.httpUrl}/console`)).status, 404);
  t.equal((await get(`${kdc.httpUrl}/console/events`)).status, 404);
});

t.test(
  'a MITM lab KDC says in the state panel which defences are off; a normal KDC says nothing',
  async (t) => {
    const firstState = async (url: string): Promise<ConsoleEvent> => {
      const { events } = await readFeed(url, (es) => es.some((e) => e.kind === 'state'));
      return events.find((e) => e.kind === 'state')!;
    };
    const lab = await startTestKdc(t, {
      console: true,
      defences: defencesWithout(['sequence-number', 'finished-mac']),
    });
    const labState = await firstState(`${lab.kdc.httpUrl}/console/events`);
    t.ok(labState.kind === 'state');
    if (labState.kind === 'state')
      t.same([...(labState.state.labDisabled ?? [])].sort(), ['finished-mac', 'sequence-number']);
    const normal = await startTestKdc(t, { console: true });
    const normalState = await firstState(`${normal.kdc.httpUrl}/console/events`);
    t.ok(normalState.kind === 'state' && !('labDisabled' in normalState.state), 'no labDisabled field');
  },
);

t.test('a resumed session and a revoked certificate, as a real KDC reports them', async (t) => {
  const { kdc } = await startTestKdc(t, { console: true });
  const alice = await issueTestClient(kdc.ca, 'alice');
  const bob = await issueTestClient(kdc.ca, 'bob');
  const credentials = { privateKey: alice.privateKey, certPem: alice.certPem };
  let ticket: { ticket: Buffer; psk: Buffer } | undefined;
  const full = await openSession({
    server: kdc.url,
    mode: 'auth',
    credentials,
    caCertPem: kdc.ca.caCertPem,
    onTicket: (got) => (ticket = got),
    ticketWaitOnCloseMs: 60_000, // a loaded machine may take over 2 s to open the ticket keys
  });
  await full.close();
  if (ticket === undefined) throw new Error('no ticket');
  const resumed = await openSession({
    server: kdc.url,
    mode: 'resume',
    credentials,
    caCertPem: kdc.ca.caCertPem,
    resumption: ticket,
  });
  t.equal(resumed.facts.mode, 'resume');
  await resumed.close();
  await kdc.ca.revoke({ serialHex: bob.cert.serialHex }, 'keyCompromise', 'test');
  await t.rejects(sessionFor(kdc, bob), { code: 'cert_revoked' });
  const { events } = await readFeed(`${kdc.httpUrl}/console/events`, (es) =>
    es.some((e) => e.kind === 'refused' && e.code === 'cert_revoked'),
  );
  // The exchanges: alice's full handshake (1), her resumption (2), bob's refused one (3).
  const step = (n: number, name: string): string | undefined => {
    const e = events.find((x) => x.kind === 'message' && x.exchange === n && x.name === name);
    return e?.kind === 'message' ? e.step : undefined;
  };
  t.match(
    step(2, 'server_hello'),
    /no certificate \(resumption\)/,
    'the resumed server_hello: no certificate',
  );
  t.match(step(2, 'client_finish'), /no certificate \(resumption\)/, 'the resumed finish: not an enrollment');
  t.match(
    events.find((e) => e.kind === 'refused' && e.exchange === 3),
    { code: 'cert_revoked', by: 'kdc', peer: 'bob?' },
    'the refusal on the lane of the name bob claimed, unverified',
  );
  t.match(step(3, 'client_finish'), /^client certificate/, 'bob sent a certificate: not an enrollment');
});
