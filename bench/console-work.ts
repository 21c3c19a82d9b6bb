// What the live console adds to one handshake, measured in this process: the KDC's watcher (server/
// console/kdc-watch.ts) fed the calls a connection makes for a handshake and one request, publishing
// into the feed (io/console/feed.ts) with one page reading it over a real loopback socket. On a
// shared machine the two-KDC comparison (bench/console.ts) moves by several percent between runs;
// this figure has no second process and no network peer to vary with the load. The watcher's clock is
// simulated at `rate` handshakes a second (the rate the KDC reached in the same run), so its drawing
// budget draws what it would draw at that rate. It is NOT the whole cost: the feed's writes to the page
// follow the real clock (at most ten a second, so few in this short loop), and what the KDC's own
// event loop pays for them differs; bench/console.ts measures the whole. Not included either: the
// state panel's re-read (a timer, every 500 ms when something changed, not per handshake).
import { createServer, connect, type Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { ConsoleFeed } from '../io/console/feed.js';
import type { Connection } from '../server/kdc/connection.js';
import { KdcWatch } from '../server/console/kdc-watch.js';

/** The frames of one authenticated handshake and one request, as connection.ts reports them. */
const FRAMES: [dir: 'in' | 'out', name: string, bytes: number, sealed: boolean][] = [
  ['in', 'client_hello', 151, false],
  ['out', 'server_hello', 1404, false],
  // (the client's finish, 1,580 B, reported by `finish`)
  ['out', 'ready', 120, true],
  ['in', 'ping', 60, true],
  ['out', 'ping ok', 60, true],
];

const FINISH_BYTES = 1580;

/** CPU microseconds the console spends per handshake, `inFlight` handshakes per event-loop turn. */
export async function measureConsoleWork(opts: {
  handshakes: number;
  inFlight: number;
  rate: number;
}): Promise<number> {
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const page = connect(port, '127.0.0.1');
  page.resume();
  const socket = await accepted;
  try {
    const feed = new ConsoleFeed('kdc');
    // A socket has what the feed uses of a response: write, writableLength, the close event.
    feed.subscribe(socket as unknown as ServerResponse);
    let clock = 0;
    const watch = new KdcWatch(feed, () => clock);
    const finish = Buffer.alloc(FINISH_BYTES);
    const handshake = (i: number): void => {
      const conn = {
        mode: 'auth',
        identity: { name: `hs${i % 32}`, role: 'client' },
      } as unknown as Connection;
      clock += 1000 / opts.rate;
      // The console's state tick (kdc-console.ts), every 500 ms of the simulated clock.
      if (Math.floor(clock / 500) !== Math.floor((clock - 1000 / opts.rate) / 500)) watch.publishUndrawn();
      watch.opened(conn);
      for (const [dir, name, bytes, sealed] of FRAMES.slice(0, 2))
        watch.frame(conn, dir, name, bytes, sealed);
      watch.finish(conn, finish);
      watch.established(conn, 'x25519');
      for (const [dir, name, bytes, sealed] of FRAMES.slice(2)) watch.frame(conn, dir, name, bytes, sealed);
      watch.closed(conn, 1000, '');
    };
    const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    // Warm the JIT, then measure.
    for (let i = 0; i < 2_000; i++) {
      handshake(i);
      if (i % opts.inFlight === 0) await turn();
    }
    await turn();
    const before = process.cpuUsage();
    for (let i = 0; i < opts.handshakes; i++) {
      handshake(i);
      if (i % opts.inFlight === opts.inFlight - 1) await turn();
    }
    await turn();
    const used = process.cpuUsage(before);
    feed.close();
    return (used.user + used.system) / opts.handshakes;
  } finally {
    page.destroy();
    socket.destroy();
    server.close();
  }
}
