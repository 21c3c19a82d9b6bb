// Shared benchmark harness: repeated runs, median/min/max, ratios against a baseline measured in the
// same run, a printed table and bench/results/<name>.json shaped
// { machine, figures: { <name>: { median, min, max, unit } }, ratios: { <name>: number } }.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, platform, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Figure {
  median: number;
  min: number;
  max: number;
  unit: string;
}

export interface BenchResult {
  machine: Record<string, unknown>;
  figures: Record<string, Figure>;
  ratios: Record<string, number>;
  notes?: string[];
}

export function summarize(samples: number[], unit: string): Figure {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, unit };
}

/** Nearest-rank percentile (p in 0..100); NaN without samples. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export function machine(): Record<string, unknown> {
  const c = cpus();
  return {
    node: process.version,
    platform: `${platform()} ${release()}`,
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    // Load average (1, 5, 15 min) when the benchmark started: figures from a busy machine are only
    // comparable through their ratios.
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    date: new Date().toISOString(),
  };
}

/** a / b, or NaN when b is 0 or either is not finite (a ratio that cannot be computed is not 0 or Infinity). */
export function ratio(a: number, b: number): number {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return Number.NaN;
  return a / b;
}

/** Events per second from a count and a duration in milliseconds. */
export function perSecond(count: number, ms: number): number {
  return ratio(count * 1000, ms);
}

/** CPU time (user + system, microseconds, every thread of this process) spent while `fn` runs. */
export function cpuTime(fn: () => void): number {
  const before = process.cpuUsage();
  fn();
  const d = process.cpuUsage(before);
  return d.user + d.system;
}

/** Wall-clock milliseconds of an async function. */
export async function wallTime(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Run `fn` `runs` times (after `warmup` unmeasured runs) and return its samples. */
export async function sample(runs: number, fn: () => Promise<number>, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) out.push(await fn());
  return out;
}

/**
 * Warm a server until its cost per operation settles: run `round` (returning the cost of one op) at
 * least `minRounds` and at most `maxRounds` times, stopping once two consecutive costs differ by less
 * than `tolerance` (relative). V8 keeps optimizing a server's hot paths for the first several hundred
 * handshakes, and slower still on a busy machine, where compilation threads get little CPU
 * (bench/handshake.ts saw the KDC's CPU per handshake fall 3x over the first ~900). Returns the costs seen.
 */
export async function warmUntilStable(
  round: () => Promise<number>,
  opts: { minRounds?: number; maxRounds?: number; tolerance?: number } = {},
): Promise<number[]> {
  const minRounds = opts.minRounds ?? 2;
  const maxRounds = opts.maxRounds ?? 8;
  const tolerance = opts.tolerance ?? 0.1;
  const costs: number[] = [];
  while (costs.length < maxRounds) {
    costs.push(await round());
    const n = costs.length;
    if (n >= minRounds && n >= 2 && settled(costs[n - 2]!, costs[n - 1]!, tolerance)) break;
  }
  return costs;
}

/**
 * Warm a server until its cost per operation has stopped FALLING, judged on a trend rather than on two
 * neighbouring rounds: after each round (from `2 * window` rounds on), the mean of the last `window`
 * costs is compared with the mean of the `window` before; the server counts as settled once that fall
 * is under `maxFall` (relative). A rise is not a fall: on a shared machine a round can come out slower
 * for reasons of load, and that says nothing about V8 still optimizing. `maxRounds` caps the warm-up
 * (`settled` false then: the caller reports it). The two-neighbour rule of warmUntilStable stops too
 * early on a slow descent (bench/handshake.ts: 3,145 -> 1,965 us over 7 rounds, stopped between two
 * rounds 6% apart, and the KDC kept getting cheaper during the measured runs).
 */
export async function warmUntilSettled(
  round: () => Promise<number>,
  opts: { window?: number; maxFall?: number; maxRounds?: number } = {},
): Promise<{ costs: number[]; settled: boolean }> {
  const window = opts.window ?? 3;
  const maxFall = opts.maxFall ?? 0.03;
  const maxRounds = opts.maxRounds ?? 24;
  const costs: number[] = [];
  while (costs.length < maxRounds) {
    costs.push(await round());
    if (stoppedFalling(costs, window, maxFall)) return { costs, settled: true };
  }
  return { costs, settled: false };
}

/** The mean of the last `window` costs is at most `maxFall` below the mean of the `window` before. */
export function stoppedFalling(costs: readonly number[], window: number, maxFall: number): boolean {
  const n = costs.length;
  if (n < 2 * window) return false;
  const mean = (from: number): number => costs.slice(from, from + window).reduce((a, b) => a + b, 0) / window;
  const before = mean(n - 2 * window);
  const after = mean(n - window);
  return before === 0 || (before - after) / before < maxFall;
}

/** |a - b| / max(a, b) < tolerance (two costs count as the same level). */
export function settled(a: number, b: number, tolerance: number): boolean {
  const top = Math.max(Math.abs(a), Math.abs(b));
  return top === 0 || Math.abs(a - b) / top < tolerance;
}

function resultsDir(): string {
  // dist/bench/harness.js -> <repo>/bench/results
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
}

/** Print the table (figures, ratios, notes) and write `<dir>/<name>.json` (default bench/results/). */
export function report(name: string, result: BenchResult, dir: string = resultsDir()): void {
  const rows = Object.entries(result.figures).map(([k, f]) => [
    k,
    fmt(f.median),
    fmt(f.min),
    fmt(f.max),
    f.unit,
  ]);
  const header = ['figure', 'median', 'min', 'max', 'unit'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`\n== ${name} ==\n${line(header)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
  for (const [k, v] of Object.entries(result.ratios)) process.stdout.write(`ratio ${k}: ${fmt(v)}\n`);
  for (const n of result.notes ?? []) process.stdout.write(`note: ${n}\n`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
}

/** How a figure is printed: 3 significant-ish digits, no exponent for everyday magnitudes. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}
