// The baseline server of the keys benchmark: a bare WebSocket server (ws, no compression, binary frames)
// that decodes each msgpackr request and answers it, with no handshake, no encryption, no schema and no
// store. What kds's key distribution costs on top of this is "the crypto and the store".
//   start -> {url};  cpu -> microseconds of CPU used so far
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Packr } from 'msgpackr';
import { WebSocketServer } from 'ws';
import { serve } from './ipc.js';

const packr = new Packr({ useRecords: false });
let http: Server | undefined;
let wss: WebSocketServer | undefined;

serve(
  {
    start: async () => {
      http = createServer();
      wss = new WebSocketServer({ server: http, perMessageDeflate: false, maxPayload: 65536 });
      wss.on('connection', (ws) => {
        ws.on('error', () => {});
        ws.on('message', (data: Buffer) => {
          const req = packr.unpack(data) as { id: number; t: string; b: unknown };
          ws.send(packr.pack({ t: 'ok', id: req.id, b: { serial: '0'.repeat(32), at: Date.now() } }), {
            binary: true,
          });
        });
      });
      await new Promise<void>((resolve) => http!.listen(0, '127.0.0.1', resolve));
      return { url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/` };
    },
    cpu: () => {
      const u = process.cpuUsage();
      return u.user + u.system;
    },
  },
  async () => {
    wss?.close();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
  },
);
