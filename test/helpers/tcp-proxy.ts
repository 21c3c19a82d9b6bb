// A TCP proxy in the test process (node:net) between KDC nodes and PostgreSQL: `cut()` destroys every
// proxied connection and refuses new ones (the listening socket is closed, so a connect gets
// ECONNREFUSED, what a restarting PostgreSQL gives), `restore()` listens again on the same port. The
// machine's real PostgreSQL is never restarted: other tests use it at the same time. `stall()` turns
// the connections open at that moment into black holes (nothing forwarded, nothing closed: a peer whose
// host vanished, a NAT or firewall that dropped their state) while new connections pass as before.
import { createServer, connect, type Server, type Socket } from 'node:net';

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

export interface TcpProxy {
  /** The port on 127.0.0.1 the proxy listens on (the same after a restore). */
  readonly port: number;
  /** Connections accepted since the start. */
  readonly accepted: number;
  /** Close the listener and destroy every proxied connection (both ends); resolves once closed. */
  cut(): Promise<void>;
  /** Listen again on the same port. */
  restore(): Promise<void>;
  /** Stop forwarding on every connection open now, without closing them; new ones are not affected. */
  stall(): void;
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

/** Start a proxy to target (host, port), closed at teardown. */
export async function startTcpProxy(t: TestLike, targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<Socket>();
  const stalled = new Set<Socket>();
  let accepted = 0;
  let server: Server;
  const make = (): Server =>
    createServer((inbound) => {
      accepted += 1;
      const outbound = connect(targetPort, targetHost);
      pairs.add(inbound);
      pairs.add(outbound);
      const end = (): void => {
        inbound.destroy();
        outbound.destroy();
        pairs.delete(inbound);
        pairs.delete(outbound);
      };
      inbound.on('error', end).on('close', end);
      outbound.on('error', end).on('close', end);
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    });
  server = make();
  const port = await listen(server, 0);
  let listening = true;
  const cut = async (): Promise<void> => {
    if (listening) {
      listening = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of [...pairs, ...stalled]) s.destroy();
      pairs.clear();
      stalled.clear();
      await closed;
    }
  };
  t.teardown(cut);
  return {
    port,
    get accepted() {
      return accepted;
    },
    cut,
    stall: () => {
      for (const s of pairs) {
        s.unpipe();
        s.pause();
        // Their 'close' must not end anything any more: they are simply gone quiet.
        s.removeAllListeners('close');
        s.removeAllListeners('error');
        s.on('error', () => undefined);
        stalled.add(s);
      }
      pairs.clear();
    },
    restore: async () => {
      if (listening) return;
      server = make();
      await listen(server, port);
      listening = true;
    },
  };
}
