// How Mallory judges a connection (client/mitm/link.ts, docs/attacks.md "How Mallory judges an attack"):
// nothing is credited to a defence that was never put to the test. A KDC that cannot be reached, or a
// victim that cuts its TCP connection before anyone answered, leaves the connection inconclusive; the
// watch lines show only frames that were really sent; and a victim whose KDC is unreachable is told
// `unavailable`.
import t from 'tap';
import { createServer } from 'node:net';
import type { KdsError } from '../../../shared/errors.js';
import { readClientHome } from '../../../client/home.js';
import { rawHello } from '../../helpers/raw-client.js';
import { mitmLab } from './lab.js';

t.setTimeout(120_000);

const lab = await mitmLab(t, ['alice']);

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
