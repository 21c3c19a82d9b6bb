// Client load for the transport floor (bench/load/ws-floor-server.ts), in its own process: `count`
// WebSocket connections, `concurrency` in flight, each sending two frames of the sizes of client_hello
// and client_finish (each after the server's previous answer, as a kds client does) and closing (1000)
// once the second answer arrived. Same ws client options as client/session.ts.
//   connections {url, clientHelloBytes, clientFinishBytes, count, concurrency} -> {ms, errors, firstError?}
import WebSocket from 'ws';
import { MAX_FRAME_BYTES } from '../../shared/protocol/limits.js';
import { serve } from './ipc.js';

function one(url: string, hello: Buffer, finish: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
    let answers = 0;
    ws.on('open', () => ws.send(hello, { binary: true }));
    ws.on('message', () => {
      answers += 1;
      if (answers === 1) ws.send(finish, { binary: true });
      else ws.close(1000);
    });
    ws.on('close', () => (answers >= 2 ? resolve() : reject(new Error('closed early'))));
    ws.on('error', reject);
  });
}

serve({
  connections: async (arg: {
    url: string;
    clientHelloBytes: number;
    clientFinishBytes: number;
    count: number;
    concurrency: number;
  }) => {
    const hello = Buffer.alloc(arg.clientHelloBytes, 0x11);
    const finish = Buffer.alloc(arg.clientFinishBytes, 0x22);
    let next = 0;
    let errors = 0;
    let firstError: string | undefined;
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: Math.min(arg.concurrency, arg.count) }, async () => {
        while (next < arg.count) {
          next += 1;
          try {
            await one(arg.url, hello, finish);
          } catch (err) {
            errors += 1;
            firstError ??= (err as Error).message;
          }
        }
      }),
    );
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return firstError === undefined ? { ms, errors } : { ms, errors, firstError };
  },
});
