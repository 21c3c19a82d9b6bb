// Mallory's proxy (docs/attacks.md): an HTTP + WebSocket server that victims take for the KDC. Each WebSocket
// a client opens to her becomes a Link to the real KDC (client/mitm/link.ts) driven by the chosen
// attack; plain HTTP GETs (/ca.pem, /crl.pem, /healthz) are relayed to the KDC unchanged. When the
// run ends, the verdict, the loot and every frame event become the report (client/mitm/report.ts).
//
// Mallory is a lab tool: she binds where she is told (default 127.0.0.1) and keeps everything in
// memory; her own sockets accept frames up to 1 MiB so that she can forward oversized ones.
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { EnvironmentError, InputError } from '../../shared/errors.js';
import type { AttackModule } from './attack.js';
import { MitmContext, type MitmEvent, type MitmIdentity } from './context.js';
import { Link, MITM_MAX_PAYLOAD } from './link.js';
import { buildReport, type MitmReport } from './report.js';

export const DEFAULT_HOLD_MS = 400;

export interface MitmOptions {
  attack: AttackModule;
  /** The real KDC: ws://host:port (the /kds path is added when missing). */
  target: string;
  host?: string;
  port?: number;
  identity?: MitmIdentity;
  peer?: string;
  holdMs?: number;
  /** Every frame line, finding and stolen item as it happens. */
  onEvent?: (event: MitmEvent) => void;
  /** Called after each victim connection ends (e.g. to rewrite the report file). */
  onConnectionEnd?: () => void;
  /** Serve Mallory's live console at /console on her own port (client/mitm/console.ts). */
  console?: boolean;
}

export interface Mitm {
  /** ws://host:port/kds: what victims use as --server. */
  readonly url: string;
  readonly httpUrl: string;
  /** Mallory's live console (`console: true` only); the key is in it when she listens beyond loopback. */
  readonly consoleUrl?: string;
  /** The running attack's context (bad_request between two attacks). */
  readonly context: MitmContext;
  /** Victim connections of the running attack so far. */
  readonly connections: number;
  /** Resolves when `n` victim connections of the running attack have ended. */
  connectionsEnded(n: number): Promise<void>;
  report(): MitmReport;
  /**
   * Live switch (`kds mitm --control`): end the running attack (its live connections are cut with 1012,
   * its side tasks awaited) and start `next` (none: victims are turned away until the next one).
   * Resolves with the report of the attack that ended.
   */
  switchAttack(next: AttackModule | undefined): Promise<MitmReport | undefined>;
  /** Stop accepting, close every link, wait for side tasks; returns the report of the last attack. */
  close(): Promise<MitmReport>;
}

/** ws://h:p -> ws://h:p/kds (a path the user gave is kept). */
export function normalizeTarget(target: string): { ws: string; http: string } {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new InputError('bad_request', `--target must be a ws:// URL, got ${JSON.stringify(target)}`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new InputError('bad_request', `--target must start with ws:// or wss://, got ${url.protocol}`);
  }
  // As for a client's --server (shared/server-urls.ts): a WebSocket URL has no fragment (ws refuses
  // one when each victim connects), and credentials in it would be printed in every status line.
  if (url.hash !== '' || target.includes('#')) {
    throw new InputError('bad_request', '--target has a #fragment, which a WebSocket URL cannot have');
  }
  if (url.username !== '' || url.password !== '') {
    throw new InputError('bad_request', '--target has user:password@ credentials, which kds never uses');
  }
  if (url.pathname === '' || url.pathname === '/') url.pathname = '/kds';
  return { ws: url.toString(), http: `${url.protocol === 'wss:' ? 'https:' : 'http:'}//${url.host}` };
}

