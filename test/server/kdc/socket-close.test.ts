// server/kdc/socket-close.ts: once both close frames have crossed, the KDC closes its TCP connection
// outright (its FIN after its close frame) and frees the connection, without waiting for the peer's FIN,
// when the peer started the close; a close the KDC started keeps ws's half-close and waits for the
// peer's FIN, and nothing is closed before the peer's close frame (it must still read our alert).
// The peer here is a bare TCP socket speaking just enough WebSocket, so that the test decides when (and
// whether) its FIN is sent.
import t from 'tap';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeCodeFor } from '../../../shared/errors.js';
import { startTestKdc } from '../../helpers/kdc-in-process.js';
import type { Kdc } from '../../../server/kdc/kdc.js';

t.setTimeout(60_000);

type Tap = Pick<typeof t, 'teardown' | 'match'>;

const { kdc } = await startTestKdc(t);

interface Peer {
  socket: Socket;
  /** Everything received after the 101 response. */
  received: () => Buffer;
  /** Resolves when the KDC's FIN arrived. */
  ended: Promise<void>;
  hasEnded: () => boolean;
}

/** A TCP connection upgraded to WebSocket at the KDC, by hand. */
async function upgraded(t: Tap): Promise<Peer> {
  const url = new URL(kdc.url);
  const socket = connect(Number(url.port), url.hostname);
  t.teardown(() => socket.destroy());
  socket.on('error', () => {});
  // Half-open allowed: our side stays open after the KDC's FIN until the test ends it.
  (socket as unknown as { allowHalfOpen: boolean }).allowHalfOpen = true;
  await once(socket, 'connect');
  socket.write(
    `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  let buf = Buffer.alloc(0);
  let upgradedAt = -1;
  let ended = false;
  const endedP = new Promise<void>((resolve) =>
    socket.on('end', () => {
      ended = true;
      resolve();
    }),
  );
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
  });
  while (upgradedAt < 0) {
    await once(socket, 'data');
    const i = buf.indexOf('\r\n\r\n');
    if (i >= 0) {
      t.match(buf.subarray(0, i).toString('latin1'), /^HTTP\/1\.1 101 /);
      upgradedAt = i + 4;
    }
  }
  return { socket, received: () => buf.subarray(upgradedAt), ended: endedP, hasEnded: () => ended };
}

/** A masked client frame (RFC 6455 5.3: every client frame is masked). */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked]);
}

function closeFrame(code: number): Buffer {
  const body = Buffer.alloc(2);
  body.writeUInt16BE(code);
  return clientFrame(0x8, body);
}

async function until(what: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!what()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

function connections(k: Kdc): number {
  return k.connectionCount();
}

t.test('a close the peer starts: close frame, FIN, connection freed, peer FIN not awaited', async (t) => {
  const peer = await upgraded(t);
  t.ok(await until(() => connections(kdc) === 1, 5_000), 'the connection is counted');
  peer.socket.write(closeFrame(1000));
  await peer.ended;
  const got = peer.received();
  t.same([...got], [0x88, 0x02, 0x03, 0xe8], 'the KDC answered with its close frame (1000), then its FIN');
  // ws alone would hold the connection until our FIN (or its 30 s close timer): we never send one.
  t.ok(await until(() => connections(kdc) === 0, 5_000), 'freed while our side is still open');
  t.notOk(peer.socket.destroyed, 'our side was not reset');
});

t.test('a close the KDC starts: nothing before the peer answers, then the peer FIN awaited', async (t) => {
  const peer = await upgraded(t);
  // A text frame: refused with the bad_frame alert and close code 4000 (docs/protocol.md "Transport").
  peer.socket.write(clientFrame(0x1, Buffer.from('{}')));
  const code = closeCodeFor('bad_frame');
  const closeCode = Buffer.from([code >> 8, code & 0xff]);
  t.ok(await until(() => peer.received().includes(closeCode), 5_000), 'the close frame with 4000 arrived');
  // The KDC's own grace timer (2 s from its close frame) would end the wait below in any case: every
  // step here takes a fraction of it.
  await sleep(200);
  t.notOk(peer.hasEnded(), 'no FIN before our close frame: we may still be sending');
  t.equal(connections(kdc), 1, 'the connection is still open');
  peer.socket.write(closeFrame(code));
  await peer.ended;
  await sleep(200);
  // Whoever waits for this session's end (a revocation's acknowledgement) waits for the peer's FIN.
  t.equal(connections(kdc), 1, 'after the KDC FIN, still counted until our FIN');
  peer.socket.end();
  t.ok(await until(() => connections(kdc) === 0, 1_000), 'freed once our FIN arrived');
});
