// The feed over HTTP: the keepalive is an event the page sees (not an SSE comment), at the interval its
// hello names; a reconnection's Last-Event-ID header reaches the feed.
import t from 'tap';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConsoleAccess } from '../../../io/console/access.js';
import { ConsoleFeed } from '../../../io/console/feed.js';
import { createConsoleRoutes } from '../../../io/console/http.js';
import { parseSse, type SseEvent } from '../../helpers/sse.js';

async function serve(feed: ConsoleFeed): Promise<{ url: string; server: Server; close: () => void }> {
  const routes = createConsoleRoutes(feed, new ConsoleAccess('k'), new Map());
  const server = createServer((req, res) => {
    if (!routes.handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/console/events`,
    server,
    close: () => {
      routes.close();
      server.closeAllConnections();
      server.close();
    },
  };
}

/** Reads the stream until `done` holds for its events. */
function read(
  url: string,
  headers: Record<string, string>,
  done: (e: SseEvent[]) => boolean,
): Promise<SseEvent[]> {
  return new Promise((resolve, reject) => {
    let raw = '';
    const req = request(url, { headers }, (res) => {
      res.setEncoding('utf8').on('data', (d: string) => {
        raw += d;
        const events = parseSse(raw);
        if (done(events)) {
          req.destroy();
          resolve(events);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('the keepalive is a ping event, at the interval the hello names', async (t) => {
  const feed = new ConsoleFeed('kdc', () => 0, 20);
  const s = await serve(feed);
  t.teardown(s.close);
  const events = await read(s.url, {}, (e) => e.some((x) => x.event === 'ping'));
  t.same(JSON.parse(events[0]!.data), { instance: feed.instance, view: 'kdc', keepaliveMs: 20 });
  t.equal(events.at(-1)!.event, 'ping');
});

t.test('Last-Event-ID reaches the feed: only what followed', async (t) => {
  const feed = new ConsoleFeed('kdc', () => 0, 60_000);
  const s = await serve(feed);
  t.teardown(s.close);
  for (let i = 0; i < 5; i++) feed.publish({ kind: 'exchange.open', exchange: i + 1 });
  const events = await read(s.url, { 'last-event-id': `${feed.instance}-3` }, (e) => e.length >= 3);
  t.same(
    events.map((e) => e.id ?? e.event),
    ['hello', `${feed.instance}-4`, `${feed.instance}-5`],
  );
});
