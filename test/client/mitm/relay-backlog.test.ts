// Mallory's relay is bounded (client/mitm/link.ts): a side that stops reading while the other keeps
// sending used to grow her without bound, every relayed frame kept until written. Over 16 MiB held for
// one connection she closes it, both sides, and says why on the watch.
import t from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { startMitm } from '../../../client/mitm/proxy.js';
import { findAttack } from '../../../client/mitm/catalog.js';
import type { MitmEvent } from '../../../client/mitm/context.js';

t.test('a victim that does not read what the KDC sends: the connection is closed at 16 MiB', async (t) => {
  // Stands in for the KDC: answers the first frame with 40 MiB (640 frames of 64 KiB).
  const kdc = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/kds' });
  await new Promise<void>((resolve) => kdc.once('listening', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => kdc.close(() => resolve())));
  let sentByKdc = 0;
  kdc.on('connection', (ws) => {
    ws.once('message', () => {
      for (let i = 0; i < 640; i++) {
        ws.send(Buffer.alloc(64 * 1024, i % 251));
        sentByKdc += 64 * 1024;
      }
    });
    ws.on('error', () => {});
  });
  const port = (kdc.address() as { port: number }).port;
  const events: MitmEvent[] = [];
  const m = await startMitm({
    attack: findAttack('passthrough'),
    target: `ws://127.0.0.1:${port}`,
    host: '127.0.0.1',
    port: 0,
    onEvent: (e) => events.push(e),
  });
  t.teardown(() => m.close());

  const victim = new WebSocket(m.url);
  victim.on('error', () => {});
  await new Promise<void>((resolve) => victim.once('open', () => resolve()));
  victim.pause(); // reads nothing from here on
  const closed = new Promise<void>((resolve) => victim.once('close', () => resolve()));
  victim.send(Buffer.from('hello'));
  const until = Date.now() + 20_000;
  while (!events.some((e) => e.event === 'info' && /does not read/.test(e.text)) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const line = events.find((e) => e.event === 'info' && /does not read/.test(e.text));
  t.ok(line, 'the watch says why');
  t.match(
    line?.event === 'info' ? line.text : '',
    /the victim does not read what is relayed to it \(over 16 MiB held\)/,
  );
  victim.resume();
  await closed;
  t.pass('the victim connection was closed');
  t.equal(sentByKdc, 640 * 64 * 1024, 'while the KDC side sent 40 MiB');
});
