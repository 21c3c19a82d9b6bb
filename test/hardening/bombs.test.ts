// Oversized and "bomb" frames against a live server process: each must be refused BEFORE the server
// allocates what it claims, and the connection closed at once.
//   - WebSocket level (ws, maxPayload = MAX_FRAME_BYTES = 64 KiB, perMessageDeflate off): a header
//     claiming 2^62 bytes or just over 64 KiB, fragments adding up past 64 KiB, RSV1 without a
//     negotiated extension (a compressed frame), an oversized control frame. The frame header is sent
//     and the payload is NOT: a close that arrives anyway proves the server decided on the header alone.
//   - msgpack level (shared/protocol/codec.ts scans the raw bytes before decoding): length headers
//     claiming 4 GiB of string, binary, array, map or extension, nesting 60,000 deep, 60,000-element
//     arrays, all inside a 64 KiB message -> `bad_frame` alert and close 4000.
//   - HTTP level: an upgrade request with 100 KiB of headers.
// The time from the last byte sent to the close is printed (t.comment), not asserted tightly: the
// assertion is that the close arrives with the payload still unsent. Then 600 more bombs in a row, and
// the server's resident memory (Linux /proc/<pid>/status VmRSS) must have grown by less than 50 MiB.
import t from 'tap';
import { readFileSync, existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { MAX_ARRAY, MAX_FRAME_BYTES } from '../../shared/protocol/limits.js';
import { decodeFrame } from '../../shared/protocol/messages.js';
import { initDataDir, startServer, type ServerProcess } from '../helpers/kds-process.js';
import { Entries, Raw, encodeRaw, lyingHeader, nested, extension } from '../helpers/msgpack-raw.js';
import { loopbackAddress } from '../helpers/raw-client.js';
import { OPCODE, closeCode, rawUpgrade, type RawWs } from '../helpers/raw-ws.js';

const MIB = 1024 * 1024;

function rssBytes(pid: number): number | undefined {
  const path = `/proc/${pid}/status`;
  if (!existsSync(path)) return undefined;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(path, 'utf8'));
  return m === null ? undefined : Number(m[1]) * 1024;
}

function portOf(server: ServerProcess): number {
  return Number(new URL(server.httpUrl).port);
}

let next = 0;
function open(server: ServerProcess): Promise<RawWs> {
  return rawUpgrade('127.0.0.1', portOf(server), { localAddress: loopbackAddress(next++) });
}

/** msgpack bombs, each a complete binary message well under 64 KiB. */
function msgpackBombs(): [string, Buffer][] {
  const hello = (extra: unknown): Buffer =>
    encodeRaw(
      new Entries([
        ['t', 'client_hello'],
        ['x', extra],
      ]),
    );
  return [
    ['map header claiming 2^32-1 entries', Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff])],
    ['array of 4 GiB entries', hello(new Raw(lyingHeader('array', 0xffffffff)))],
    ['map of 4 GiB entries', hello(new Raw(lyingHeader('map', 0xffffffff)))],
    ['string of 4 GiB', hello(new Raw(lyingHeader('str', 0xffffffff)))],
    ['binary of 4 GiB', hello(new Raw(lyingHeader('bin', 0xffffffff)))],
    ['extension of 4 GiB', hello(new Raw(lyingHeader('ext', 0xffffffff)))],
    ['nesting 60,000 arrays deep', hello(new Raw(nested(60_000)))],
    ['nesting 20,000 maps deep', hello(new Raw(nested(20_000, 'map')))],
    [
      'array of 60,000 elements',
      hello(new Raw(Buffer.concat([Buffer.from([0xdc, 0xea, 0x60]), Buffer.alloc(60_000, 0xc0)]))),
    ],
    [
      'map of MAX_ARRAY+1 entries',
      encodeRaw(Object.fromEntries(Array.from({ length: MAX_ARRAY + 1 }, (_, i) => [`k${i}`, 0]))),
    ],
    ['msgpackr record extension', hello(new Raw(extension(0x72, Buffer.alloc(16))))],
    ['timestamp extension', hello(new Raw(extension(0xff, Buffer.alloc(12))))],
  ];
}

