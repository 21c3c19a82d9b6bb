// A node that accepts the WebSocket and then never answers the handshake (a hung process, a node whose
// certificate check waits on a store that went quiet) is skipped like one that refuses connections:
// the client's handshake timeout is "cannot reach it" too (client/failover.ts). It used to end the
// search with `timeout`, so the healthy node listed next was never tried.
import t from 'tap';
import { WebSocketServer } from 'ws';
import { openSession } from '../../client/session.js';
import { issueTestClient, startTestKdc } from '../helpers/kdc-in-process.js';
import { codeOf } from '../helpers/code-of.js';

async function hungNode(t: { teardown(fn: () => void | Promise<void>): void }): Promise<string> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  wss.on('connection', () => undefined); // upgraded, then silent
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  );
  const address = wss.address();
  return `ws://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/kds`;
}

t.test('a node that never completes the handshake is skipped for the next one', async (t) => {
  const { kdc } = await startTestKdc(t);
  const alice = await issueTestClient(kdc.ca, 'alice');
  const hung = await hungNode(t);
  const open = (server: string) =>
    openSession({
      server,
      mode: 'auth',
      credentials: { privateKey: alice.privateKey, certPem: alice.certPem },
      caCertPem: kdc.ca.caCertPem,
      connectTimeoutMs: 1_000,
    });
  t.equal(await codeOf(open(hung)), 'timeout', 'alone, the hung node is a timeout');
  const session = await open(`${hung},${kdc.url}`);
  t.equal(session.server, kdc.url, 'listed first, it is skipped');
  await session.close();
  const other = await hungNode(t);
  await t.rejects(open(`${hung},${other}`), {
    code: 'unavailable',
    message: `no KDC node answered: ${hung}: the server did not complete the handshake in time; ${other}: the server did not complete the handshake in time`,
  });
});
