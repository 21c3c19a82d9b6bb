// The demo's wire tap: a transparent relay between one demo participant (alice, bob, the admin) and the
// KDC that reports every WebSocket frame it carries, so the narration can show what really crosses the
// wire: the three handshake frames with their public fields, then records that are nothing but
// AES-256-GCM ciphertext. It never changes, drops or decrypts anything (Mallory, client/mitm, is the
// one who attacks); it only decodes the plaintext frame envelope (shared/protocol/messages.ts), which
// any observer on the network can do. Plain HTTP GETs (/ca.pem, /crl.pem) are relayed too.
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { EnvironmentError } from '../../shared/errors.js';
import { MAX_FRAME_BYTES } from '../../shared/protocol/limits.js';
import { decodeFrame } from '../../shared/protocol/messages.js';

export interface WireFrame {
  /** The participant this tap stands for. */
  who: string;
  /** out: participant -> KDC; in: KDC -> participant. */
  dir: 'out' | 'in';
  /** client_hello, server_hello, client_finish, alert, record (or undecodable). */
  frame: string;
  bytes: number;
  /** The public fields of the frame, in words (sizes, group, mode; never record contents). */
  detail: string;
}

export interface WireTap {
  /** ws://127.0.0.1:<port>/kds: the participant's --server. */
  readonly url: string;
  close(): Promise<void>;
}

/** One line describing a frame as an observer sees it. Exported for tests. */
function describeFrame(raw: Buffer): { frame: string; detail: string } {
  let f: Record<string, unknown>;
  try {
    f = decodeFrame(raw) as unknown as Record<string, unknown>;
  } catch {
    return { frame: 'undecodable', detail: 'not a kds frame' };
  }
  const size = (v: unknown): number => (v instanceof Uint8Array ? v.length : 0);
  switch (f.t) {
    case 'client_hello':
      return {
        frame: 'client_hello',
        detail: `mode ${String(f.mode)}, offers ${(f.groups as string[]).join('+')}, ${String(f.group)} public key ${size(f.share)} B, nonce ${size(f.nonce)} B`,
      };
    case 'server_hello':
      return {
        frame: 'server_hello',
        detail:
          f.cert === undefined
            ? `group ${String(f.group)}, public key ${size(f.share)} B, NO certificate, NO signature (insecure), MAC ${size(f.mac)} B`
            : `group ${String(f.group)}, public key ${size(f.share)} B, KDC certificate ${size(f.cert)} B, RSA-PSS signature ${size(f.sig)} B, MAC ${size(f.mac)} B`,
      };
    case 'client_finish':
      return {
        frame: 'client_finish',
        detail:
          f.cert !== undefined
            ? `client certificate ${size(f.cert)} B, RSA-PSS signature ${size(f.sig)} B, MAC ${size(f.mac)} B`
            : f.name !== undefined
              ? `claims the name "${String(f.name)}" (no certificate, no signature), MAC ${size(f.mac)} B`
              : `anonymous (enrollment), MAC ${size(f.mac)} B`,
      };
    case 'alert':
      return { frame: 'alert', detail: `${String(f.code)}: ${String(f.message)}` };
    default:
      return { frame: 'record', detail: `AES-256-GCM ciphertext ${size(f.c)} B` };
  }
}

/** `target` is read for every new connection, so the KDC can restart on another port behind the tap. */
export async function startWireTap(opts: {
  who: string;
  target: () => string;
  onFrame: (f: WireFrame) => void;
}): Promise<WireTap> {
  const httpBase = (): string => `http://${new URL(opts.target()).host}`;
  const sockets = new Set<WebSocket>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
  const report = (dir: 'out' | 'in', data: Buffer): void => {
    const d = describeFrame(data);
    opts.onFrame({ who: opts.who, dir, frame: d.frame, bytes: data.length, detail: d.detail });
  };

  const server: Server = createServer((req, res) => {
    const upstream = httpRequest(
      `${httpBase()}${req.url ?? '/'}`,
      { method: req.method ?? 'GET', timeout: 10_000 },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('timeout', () => upstream.destroy());
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-length': '0' });
      res.end();
    });
    upstream.end();
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    wss.handleUpgrade(req, socket, head, (client: WebSocket) => {
      const upstream = new WebSocket(opts.target(), {
        maxPayload: MAX_FRAME_BYTES,
        perMessageDeflate: false,
      });
      sockets.add(client).add(upstream);
      const pending: Buffer[] = [];
      client.on('message', (data: Buffer) => {
        report('out', data);
        if (upstream.readyState === WebSocket.OPEN) upstream.send(data, { binary: true });
        else pending.push(data);
      });
      upstream.on('open', () => {
        for (const data of pending.splice(0)) upstream.send(data, { binary: true });
      });
      upstream.on('message', (data: Buffer) => {
        report('in', data);
        if (client.readyState === WebSocket.OPEN) client.send(data, { binary: true });
      });
      // Close codes and reasons pass through unchanged: they carry the KDC's error codes.
      const closeOther = (other: WebSocket) => (code: number, reason: Buffer) => {
        const c = code === 1005 || code === 1006 ? 1000 : code;
        if (other.readyState === WebSocket.OPEN) other.close(c, reason);
        else if (other.readyState === WebSocket.CONNECTING) other.terminate();
      };
      client.on('close', closeOther(upstream));
      upstream.on('close', closeOther(client));
      for (const ws of [client, upstream]) {
        ws.on('error', () => {});
        ws.on('close', () => sockets.delete(ws));
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new EnvironmentError('io_error', `wire tap cannot listen: ${err.code ?? err.message}`)),
    );
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/kds`,
    async close() {
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
