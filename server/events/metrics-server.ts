// `kds server start --metrics-listen HOST:PORT`: GET /metrics on a listener of its own (every client
// that reaches it may read it: put it on a monitoring network or behind a firewall), for when the
// scraper is not on the KDC's host. Everything else is 404.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EnvironmentError } from '../../shared/errors.js';
import { createHttpHandler, type MetricsSource } from '../kdc/http.js';

export interface MetricsServer {
  readonly url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(
  host: string,
  port: number,
  metrics: Omit<MetricsSource, 'allow'>,
): Promise<MetricsServer> {
  const nothing = (): never => {
    throw new Error('not served here');
  };
  const handler = createHttpHandler({
    caPem: nothing,
    crlPem: nothing,
    health: nothing,
    metrics: { ...metrics, allow: () => true },
  });
  const server: Server = createServer({ headersTimeout: 10_000, requestTimeout: 10_000 }, (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new EnvironmentError(
          'io_error',
          `cannot listen on ${host}:${port} for metrics: ${err.code ?? err.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${urlHost}:${address.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
