// client/session.ts against a scripted server (a real ServerHandshake over a real WebSocket, insecure
// mode so no certificates are needed): what the client does when the server's record fails
// authentication. docs/protocol.md "Transport": the receiver never answers such a record and closes with
// 4005 (record_auth); the close code and reason say why.
import t from 'tap';
import type * as Tap from 'tap';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { openSession } from '../../client/session.js';
import { CLOSE } from '../../shared/errors.js';
import { ServerHandshake } from '../../shared/protocol/handshake.js';
import '../../shared/protocol/catalog.js';
import { asPssSigner } from '../../shared/crypto/signer.js';

interface Seen {
  frames: number;
  close: { code: number; reason: string };
}

/** A server that completes the handshake, then sends `ready` with its last byte flipped. */
async function forgingServer(t: Tap.Test): Promise<{ url: string; seen: Promise<Seen> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  t.teardown(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  const seen = new Promise<Seen>((resolve) => {
    wss.once('connection', (ws: WebSocket) => {
      const hs = new ServerHandshake({
        credentials: { certificateDer: Buffer.alloc(1), sign: asPssSigner(async () => Buffer.alloc(1)) },
        checkClientCertificate: () => undefined,
        allowInsecure: true,
      });
      let frames = 0;
      ws.on('message', (data: Buffer) => {
        frames += 1;
        void (async () => {
          if (frames === 1) ws.send(await hs.receiveClientHello(data));
          else if (frames === 2) {
            const { channel, sessionId } = await hs.receiveClientFinish(data);
            const ready = channel.sealPush('ready', {
              session: sessionId,
              mode: 'insecure',
              role: 'insecure',
            });
            ready[ready.length - 1]! ^= 1;
            ws.send(ready);
          }
        })();
      });
      ws.on('close', (code: number, reason: Buffer) =>
        resolve({ frames, close: { code, reason: reason.toString('utf8') } }),
      );
    });
  });
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/kds`, seen };
}

t.test(
  'a forged record from the server: refused with record_auth, not answered, closed with 4005',
  async (t) => {
    const server = await forgingServer(t);
    await t.rejects(openSession({ server: server.url, mode: 'insecure', insecureName: 'alice' }), {
      code: 'record_auth',
      message: 'record authentication failed',
    });
    const seen = await server.seen;
    t.equal(
      seen.frames,
      2,
      'the client sent client_hello and client_finish, and nothing after the bad record',
    );
    t.same(seen.close, { code: CLOSE.record, reason: 'record_auth' }, 'close 4005, the code as reason');
  },
);
