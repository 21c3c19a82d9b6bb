// How Mallory judges a connection (client/mitm/link.ts, docs/attacks.md "How Mallory judges an attack"):
// nothing is credited to a defence that was never put to the test. A KDC that cannot be reached, or a
// victim that cuts its TCP connection before anyone answered, leaves the connection inconclusive; the
// watch lines show only frames that were really sent; and a victim whose KDC is unreachable is told
// `unavailable`. A tampered record's sealed answer is judged by what follows it, and a stolen key
// decides the attack.
import t from 'tap';
import { createServer } from 'node:net';
import type { KdsError } from '../../../shared/errors.js';
import { readClientHome } from '../../../client/home.js';
import { openKeyClient } from '../../../client/keys/open.js';
import { defencesWithout } from '../../../shared/lab-switches.js';
import { rawHandshake, rawHello } from '../../helpers/raw-client.js';
import { mitmLab } from './lab.js';

t.setTimeout(120_000);

const lab = await mitmLab(t, ['alice', 'bob', 'mallory']);

/** A loopback port nothing listens on (bound on port 0, then closed). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

t.test(
  'the KDC cannot be reached: inconclusive, no frame logged as sent, the victim told unavailable',
  async (t) => {
    const target = `ws://127.0.0.1:${await deadPort()}`;
    for (const attack of ['oversize', 'garbage', 'downgrade']) {
      const m = await lab.mallory(attack, { target });
      const err = (await lab.session('alice', m.url).then(
        async (s) => {
          await s.close();
          return undefined;
        },
        (e: unknown) => e,
      )) as KdsError | undefined;
      t.equal(err?.code, 'unavailable', `${attack}: the victim's error says the server is unavailable`);
      await m.connectionsEnded(1);
      const report = await m.close();
      t.equal(report.outcome, 'inconclusive', `${attack}: ${report.summary}`);
      t.equal(report.defence, null);
      t.match(report.summary, /the KDC could not be reached/);
      t.same(
        report.frames.filter((f) => f.dir === 'c2s' || f.dir === 'm2s').filter((f) => f.type !== 'close'),
        [],
        `${attack}: no frame is logged as sent to a KDC that never opened`,
      );
      t.notOk(
        report.frames.some((f) => f.dir === 's2c' && f.type === 'close'),
        `${attack}: no close is logged from a KDC that never opened`,
      );
      t.ok(
        m.events.some((e) => e.event === 'info' && /cannot reach the KDC/.test(e.text)),
        `${attack}: Mallory says she cannot reach the KDC`,
      );
    }
  },
);

t.test('a victim that cuts its TCP connection before any defence answered: inconclusive', async (t) => {
  const m = await lab.mallory('impersonate-server');
  const files = readClientHome(lab.home('alice'), undefined);
  const { conn } = await rawHello({
    url: m.url,
    caCertPem: files.caPem,
    credentials: { privateKey: files.privateKey, certPem: files.certPem },
  });
  const answer = await conn.next(10_000);
  t.ok(Buffer.isBuffer(answer), "Mallory's forged server_hello arrived");
  conn.destroy();
  await m.connectionsEnded(1);
  const report = await m.close();
  t.equal(report.outcome, 'inconclusive', report.summary);
  t.equal(report.defence, null, 'no defence is credited');
  t.match(report.summary, /closed the connection abnormally \(1006\) before any defence answered/);
});

// tamper against a KDC whose record layer skips the GCM tag (the ablation's record-authentication
// switch): the bit Mallory flips is decrypted into the request, and what follows the KDC's sealed answer
// tells her whether the altered request was acted on or refused.
t.test(
  'tamper without record authentication: acted on is a success, refused is input validation',
  async (t) => {
    const ablated = await mitmLab(t, ['alice', 'bob'], {
      defences: defencesWithout(['record-authentication']),
    });
    const files = readClientHome(ablated.home('alice'), undefined);
    const raw = async (url: string) =>
      rawHandshake({
        url,
        caCertPem: files.caPem,
        credentials: { privateKey: files.privateKey, certPem: files.certPem },
      });

    await t.test('the flipped bit turns listHeld true into false, and the KDC acts on it', async (t) => {
      const m = await ablated.mallory('tamper');
      const s = await raw(m.url);
      s.request('key.prekeys', 1, { prekeys: [], listHeld: true });
      const reply = await s.read(10_000);
      t.match(reply, { kind: 'ok', id: 1 }, 'the KDC answered the altered request');
      t.notOk(
        'held' in ((reply as { body?: object }).body ?? {}),
        'without the list of held prekeys: it read listHeld as false',
      );
      s.request('ping', 2, {});
      t.match(await s.read(10_000), { kind: 'ok', id: 2 }, 'the victim carries on');
      s.conn.ws.close(1000);
      await m.connectionsEnded(1);
      t.match(await m.close(), { outcome: 'succeeded' });
    });

    await t.test('a real key command carries on: succeeded', async (t) => {
      const m = await ablated.mallory('tamper');
      const opened = await openKeyClient({ name: 'alice', home: ablated.home('alice'), server: m.url });
      const sent = await opened.client.sendKey({ to: 'bob', mode: 'kdc' });
      t.ok(sent.serial, 'the victim sent a key through the altered session');
      await opened.close();
      await m.connectionsEnded(1);
      const report = await m.close();
      t.equal(report.outcome, 'succeeded', report.summary);
    });

    await t.test(
      'an altered request the KDC refuses, and the victim ends its session: input validation',
      async (t) => {
        const m = await ablated.mallory('tamper');
        const s = await raw(m.url);
        // The last byte is the last letter of the name: 'a' (0x61) becomes '`', which no name may hold.
        s.request('key.peer', 1, { name: 'boba' });
        const reply = await s.read(10_000);
        t.match(
          reply,
          { kind: 'error', id: 1 },
          'the KDC answered with an error (sealed: Mallory cannot read it)',
        );
        s.conn.ws.close(1000);
        await m.connectionsEnded(1);
        const report = await m.close();
        t.equal(report.outcome, 'failed', report.summary);
        t.equal(report.defence, 'input validation');
      },
    );
  },
);

t.test(
  'unknown-key-share against an insecure receiver: the KDC key she steals makes it a success',
  async (t) => {
    const alice = await openKeyClient({ name: 'alice', home: lab.home('alice'), server: lab.kdc.url });
    const sent = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
    await alice.close();
    const m = await lab.mallory('unknown-key-share', { identity: 'mallory' });
    // Bob's insecure session takes the queued delivery through Mallory, who rewrites its sender.
    await openKeyClient({ name: 'bob', home: lab.home('bob'), server: m.url, insecure: true }).then(
      (bob) => bob.close(),
      () => undefined,
    );
    await m.connectionsEnded(1);
    const report = await m.close();
    const stolen = report.stolen?.keys.find((k) => k.serial === sent.serial);
    t.ok(stolen !== undefined, `Mallory stole key ${sent.serial} from the delivery`);
    t.equal(stolen?.fingerprint, sent.fingerprint, 'the very key alice sent');
    t.equal(report.outcome, 'succeeded', report.summary);
    t.equal(report.defence, null);
    t.equal(report.summary, `attack unknown-key-share: SUCCEEDED — stole key ${stolen?.key ?? '?'}`);
    t.ok(
      report.findings.some((f) => f.outcome === 'succeeded' && f.detail.includes(sent.serial)),
      'the theft is a finding of its own',
    );
  },
);
