// bench/harness.ts: the statistics every benchmark reports through (median/min/max, nearest-rank
// percentiles, ratios that refuse to divide by zero), the warm-up rule, and the JSON shape written to
// bench/results/<name>.json ({ machine, figures: { name: { median, min, max, unit } }, ratios }).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  fmt,
  machine,
  percentile,
  perSecond,
  ratio,
  report,
  settled,
  stoppedFalling,
  summarize,
  warmUntilSettled,
  warmUntilStable,
} from '../../bench/harness.js';
import { tempDir } from '../helpers/tmp.js';

t.test('summarize: median of odd and even counts, min, max, unit; input untouched', async (t) => {
  const odd = [5, 1, 3];
  t.same(summarize(odd, 'ms'), { median: 3, min: 1, max: 5, unit: 'ms' });
  t.same(odd, [5, 1, 3], 'does not sort the caller array');
  t.same(summarize([4, 1, 3, 2], 'x'), { median: 2.5, min: 1, max: 4, unit: 'x' });
  t.same(summarize([7], 'x'), { median: 7, min: 7, max: 7, unit: 'x' });
  t.throws(() => summarize([], 'x'), /no samples/);
});

t.test('percentile: nearest rank', async (t) => {
  const v = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  t.equal(percentile(v, 50), 50);
  t.equal(percentile(v, 99), 99);
  t.equal(percentile(v, 100), 100);
  t.equal(percentile(v, 0), 1);
  t.equal(percentile([3, 1, 2], 50), 2);
  t.ok(Number.isNaN(percentile([], 50)));
});

t.test('ratio and perSecond: NaN instead of Infinity or a fake 0', async (t) => {
  t.equal(ratio(3, 2), 1.5);
  t.ok(Number.isNaN(ratio(1, 0)));
  t.ok(Number.isNaN(ratio(Number.NaN, 1)));
  t.ok(Number.isNaN(ratio(1, Number.POSITIVE_INFINITY)));
  t.equal(perSecond(50, 250), 200);
  t.ok(Number.isNaN(perSecond(5, 0)));
});

t.test('settled and warmUntilStable', async (t) => {
  t.ok(settled(100, 95, 0.1));
  t.notOk(settled(100, 80, 0.1));
  t.ok(settled(0, 0, 0.1));
  // A cost that falls and then levels off: stops at the first consecutive pair within 10%.
  const costs = [1000, 600, 400, 390, 385, 380];
  let calls = 0;
  const seen = await warmUntilStable(async () => costs[calls++]!, {
    minRounds: 2,
    maxRounds: 6,
    tolerance: 0.1,
  });
  t.same(seen, [1000, 600, 400, 390]);
  // minRounds is honoured even when the first two already agree.
  calls = 0;
  const flat = await warmUntilStable(async () => 100 + calls++, { minRounds: 3, maxRounds: 6 });
  t.equal(flat.length, 3);
  // maxRounds bounds a cost that never settles.
  let n = 1;
  const wild = await warmUntilStable(async () => (n *= 2), { minRounds: 1, maxRounds: 4 });
  t.equal(wild.length, 4);
});

t.test('stoppedFalling and warmUntilSettled: a trend over windows, not two neighbours', async (t) => {
  t.notOk(stoppedFalling([100, 90, 80], 2, 0.03), 'fewer than two windows: not judged yet');
  t.ok(stoppedFalling([100, 100, 99, 100], 2, 0.03), 'flat');
  t.notOk(stoppedFalling([100, 100, 90, 90], 2, 0.03), 'a 10% fall between the windows');
  t.ok(stoppedFalling([100, 100, 130, 120], 2, 0.03), 'a rise (load) is not a fall');
  // The warm-up bench/handshake.ts stopped too early with warmUntilStable: a slow descent with two
  // neighbours under 8% apart (2,100 -> 1,965) after 7 rounds, while the cost kept falling.
  const descent = [
    3145, 2700, 2450, 2300, 2200, 2100, 1965, 1850, 1750, 1660, 1600, 1560, 1540, 1530, 1525, 1528,
  ];
  let calls = 0;
  const old = await warmUntilStable(async () => descent[calls++]!, {
    minRounds: 6,
    maxRounds: 12,
    tolerance: 0.08,
  });
  t.equal(old.length, 6, 'the neighbour rule stops while the cost is still falling');
  calls = 0;
  const warm = await warmUntilSettled(async () => descent[calls++]!, { window: 3, maxFall: 0.03 });
  t.ok(warm.settled);
  t.ok(warm.costs.length >= 14, `settled only once the descent levelled off (${warm.costs.length} rounds)`);
  t.ok(warm.costs.at(-1)! < 1560);
  // The cap: a cost that keeps falling is reported as not settled.
  let c = 1000;
  const never = await warmUntilSettled(async () => (c *= 0.9), { window: 2, maxFall: 0.03, maxRounds: 9 });
  t.same([never.settled, never.costs.length], [false, 9]);
});

t.test('report writes the documented JSON shape', async (t) => {
  const dir = tempDir(t);
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => {
    out.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  try {
    report(
      'unit',
      {
        machine: machine(),
        figures: { speed: summarize([10, 30, 20], 'ops/s') },
        ratios: { speed_vs_base: 0.5 },
        notes: ['a note'],
      },
      dir,
    );
  } finally {
    process.stdout.write = write;
  }
  const json = JSON.parse(readFileSync(join(dir, 'unit.json'), 'utf8')) as Record<string, unknown>;
  t.same(json.figures, { speed: { median: 20, min: 10, max: 30, unit: 'ops/s' } });
  t.same(json.ratios, { speed_vs_base: 0.5 });
  const m = json.machine as Record<string, unknown>;
  t.type(m.node, 'string');
  t.type(m.cpus, 'number');
  t.equal((m.loadAverage as number[]).length, 3);
  const printed = out.join('');
  t.match(printed, /== unit ==/);
  t.match(printed, /speed\s+20\.00\s+10\.00\s+30\.00\s+ops\/s/);
  t.match(printed, /ratio speed_vs_base: 0\.500/);
  t.match(printed, /note: a note/);
});

t.test('fmt', async (t) => {
  t.equal(fmt(1234.5), '1235');
  t.equal(fmt(12.345), '12.35');
  t.equal(fmt(0.012345), '0.0123');
  t.equal(fmt(Number.NaN), 'NaN');
});
