// WebSocket at the byte level (RFC 6455 section 5.2) over a plain TCP socket, for the frames no
// WebSocket library will send: a header that claims a 2^62-byte payload and then stops, fragments that
// add up past maxPayload, RSV1 set without a negotiated extension. It does the HTTP upgrade by hand,
// masks what it sends (section 5.3: a client MUST mask) and parses the server's frames.
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export interface WsFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

export interface RawWs {
  socket: Socket;
  /** Write one frame. `claimedLength` puts another length in the header than the payload has. */
  writeFrame(
    opcode: number,
    payload: Buffer,
    opts?: { fin?: boolean; rsv1?: boolean; claimedLength?: bigint },
  ): void;
  /** The next complete frame from the server, or undefined when the TCP connection ended. */
  nextFrame(timeoutMs?: number): Promise<WsFrame | undefined | 'hang'>;
  /** Resolves when the TCP connection is closed (by either side). */
  ended: Promise<void>;
  destroy(): void;
}

export const OPCODE = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

/** Close frame payload -> code (RFC 6455 section 5.5.1). */
function closeCodeOf(frame: WsFrame): number | undefined {
  return frame.opcode === OPCODE.close && frame.payload.length >= 2
    ? frame.payload.readUInt16BE(0)
    : undefined;
}

export function rawUpgrade(
  host: string,
  port: number,
  opts: { path?: string; headers?: Record<string, string>; localAddress?: string } = {},
): Promise<RawWs> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
    });
    let buffer = Buffer.alloc(0);
    let upgraded = false;
    const waiters: ((f: WsFrame | undefined) => void)[] = [];
    const frames: WsFrame[] = [];
    let isEnded = false;
    const ended = new Promise<void>((res) => socket.once('close', () => res()));
    void ended.then(() => {
      isEnded = true;
      for (const w of waiters.splice(0)) w(undefined);
      if (!upgraded)
        reject(
          new Error(`connection closed during the upgrade: ${buffer.toString('latin1').split('\r\n')[0]}`),
        );
    });
    socket.on('error', () => {});
    const parse = (): void => {
      for (;;) {
        if (buffer.length < 2) return;
        const b0 = buffer[0]!;
        const b1 = buffer[1]!;
        let len = b1 & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buffer.length < 4) return;
          len = buffer.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buffer.length < 10) return;
          len = Number(buffer.readBigUInt64BE(2));
          off = 10;
        }
        if (buffer.length < off + len) return;
        const frame = { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload: buffer.subarray(off, off + len) };
        buffer = buffer.subarray(off + len);
        const w = waiters.shift();
        if (w !== undefined) w(frame);
        else frames.push(frame);
      }
    };
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString('latin1');
        buffer = buffer.subarray(end + 4);
        if (!head.startsWith('HTTP/1.1 101')) {
          socket.destroy();
          reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
          return;
        }
        upgraded = true;
        resolve(api);
      }
      parse();
    });
    const api: RawWs = {
      socket,
      writeFrame(opcode, payload, o = {}) {
        const mask = randomBytes(4);
        const claimed = o.claimedLength ?? BigInt(payload.length);
        let header: Buffer;
        const b0 = ((o.fin ?? true) ? 0x80 : 0) | (o.rsv1 === true ? 0x40 : 0) | opcode;
        if (claimed < 126n) header = Buffer.from([b0, 0x80 | Number(claimed)]);
        else if (claimed <= 0xffffn) {
          header = Buffer.alloc(4);
          header[0] = b0;
          header[1] = 0x80 | 126;
          header.writeUInt16BE(Number(claimed), 2);
        } else {
          header = Buffer.alloc(10);
          header[0] = b0;
          header[1] = 0x80 | 127;
          header.writeBigUInt64BE(claimed, 2);
        }
        const masked = Buffer.from(payload);
        for (let i = 0; i < masked.length; i++) masked[i]! ^= mask[i & 3]!;
        if (!socket.destroyed) socket.write(Buffer.concat([header, mask, masked]));
      },
      nextFrame(timeoutMs = 5_000) {
        if (frames.length > 0) return Promise.resolve(frames.shift());
        if (isEnded) return Promise.resolve(undefined);
        return new Promise((res) => {
          const timer = setTimeout(() => {
            const i = waiters.indexOf(onFrame);
            if (i >= 0) waiters.splice(i, 1);
            res('hang');
          }, timeoutMs);
          const onFrame = (f: WsFrame | undefined): void => {
            clearTimeout(timer);
            res(f);
          };
          waiters.push(onFrame);
        });
      },
      ended,
      destroy: () => socket.destroy(),
    };
    socket.once('connect', () => {
      const headers = {
        Host: `${host}:${port}`,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        'Sec-WebSocket-Version': '13',
        ...opts.headers,
      };
      socket.write(
        `GET ${opts.path ?? '/kds'} HTTP/1.1\r\n${Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('')}\r\n`,
      );
    });
  });
}

/** Read frames until a close frame (its code) or the end of the connection (undefined). */
export async function closeCode(
  ws: RawWs,
  timeoutMs = 5_000,
): Promise<{ code: number | undefined; frames: WsFrame[] } | 'hang'> {
  const frames: WsFrame[] = [];
  for (;;) {
    const f = await ws.nextFrame(timeoutMs);
    if (f === 'hang') return 'hang';
    if (f === undefined) return { code: undefined, frames };
    if (f.opcode === OPCODE.close) return { code: closeCodeOf(f), frames };
    frames.push(f);
  }
}
