// GET /delta-crl.pem: served from the CA on every request next to /crl.pem, 404
// while the CA has issued no delta CRL (a data directory not yet opened with its key since the upgrade),
// never a 500 or a stale copy.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHttpHandler } from '../../../server/kdc/http.js';

let delta: string | undefined;
let served = 0;
const server: Server = createServer(
  createHttpHandler({
    caPem: () => 'CA',
    crlPem: () => 'FULL',
    deltaCrlPem: () => {
      served++;
      return delta;
    },
    health: () => ({ ok: true }),
  }),
);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

t.test('404 until a delta exists, then the current one on every request', async (t) => {
  const none = await fetch(`${base}/delta-crl.pem`);
  t.equal(none.status, 404);
  await none.text();
  delta = 'DELTA 1';
  const one = await fetch(`${base}/delta-crl.pem`);
  t.equal(one.status, 200);
  t.equal(one.headers.get('content-type'), 'application/x-pem-file');
  t.equal(one.headers.get('cache-control'), 'no-store');
  t.equal(await one.text(), 'DELTA 1');
  delta = 'DELTA 2';
  t.equal(await (await fetch(`${base}/delta-crl.pem?x=1`)).text(), 'DELTA 2', 'never a cached copy');
  t.equal(served, 3);
  const post = await fetch(`${base}/delta-crl.pem`, { method: 'POST', body: 'x' });
  t.equal(post.status, 405);
  await post.text();
  t.equal(await (await fetch(`${base}/crl.pem`)).text(), 'FULL', '/crl.pem unchanged');
});
