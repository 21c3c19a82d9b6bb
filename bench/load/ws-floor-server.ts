// The transport floor of the handshake benchmark, in its own process: a bare WebSocket server with the
// KDC's own settings (node:http upgrade at /kds, ws with maxPayload, no compression, no client
// tracking, binary frames) that answers the first two frames of each connection with frames of the
// sizes of server_hello and the `ready` record and then lets the client close. No crypto, no protocol,
// no store: what any WebSocket server pays per connection for the same exchange (TCP accept, HTTP
// upgrade, four frames, the close handshake). kds server CPU minus this minus the crypto-bound is
// what kds's own code costs.
//   start {serverHelloBytes, readyBytes} -> {url};  cpu -> microseconds of CPU used so far
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { MAX_FRAME_BYTES } from '../../shared/protocol/limits.js';
import { serve } from './ipc.js';

let http: Server | undefined;
let wss: WebSocketServer | undefined;

serve(
  {
    start: async (arg: { serverHelloBytes: number; readyBytes: number }) => {
      const replies = [Buffer.alloc(arg.serverHelloBytes, 0x5a), Buffer.alloc(arg.readyBytes, 0xa5)];
      http = createServer();
      wss = new WebSocketServer({
        noServer: true,
        maxPayload: MAX_FRAME_BYTES,
        perMessageDeflate: false,
        clientTracking: false,
      });
      http.on('upgrade', (req, socket, head) => {
        socket.on('error', () => {});
        if ((req.url ?? '').split('?', 1)[0] !== '/kds') {
          socket.destroy();
          return;
        }
        wss!.handleUpgrade(req, socket, head, (ws) => {
          let frames = 0;
          ws.on('error', () => {});
          ws.on('message', () => {
            const reply = replies[frames++];
            if (reply !== undefined) ws.send(reply, { binary: true });
          });
        });
      });
      await new Promise<void>((resolve) => http!.listen(0, '127.0.0.1', resolve));
      return { url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/kds` };
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
