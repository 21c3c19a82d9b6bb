// The KDC's plain HTTP endpoints, next to the WebSocket at /kds:
//   GET /ca.pem   the root CA certificate (public; clients pin it by fingerprint, or trust it on first use)
//   GET /crl.pem  the CURRENT CRL, read from the CA on every request (never a copy taken at start-up:
//                 RFC 5280 5.1.2.4 makes thisUpdate/nextUpdate the relying party's freshness signal, and a
//                 CRL served stale after a revocation was acknowledged would be a lie)
//   GET /delta-crl.pem  the CURRENT delta CRL (RFC 5280 5.2.4) completing /crl.pem; the complete CRL's
//                 Freshest CRL extension (5.2.6) names this URL. 404 while the CA has issued none.
//   GET /healthz  JSON { ok, version, sessions, uptimeMs }: 200 when ok, 503 when not (shutting down, or
//                 its clock is off the shared store's: a load balancer's health check takes it out)
//   GET /metrics  Prometheus text format (server/events/metrics.ts), to the clients `metrics.allow` admits
//                 (kdc.ts: loopback peers only, unless --metrics-listen serves it elsewhere: then 404
//                 here); everyone else gets the 404 of a path that does not exist (docs/security.md).
// Everything else is 404; methods other than GET/HEAD are 405. No request body is ever read. A client
// may pipeline at most MAX_PIPELINED_REQUESTS requests (boundPipelining, around the console's routes too).
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface HttpSources {
  caPem(): string;
  crlPem(): string;
  /** The current delta CRL, or undefined when none was issued (404). Optional for older callers. */
  deltaCrlPem?(): string | undefined;
  health(): Record<string, unknown>;
  metrics?: MetricsSource;
}

export interface MetricsSource {
  /** Whether this client may read the metrics (checked before anything is rendered). */
  allow(req: IncomingMessage): boolean;
  contentType: string;
  render(): Promise<string>;
}

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6 (a dual-stack listener reports `::ffff:127.0.0.1`). */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}

/**
 * Requests one connection may have waiting for their responses (pipelined: RFC 9112 section 9.3.2).
 * Node's server parses a whole read (64 KiB: ~1,800 small requests) before it pauses, and keeps every
 * response queued until the ones before it are written: a client that pipelines GETs and never reads
 * held ~4 MiB of CRLs per connection, with no timeout. kds clients and Prometheus do not pipeline; a
 * browser or curl that does goes a few deep.
 */
const MAX_PIPELINED_REQUESTS = 16;

/**
 * Wrap a request listener: a connection with more than MAX_PIPELINED_REQUESTS responses not yet
 * finished (written to the kernel) is destroyed, with everything queued for it.
 */
export function boundPipelining(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  max = MAX_PIPELINED_REQUESTS,
): (req: IncomingMessage, res: ServerResponse) => void {
  const pending = new WeakMap<object, number>();
  return (req, res) => {
    const socket = req.socket;
    const count = (pending.get(socket) ?? 0) + 1;
    if (count > max) {
      socket.destroy();
      return;
    }
    pending.set(socket, count);
    let done = false;
    const finished = (): void => {
      if (done) return;
      done = true;
      pending.set(socket, (pending.get(socket) ?? 1) - 1);
    };
    res.once('finish', finished);
    res.once('close', finished);
    handle(req, res);
  };
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
} as const;

export function createHttpHandler(sources: HttpSources): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    // Only the path matters; a query string is ignored rather than refused.
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/metrics' && sources.metrics !== undefined && sources.metrics.allow(req)) {
      serveMetrics(sources.metrics, req, res);
      return;
    }
    const route = ROUTES.get(path ?? '');
    if (route === undefined) {
      send(res, req, 404, 'text/plain; charset=utf-8', 'not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, req, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    try {
      const found = route(sources);
      if (found === undefined) {
        send(res, req, 404, 'text/plain; charset=utf-8', 'not found\n');
        return;
      }
      send(res, req, found.status ?? 200, found.type, found.body);
    } catch {
      // Never echo internals (paths, store errors) to an unauthenticated HTTP client.
      send(res, req, 500, 'text/plain; charset=utf-8', 'internal error\n');
    }
  };
}

type Route = (s: HttpSources) => { type: string; body: string; status?: number } | undefined;

// A Map, not an object literal: a request for `/constructor` or `__proto__` must not find a route.
const ROUTES = new Map<string, Route>([
  ['/ca.pem', (s) => ({ type: 'application/x-pem-file', body: s.caPem() })],
  ['/crl.pem', (s) => ({ type: 'application/x-pem-file', body: s.crlPem() })],
  [
    '/delta-crl.pem',
    (s) => {
      const body = s.deltaCrlPem?.();
      return body === undefined ? undefined : { type: 'application/x-pem-file', body };
    },
  ],
  [
    '/healthz',
    (s) => {
      const health = s.health();
      return {
        type: 'application/json',
        body: `${JSON.stringify(health)}\n`,
        ...(health.ok === false ? { status: 503 } : {}),
      };
    },
  ],
]);

function serveMetrics(metrics: MetricsSource, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    send(res, req, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  metrics.render().then(
    (body) => send(res, req, 200, metrics.contentType, body),
    () => send(res, req, 500, 'text/plain; charset=utf-8', 'internal error\n'),
  );
}

function send(res: ServerResponse, req: IncomingMessage, status: number, type: string, body: string): void {
  const bytes = Buffer.from(body, 'utf8');
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': bytes.length });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}
