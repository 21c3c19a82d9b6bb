// The log's writer: lines wait for one write together (no system call per line), in order; a warn or
// error line goes out at once with everything before it; and no line is lost however the process
// ends: stop (close), SIGTERM handled as `kds server start` handles it, process.exit, the event loop
// running dry, an uncaught exception (whose report comes after the lines), an unhandled rejection.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { EventBus } from '../../../server/events/bus.js';
import { LineWriter } from '../../../server/events/line-writer.js';
import { attachLogReader } from '../../../server/events/log-reader.js';

const CHILD = fileURLToPath(new URL('./fixtures/log-child.js', import.meta.url));

t.test('lines wait for one flush, in order; the timer writes them', async (t) => {
  const chunks: string[] = [];
  let flushed: () => void = () => {};
  const done = new Promise<void>((resolve) => (flushed = resolve));
  const w = new LineWriter({
    sink: (c) => {
      chunks.push(c);
      flushed();
    },
    flushMs: 5,
  });
  t.teardown(() => w.close());
  w.write('a\n');
  w.write('b\n');
  w.write('c\n');
  t.same(chunks, [], 'nothing written on the writer stack');
  await done;
  t.same(chunks, ['a\nb\nc\n'], 'one write, in order');
});

t.test('flushMs 0 (KDS_LOG_FLUSH_MS=0, the demo): every line is written when it comes', async (t) => {
  const chunks: string[] = [];
  const w = new LineWriter({ sink: (c) => chunks.push(c), flushMs: 0 });
  t.teardown(() => w.close());
  w.write('a\n');
  t.same(chunks, ['a\n'], 'written on the writer stack');
  w.write('b\n');
  t.same(chunks, ['a\n', 'b\n'], 'one write per line, in order');
});

t.test('an urgent line goes out at once, with what waited before it', async (t) => {
  const chunks: string[] = [];
  const w = new LineWriter({ sink: (c) => chunks.push(c), flushMs: 3_600_000 });
  w.write('info 1\n');
  w.write('info 2\n');
  w.write('warn\n', true);
  t.same(chunks, ['info 1\ninfo 2\nwarn\n']);
  w.write('info 3\n');
  w.flush();
  t.same(chunks, ['info 1\ninfo 2\nwarn\n', 'info 3\n']);
  w.flush();
  t.equal(chunks.length, 2, 'an empty flush writes nothing');
  w.close();
});

t.test('a burst is written without waiting for the timer; close writes the rest, then nothing', async (t) => {
  const chunks: string[] = [];
  const w = new LineWriter({ sink: (c) => chunks.push(c), flushMs: 3_600_000 });
  const line = `${'x'.repeat(99)}\n`;
  for (let i = 0; i < 200; i++) w.write(line);
  t.ok(chunks.length >= 1, 'flushed on size');
  const before = chunks.join('').length;
  t.ok(before < 200 * line.length, 'the tail still waits');
  w.close();
  t.equal(chunks.join(''), line.repeat(200), 'every line once, in order');
  w.write('after close\n');
  w.flush();
  t.notMatch(chunks.join(''), /after close/);
});

t.test('log reader: warn lines at once, info lines on the timer, every line at close', async (t) => {
  const bus = new EventBus({ now: () => 0 });
  const chunks: string[] = [];
  const reader = await attachLogReader(bus, {
    format: 'text',
    level: 'info',
    write: (c) => chunks.push(c),
    flushMs: 3_600_000,
  });
  bus.emit({ type: 'key.created', serial: 's1', owner: 'alice', peer: 'bob', mode: 'kdc' });
  t.same(chunks, []);
  bus.emit({ type: 'kdc.warning', message: 'disk almost full' });
  t.equal(chunks.length, 1);
  t.match(
    chunks[0],
    /^00:00:00\.000 {2}alice {6}key s1 created for bob \(KDC-generated\)\n.*warning: disk almost full\n$/,
  );
  bus.emit({ type: 'key.created', serial: 's2', owner: 'alice', peer: 'bob', mode: 'kdc' });
  reader.close();
  t.equal(chunks.length, 2);
  t.match(chunks[1], /key s2 created/);
  bus.emit({ type: 'key.created', serial: 's3', owner: 'alice', peer: 'bob', mode: 'kdc' });
  t.equal(bus.readers, 0, 'closed: off the bus');
});

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runChild(format: 'text' | 'json', lines: number, end: string): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, format, String(lines), end], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (end === 'sigterm' && d.includes('ready')) child.kill('SIGTERM');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

/** The serials of the key lines in `stderr`, in order. */
function serials(format: 'text' | 'json', stderr: string): string[] {
  if (format === 'json')
    return stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => String((JSON.parse(l) as { serial: string }).serial));
  return [...stderr.matchAll(/key (serial-\d+) created/g)].map((m) => m[1]!);
}

const LINES = 300; // about 25 KB of text: one size flush, the rest waiting when the process ends
const expected = Array.from({ length: LINES }, (_, i) => `serial-${i}`);

for (const format of ['text', 'json'] as const) {
  for (const end of ['exit', 'natural', 'sigterm'] as const) {
    t.test(`${format}: no line lost on ${end}`, async (t) => {
      const r = await runChild(format, LINES, end);
      t.equal(r.code, 0, r.stderr.slice(-500));
      t.same(serials(format, r.stderr), expected);
      if (end === 'sigterm') t.match(r.stderr, /\nstopped\n$/, 'the lines come before the stop');
    });
  }
  for (const end of ['throw', 'reject'] as const) {
    t.test(`${format}: no line lost on a fatal ${end}, and they come before its report`, async (t) => {
      const r = await runChild(format, LINES, end);
      t.equal(r.code, 1);
      t.same(serials(format, r.stderr), expected);
      const lastLine = r.stderr.lastIndexOf('serial-299');
      const report = r.stderr.indexOf(
        end === 'throw' ? 'fatal after the lines' : 'unhandled after the lines',
      );
      t.ok(report > lastLine, 'the error report follows the last line');
    });
  }
}