t.test('bombs', { timeout: 300_000 }, async (t) => {
  const dataDir = await initDataDir(t);
  const server = await startServer(t, dataDir);
  const pid = server.child.pid!;
  // Warm up (first connections load code paths) before the memory baseline.
  for (let i = 0; i < 20; i++) {
    const ws = await open(server);
    ws.writeFrame(OPCODE.binary, Buffer.from([0x80]));
    await closeCode(ws);
    ws.destroy();
  }
  const rssBefore = rssBytes(pid);

  await t.test('WebSocket frames over maxPayload are refused from their header', async (t) => {
    const cases: [string, bigint, Buffer, number][] = [
      ['a header claiming 2^62 bytes', 2n ** 62n, Buffer.alloc(16, 1), 1009],
      ['a header claiming 2^53 bytes', 2n ** 53n, Buffer.alloc(16, 1), 1009],
      ['a header claiming MAX_FRAME_BYTES + 1', BigInt(MAX_FRAME_BYTES + 1), Buffer.alloc(16, 1), 1009],
    ];
    for (const [what, claimed, sent, expected] of cases) {
      const ws = await open(server);
      const started = performance.now();
      ws.writeFrame(OPCODE.binary, sent, { claimedLength: claimed });
      const r = await closeCode(ws);
      const ms = performance.now() - started;
      t.not(r, 'hang', `${what}: closed without waiting for the payload`);
      if (r !== 'hang') t.equal(r.code, expected, `${what}: close ${expected}`);
      t.comment(`${what}: closed after ${ms.toFixed(1)} ms with ${sent.length} of ${claimed} bytes sent`);
      ws.destroy();
    }
  });

  await t.test('fragments adding up past maxPayload', async (t) => {
    const ws = await open(server);
    const part = Buffer.alloc(40_000, 0x41);
    const started = performance.now();
    ws.writeFrame(OPCODE.binary, part, { fin: false });
    ws.writeFrame(OPCODE.continuation, part, { fin: false });
    const r = await closeCode(ws);
    t.not(r, 'hang', 'closed without waiting for the final fragment');
    if (r !== 'hang') t.equal(r.code, 1009, 'close 1009 (message too big)');
    t.comment(`fragmented 80,000 bytes: closed after ${(performance.now() - started).toFixed(1)} ms`);
    ws.destroy();
  });

  await t.test(
    'compression is not negotiated: RSV1 and oversized control frames are protocol errors',
    async (t) => {
      const deflate = await rawUpgrade('127.0.0.1', portOf(server), {
        localAddress: loopbackAddress(next++),
        headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' },
      });
      deflate.writeFrame(OPCODE.binary, Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), {
        rsv1: true,
      });
      const r = await closeCode(deflate);
      t.not(r, 'hang', 'a "compressed" frame is refused');
      if (r !== 'hang') t.equal(r.code, 1002, 'RSV1 without the extension -> 1002');
      deflate.destroy();

      const ping = await open(server);
      ping.writeFrame(OPCODE.ping, Buffer.alloc(200, 1));
      const p = await closeCode(ping);
      if (p !== 'hang') t.equal(p.code, 1002, 'a 200-byte ping (control frames are at most 125) -> 1002');
      else t.fail('oversized ping not refused');
      ping.destroy();
    },
  );

  await t.test('msgpack bombs inside 64 KiB -> bad_frame before decoding', async (t) => {
    for (const [what, bytes] of msgpackBombs()) {
      t.ok(bytes.length <= MAX_FRAME_BYTES, `${what} fits in one frame (${bytes.length} bytes)`);
      const ws = await open(server);
      const started = performance.now();
      ws.writeFrame(OPCODE.binary, bytes);
      const r = await closeCode(ws);
      const ms = performance.now() - started;
      if (r === 'hang') {
        t.fail(`${what}: no close`);
        continue;
      }
      const alert = r.frames.map((f) => decodeFrame(f.payload)).find((f) => f.t === 'alert');
      t.match(alert, { t: 'alert', code: 'bad_frame' }, `${what}: bad_frame alert`);
      t.equal(r.code, 4000, `${what}: close 4000`);
      t.comment(`${what}: closed after ${ms.toFixed(1)} ms`);
      ws.destroy();
    }
  });

  await t.test('an upgrade request with 100 KiB of headers is refused', async (t) => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 100; i++) headers[`X-Padding-${i}`] = 'a'.repeat(1024);
    await t.rejects(
      rawUpgrade('127.0.0.1', portOf(server), { localAddress: loopbackAddress(next++), headers }),
      /upgrade refused: HTTP\/1\.1 (400|431)|closed during the upgrade/,
      'no upgrade: 400/431 from the HTTP parser (headers over its 16 KiB limit), or the connection is dropped',
    );
  });

  await t.test('600 more bombs: resident memory grows by less than 50 MiB', async (t) => {
    const bombs = msgpackBombs();
    for (let i = 0; i < 600; i++) {
      const ws = await open(server);
      if (i % 3 === 0) ws.writeFrame(OPCODE.binary, Buffer.alloc(8), { claimedLength: 2n ** 40n });
      else ws.writeFrame(OPCODE.binary, bombs[i % bombs.length]![1]);
      const r = await closeCode(ws);
      if (r === 'hang') t.fail(`bomb ${i}: no close`);
      ws.destroy();
    }
    const rssAfter = rssBytes(pid);
    if (rssBefore === undefined || rssAfter === undefined) {
      t.comment('no /proc on this platform: resident memory not measured');
      t.pass('skipped the RSS measurement');
      return;
    }
    const growth = rssAfter - rssBefore;
    t.comment(
      `server RSS ${(rssBefore / MIB).toFixed(1)} MiB -> ${(rssAfter / MIB).toFixed(1)} MiB (${(growth / MIB).toFixed(1)} MiB)`,
    );
    t.ok(growth < 50 * MIB, `RSS growth ${(growth / MIB).toFixed(1)} MiB < 50 MiB`);
  });

  const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as {
    ok: boolean;
    connections: number;
  };
  t.equal(health.ok, true, 'the server is healthy after the bombs');
  t.equal(server.child.exitCode, null, 'the server process is still running');
});
