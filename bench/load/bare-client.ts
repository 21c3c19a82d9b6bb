// Client load for the bare ws+msgpackr baseline (bare-server.ts), in its own process: `connections`
// WebSockets, each sending one request at a time (a small msgpackr map, like a key request) and waiting
// for its answer, `count` requests per connection.
//   run {url, connections, count} -> {ms, requests, latencies}
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { serve } from './ipc.js';

const packr = new Packr({ useRecords: false });

async function connect(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.binaryType = 'nodebuffer';
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return ws;
}

serve({
  run: async (arg: { url: string; connections: number; count: number }) => {
    const sockets = await Promise.all(Array.from({ length: arg.connections }, () => connect(arg.url)));
    const latencies: number[] = [];
    const t0 = process.hrtime.bigint();
    await Promise.all(
      sockets.map(async (ws) => {
        const waiting = new Map<number, () => void>();
        ws.on('message', (data: Buffer) => {
          const res = packr.unpack(data) as { id: number };
          waiting.get(res.id)?.();
          waiting.delete(res.id);
        });
        for (let id = 1; id <= arg.count; id++) {
          const s = process.hrtime.bigint();
          await new Promise<void>((resolve) => {
            waiting.set(id, resolve);
            ws.send(packr.pack({ t: 'key.create', id, b: { peer: 'bob-0' } }), { binary: true });
          });
          latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
        }
      }),
    );
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    for (const ws of sockets) ws.close();
    return { ms, requests: latencies.length, latencies };
  },
});
