// The console's HTTP routes, answered by the process the console watches (the KDC, or Mallory's
// proxy), on its own port: no extra server.
//   GET /console          the page        GET /console/*.js, /console/console.css  its files
//   GET /console/events   the feed, as Server-Sent Events (loopback, or ?key=<console key>)
// Every answer carries a Content-Security-Policy without 'unsafe-inline': the page's only scripts are
// its own files, and it may connect only to its own origin. The page writes network-sourced strings
// with textContent only (web/console/dom.ts), so a name or label is never markup.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConsoleAccess } from './access.js';
import type { Asset } from './assets.js';
import type { ConsoleFeed } from './feed.js';

export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
} as const;

export interface ConsoleRoutes {
  /** Answers `req` when it is a console route; false otherwise (the caller's routes then). */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  close(): void;
}

export function createConsoleRoutes(
  feed: ConsoleFeed,
  access: ConsoleAccess,
  assets: Map<string, Asset>,
): ConsoleRoutes {
  const streams = new Set<ServerResponse>();
  // A named event, not an SSE comment: the page never sees a comment, and needs to see the stream is
  // alive (a hung process or a stalled network leaves it open and silent).
  const keepalive = setInterval(() => {
    for (const res of streams) res.write('event: ping\ndata: {}\n\n');
  }, feed.keepaliveMs);
  keepalive.unref();
  return {
    handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://console.invalid');
      const path = url.pathname === '/console/' ? '/console' : url.pathname;
      if (path !== '/console' && !path.startsWith('/console/')) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        send(res, 405, 'text/plain; charset=utf-8', Buffer.from('method not allowed\n'), {
          allow: 'GET, HEAD',
        });
        return true;
      }
      if (path === '/console/events') {
        if (!access.allows(req, url.searchParams.get('key'))) {
          send(
            res,
            403,
            'text/plain; charset=utf-8',
            Buffer.from('the console answers loopback clients, or the console key\n'),
          );
          return true;
        }
        res.writeHead(200, {
          ...HEADERS,
          'content-type': 'text/event-stream; charset=utf-8',
          connection: 'keep-alive',
        });
        if (req.method === 'HEAD') {
          res.end();
          return true;
        }
        res.write('retry: 1000\n\n');
        const lastEventId = req.headers['last-event-id'];
        if (!feed.subscribe(res, typeof lastEventId === 'string' ? lastEventId : undefined)) {
          res.end('event: full\ndata: {}\n\n');
          return true;
        }
        streams.add(res);
        res.on('close', () => streams.delete(res));
        return true;
      }
      const asset = assets.get(path);
      if (asset === undefined) {
        send(res, 404, 'text/plain; charset=utf-8', Buffer.from('not found\n'));
        return true;
      }
      send(res, 200, asset.type, req.method === 'HEAD' ? undefined : asset.body, {
        'content-length': String(asset.body.length),
      });
      return true;
    },
    close() {
      clearInterval(keepalive);
      feed.close();
      streams.clear();
    },
  };
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: Buffer | undefined,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, { ...HEADERS, 'content-type': type, ...extra });
  res.end(body);
}
