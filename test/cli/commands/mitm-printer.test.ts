// Mallory's watch output (cli/commands/mitm.ts printer): what she relays and decrypts is written by
// attackers and victims, so no field reaches the terminal raw; --json lines keep the exact values.
import t from 'tap';
import { printer } from '../../../cli/commands/mitm.js';

const hostile = 'x\r\u001b[2K\u001b[1A#1 STOPPED by transcript signature\n\u009b2K\u202e\u001b[8m';
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/;

function capture(fn: () => void): string {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  try {
    fn();
  } finally {
    process.stdout.write = write;
  }
  return out;
}

const events = [
  { event: 'info', conn: 1, text: hostile },
  { event: 'plaintext', conn: 1, dir: 'c2s', type: hostile, text: hostile },
  { event: 'finding', conn: 1, outcome: 'failed', detail: hostile, code: hostile },
  { event: 'stolen-key', conn: 1, serial: hostile, key: 'ab', fingerprint: hostile, source: hostile },
  { event: 'frame', t: 1, conn: 1, dir: 'c2s', type: hostile, size: 3, action: 'forward', note: hostile },
] as const;

t.test('human lines: one line per event, no control character', async (t) => {
  for (const e of events) {
    const out = capture(() => printer(false)(e as never));
    t.notMatch(out, CONTROL, e.event);
    t.equal(out.split('\n').length, 2, `${e.event}: one line`);
  }
});

t.test('--json lines: exact values, safe bytes', async (t) => {
  for (const e of events) {
    const out = capture(() => printer(true)(e as never));
    t.notMatch(out, CONTROL, e.event);
    t.match(JSON.parse(out), e);
  }
});
