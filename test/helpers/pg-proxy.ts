// A test schema reached through a TCP proxy the test can stall or cut (test/helpers/tcp-proxy.ts): how
// the store tests make PostgreSQL go quiet or away for one store without touching the server others use.
import { PG_TEST_URL, pgTestSchema } from './pg.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

export interface ProxiedSchema {
  /** The schema, reached directly. */
  url: string;
  /** The same schema through the proxy. */
  proxiedUrl: string;
  proxy: TcpProxy;
  /** Stores to close before the schema is dropped (push each store the test opens). */
  opened: { close(): Promise<void> }[];
}

export async function pgSchemaBehindProxy(t: TestLike): Promise<ProxiedSchema> {
  const opened: ProxiedSchema['opened'] = [];
  const { url } = pgTestSchema(t, async () => {
    for (const s of opened) await s.close();
  });
  const target = new URL(PG_TEST_URL);
  const proxy = await startTcpProxy(t, target.hostname, Number(target.port || '5432'));
  const proxied = new URL(url);
  proxied.host = `127.0.0.1:${proxy.port}`;
  return { url, proxiedUrl: proxied.toString(), proxy, opened };
}
