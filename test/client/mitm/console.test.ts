// Mallory's live console (`kds mitm --console`) over HTTP, with Mallory and a KDC in this process
// (lab.ts): the page with its CSP on her own port, the feed for loopback clients under a loopback name
// only, her frames as arrows labelled with what she did, her attack's findings and verdict, a refusal
// with its code and defence; in the insecure control mode her success and the serial of the key she
// stole, but never the key's bytes nor the message she decrypted. Without --console nothing of it exists.
import t from 'tap';
import { readFeed } from '../../helpers/console-feed.js';
import { request, type IncomingMessage } from 'node:http';
import { CONSOLE_CSP } from '../../../io/console/http.js';
import type { KdsError } from '../../../shared/errors.js';
import { sealMessage } from '../../../shared/keys/message.js';
import { mitmLab } from './lab.js';

t.setTimeout(120_000);

const lab = await mitmLab(t, ['alice', 'bob']);

function get(url: string, host?: string): Promise<{ status: number; headers: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: host === undefined ? {} : { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('without --console: no console, /console is relayed like any other GET', async (t) => {
  const m = await lab.mallory('passthrough');
  t.equal(m.consoleUrl, undefined);
  t.equal((await get(`${m.httpUrl}/console`)).status, 404, 'the KDC (no console of its own) answers');
});

t.test('the page and the feed: her own port, the CSP, loopback only', async (t) => {
  const m = await lab.mallory('passthrough', { console: true });
  t.equal(m.consoleUrl, `${m.httpUrl}/console`, 'loopback: the URL carries no key');
  const page = await get(m.consoleUrl!);
  t.equal(page.status, 200);
  t.equal(page.headers['content-security-policy'], CONSOLE_CSP);
  t.equal((await get(`${m.httpUrl}/console/app.js`)).status, 200);
  t.equal(
    (await get(`${m.httpUrl}/console/events`, 'attacker.example')).status,
    403,
    'a loopback connection under a foreign Host name is refused',
  );
  t.equal((await get(`${m.httpUrl}/healthz`)).status, 200, 'other GETs are still relayed to the KDC');
});

t.test('a secure victim: her frames, the refusal with its defence, the verdict', async (t) => {
  const m = await lab.mallory('substitute-dh', { console: true });
  const err = (await lab.session('alice', m.url).then(
    () => undefined,
    (e: unknown) => e,
  )) as KdsError;
  t.equal(err?.code, 'bad_signature');
  await m.connectionsEnded(1);
  const { events } = await readFeed(`${m.httpUrl}/console/events`, (es) =>
    es.some((e) => e.kind === 'attack' && e.outcome === 'defended'),
  );
  t.match(
    events.find((e) => e.kind === 'attack'),
    { name: 'substitute-dh', outcome: 'running' },
    'the attack is announced when it starts',
  );
  const arrows = events.filter((e) => e.kind === 'message');
  t.ok(
    arrows.some(
      (e) => e.name === 'client_hello' && e.from === '?' && e.to === 'mallory' && e.action === 'kept',
    ),
    "the victim's hello ends at Mallory: she kept it",
  );
  t.ok(
    arrows.some(
      (e) => e.name === 'server_hello' && e.from === 'mallory' && e.to === '?' && e.action === 'injected',
    ),
    'her own server_hello starts at her lifeline',
  );
  t.ok(
    arrows.some((e) => e.name === 'client_hello' && e.from === 'mallory' && e.to === 'kdc'),
    'her own hello to the KDC',
  );
  t.ok(
    arrows.every((e) => e.exchange === 1 && e.sealed === (e.name === 'record')),
    'one exchange; only records are sealed',
  );
  t.match(
    events.find((e) => e.kind === 'refused'),
    {
      exchange: 1,
      by: '?',
      peer: 'mallory',
      code: 'bad_signature',
      defence: 'transcript signature',
      possibleMitm: true,
      phase: 'handshake',
    },
    'the victim refused her, named by its code and defence',
  );
  t.match(
    events.find((e) => e.kind === 'attack' && e.outcome === 'defended'),
    { name: 'substitute-dh', exchange: 1, defence: 'transcript signature', code: 'bad_signature' },
  );
  const state = events.filter((e) => e.kind === 'state').pop();
  t.match(state, { kind: 'state', state: { view: 'mallory', attack: { name: 'substitute-dh' } } });
  await m.close();
});

t.test('the insecure control mode: her success, the stolen key by serial only, no text', async (t) => {
  const m = await lab.mallory('substitute-dh', { console: true });
  const text = 'meet at the old mill';
  const feed = readFeed(`${m.httpUrl}/console/events`, (es) =>
    es.some((e) => e.kind === 'change' && e.what === 'message.read'),
  );
  const s = await lab.session('alice', m.url, { insecure: true });
  const created = await s.request('key.create', { peer: 'bob' });
  const key = Buffer.from(created.key as Uint8Array);
  const serial = String(created.serial);
  const sealed = sealMessage(key, { serial, from: 'alice', to: 'bob', seq: 1 }, Buffer.from(text, 'utf8'));
  // The KDC refuses a message under an unverified key, but Mallory reads it on the way in.
  await s.request('msg.send', { to: 'bob', serial, ...sealed }).catch(() => undefined);
  const got = await feed;
  await s.close();
  t.match(
    got.events.find((e) => e.kind === 'established'),
    { party: 'alice', role: 'insecure' },
    'the session she holds both ends of is drawn as not authenticated',
  );
  t.match(
    got.events.find((e) => e.kind === 'attack' && e.outcome === 'succeeded'),
    { name: 'substitute-dh', exchange: 1 },
    'her success, on the exchange she won',
  );
  t.match(
    got.events.find((e) => e.kind === 'change' && e.what === 'key.stolen'),
    { subject: serial },
    'the stolen key, by serial',
  );
  t.ok(
    got.events.some((e) => e.kind === 'message' && e.action === 're-encrypted' && e.sealed),
    'records she opened and sealed again',
  );
  t.notOk(got.raw.includes(key.toString('hex')), 'no key bytes in the feed (hex)');
  t.notOk(got.raw.includes(key.toString('base64')), 'no key bytes in the feed (base64)');
  t.notOk(got.raw.includes(text), 'no message text in the feed');
  const state = got.events.filter((e) => e.kind === 'state').pop();
  t.match(state, {
    state: { view: 'mallory', attack: { outcome: 'succeeded', stolenKeys: 1 }, keys: [{ serial: serial }] },
  });
});
