// The log readers: a hostile value from the network (a certificate CN full of terminal controls, as a
// refused handshake's claimed name) reaches neither the text line nor the JSON line raw; the JSON line
// keeps every other field, with the level number and the event's own time; the level filters.
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { EventBus } from '../../../server/events/bus.js';
import { attachLogReader } from '../../../server/events/log-reader.js';
import { clock, eventLine } from '../../../server/events/terminal-lines.js';
import { EVENT_TYPES, type KdcEvent } from '../../../shared/events/kdc-events.js';
import { isTerminalSafe } from '../../../shared/text/terminal-safe.js';
import { tempDir } from '../../helpers/tmp.js';

const HOSTILE = 'mallory\x1b[2J\x1b[1A\r\u202eadmin\n';

const refused = {
  type: 'handshake.refused',
  connection: 'c0ffee',
  address: '127.0.0.1',
  claimedName: HOSTILE,
  code: 'bad_signature',
  by: 'kdc',
  defence: 'transcript signature',
  group: 'x25519',
  durationMs: 1.25,
} as const;

t.test('text lines escape hostile values', async (t) => {
  const line = eventLine({ ...refused, at: Date.UTC(2026, 11, 6, 4, 5, 6, 7) });
  t.ok(isTerminalSafe(line), line);
  t.match(
    line,
    /^04:05:06\.007 {2}mallory\\x1b\[2J\\x1b\[1A\\r\\u202eadmin\\n\? handshake refused: bad_signature \(transcript signature\)$/,
  );
});

t.test('every event type has a line', async (t) => {
  // One representative of each type: a describer that forgot a type would not compile, but a line
  // that throws on a real event would only show at run time.
  const bus = new EventBus();
  const lines: string[] = [];
  bus.subscribe((e) => lines.push(eventLine(e)));
  bus.emit({ ...refused });
  bus.emit({ type: 'kdc.warning', message: 'x' });
  t.equal(lines.length, 2);
  t.ok(EVENT_TYPES.includes('handshake.refused'));
});

t.test('JSON lines: pino format, safe strings, level filter', async (t) => {
  const file = join(tempDir(t), 'kdc.log');
  const fd = openSync(file, 'w');
  const bus = new EventBus({ now: () => 1_800_000_000_000 });
  const reader = await attachLogReader(bus, { format: 'json', level: 'warn', fd });
  bus.emit({ ...refused });
  bus.emit({ type: 'key.created', serial: 'ab'.repeat(16), owner: 'alice', peer: 'bob', mode: 'kdc' }); // info: filtered
  bus.emit({ type: 'store.error', stage: 'sync', code: 'store_error', message: 'disk full' });
  reader.close();
  closeSync(fd);
  const records = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.same(
    records.map((r) => [r.event, r.level]),
    [
      ['handshake.refused', 40],
      ['store.error', 50],
    ],
  );
  const first = records[0] as Record<string, unknown> & KdcEvent;
  t.equal(first.time, 1_800_000_000_000);
  t.equal(first.code, 'bad_signature');
  t.equal(first.durationMs, 1.25);
  t.ok(isTerminalSafe(String(first.claimedName)), 'claimedName escaped');
  t.ok(isTerminalSafe(String(first.msg)));
  t.match(first.msg, /handshake refused: bad_signature/);
});

t.test('silent writes nothing', async (t) => {
  const bus = new EventBus();
  const reader = await attachLogReader(bus, {
    format: 'text',
    level: 'silent',
    write: () => t.fail('wrote'),
  });
  bus.emit({ type: 'kdc.warning', message: 'x' });
  t.equal(bus.readers, 0);
  reader.close();
});

t.test('the line clock is the UTC time of day, as toISOString gives it', async (t) => {
  const times = [
    0, 1, 999, 1_000, 59_999, 3_599_999, 86_399_999, 86_400_000, 1_796_542_039_386, 1_765_000_000_123.7,
  ];
  for (let i = 0; i < 200; i++) times.push(Math.floor(Math.random() * 4_102_444_800_000));
  for (const at of times)
    t.equal(clock(at), new Date(Math.floor(at)).toISOString().slice(11, 23), String(at));
});