/** "127.0.0.1:9443" -> host and port (port 0 picks a free one). */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || !(port >= 0 && port <= 65535)) {
    throw new InputError(
      'bad_request',
      `--listen must be host:port (e.g. 127.0.0.1:9443), got ${JSON.stringify(listen)}`,
    );
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** One attack's run: its context (verdict, loot, events) and its victim connections. */
interface Round {
  ctx: MitmContext;
  links: Set<Link>;
  ended: number;
  waiters: { n: number; resolve: () => void }[];
}

export async function startMitm(opts: MitmOptions): Promise<Mitm> {
  const target = normalizeTarget(opts.target);
  const settings = {
    target: target.ws,
    ...(opts.identity === undefined ? {} : { identity: opts.identity }),
    ...(opts.peer === undefined ? {} : { peer: opts.peer }),
    holdMs: opts.holdMs ?? DEFAULT_HOLD_MS,
  };
  const emit = opts.onEvent ?? (() => {});
  // Loaded only when asked for: without a console no module or object of it exists.
  const live = opts.console === true ? (await import('./console.js')).startMalloryConsole() : undefined;

  const begin = async (attack: AttackModule): Promise<Round> => {
    const ctx = new MitmContext(attack, settings, emit);
    if (live !== undefined) {
      ctx.watch = live.watch;
      live.attackStarted(attack);
    }
    if (attack.needsIdentity === true && opts.identity === undefined) {
      ctx.info(
        0,
        `attack ${attack.name} needs an identity of Mallory's own (--identity <client home>): it will be inconclusive`,
      );
    }
    await attack.prepare?.(ctx);
    return { ctx, links: new Set(), ended: 0, waiters: [] };
  };

  /** Cut the round's live connections, wait for them and its side tasks, and report it. */
  const finish = async (r: Round, closeCode: number): Promise<MitmReport> => {
    for (const link of r.links) {
      link.closeClient(closeCode, '');
      link.closeServer(1000, '');
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...r.links].map((l) => l.closed)),
      new Promise((resolve) => (timer = setTimeout(resolve, 3_000))),
    ]);
    clearTimeout(timer);
    await r.ctx.settle();
    const report = buildReport(r.ctx);
    live?.attackEnded(report);
    return report;
  };

  let round: Round | undefined = await begin(opts.attack);
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MITM_MAX_PAYLOAD,
    perMessageDeflate: false,
    clientTracking: false,
  });
  const server: Server = createServer((req, res) => {
    if (live?.routes.handle(req, res) === true) return;
    relayHttp(target.http, req, res);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const r = round;
      if (r === undefined) {
        // Between two attacks (control mode): nobody is listening to victims; try again later.
        ws.close(1013, 'unavailable');
        return;
      }
      ws.binaryType = 'nodebuffer';
      r.ctx.connections += 1;
      const link = new Link(r.ctx.connections, r.ctx, ws, target.ws);
      r.links.add(link);
      r.ctx.watch?.opened(link);
      link.attach(r.ctx.attack.connection(link));
      link.info(`victim connected from ${req.socket.remoteAddress ?? '?'}`);
      void link.closed.then(() => {
        r.links.delete(link);
        r.ended += 1;
        for (const w of r.waiters.filter((x) => r.ended >= x.n)) {
          r.waiters.splice(r.waiters.indexOf(w), 1);
          w.resolve();
        }
        if (r === round) opts.onConnectionEnd?.();
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      live?.close();
      reject(
        new EnvironmentError(
          'io_error',
          `cannot listen on ${opts.host ?? '127.0.0.1'}:${opts.port ?? 0}: ${err.code ?? err.message}`,
        ),
      );
    };
    server.once('error', onError);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  const current = (): Round => {
    if (round === undefined) throw new InputError('bad_request', 'no attack is running');
    return round;
  };

  // Rounds switch one at a time, in the order asked.
  let switching: Promise<unknown> = Promise.resolve();
  let closing: Promise<MitmReport> | undefined;
  let lastReport: MitmReport | undefined;
  const httpUrl = `http://${host}:${address.port}`;
  return {
    url: `ws://${host}:${address.port}/kds`,
    httpUrl,
    ...(live === undefined ? {} : { consoleUrl: live.urlFor(httpUrl, address.address) }),
    get context() {
      return current().ctx;
    },
    get connections() {
      return round?.ctx.connections ?? 0;
    },
    connectionsEnded(n: number) {
      const r = current();
      if (r.ended >= n) return Promise.resolve();
      return new Promise((resolve) => r.waiters.push({ n, resolve }));
    },
    report: () => buildReport(current().ctx),
    switchAttack(next: AttackModule | undefined) {
      const step = switching.then(async () => {
        const old = round;
        round = undefined;
        const report = old === undefined ? undefined : await finish(old, 1012);
        if (report !== undefined) lastReport = report;
        if (next !== undefined) round = await begin(next);
        return report;
      });
      switching = step.catch(() => undefined);
      return step;
    },
    close() {
      closing ??= (async () => {
        await switching;
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        const last = round;
        round = undefined;
        if (last !== undefined) lastReport = await finish(last, 1001);
        live?.close();
        server.closeAllConnections();
        await stopped;
        wss.close();
        return lastReport!; // an attack always ran: startMitm begins with one
      })();
      return closing;
    },
  };
}

/** GET /ca.pem, /crl.pem, /healthz: passed through to the KDC (Mallory has no reason to lie about public files). */
function relayHttp(base: string, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { 'content-length': '0' }).end();
    return;
  }
  const upstream = httpRequest(`${base}${req.url ?? '/'}`, { method: req.method, timeout: 10_000 }, (up) => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    up.pipe(res);
  });
  upstream.on('timeout', () => upstream.destroy());
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'content-length': '0' });
    res.end();
  });
  upstream.end();
}
