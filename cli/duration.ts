// Durations on the command line: `90s`, `15m`, `1h`, `7d`, or plain seconds. Returned in milliseconds
// (times are epoch/duration milliseconds everywhere in kds). A value of the right form but out of the
// allowed range says so ("at most 7d"), not that the form is wrong.
import { InputError } from '../shared/errors.js';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export interface DurationBounds {
  /** Smallest allowed value in ms (default 1 s). */
  minMs?: number;
  /** Largest allowed value in ms. */
  maxMs?: number;
}

/** 604800000 -> "7d", 90000 -> "90s": the largest unit that divides the value. */
function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm'] as const) {
    if (ms % UNITS[unit]! === 0) return `${ms / UNITS[unit]!}${unit}`;
  }
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms} ms`;
}

export function parseDuration(text: string, what = 'duration', bounds: DurationBounds = {}): number {
  const m = /^([0-9]+)([smhd]?)$/.exec(String(text).trim());
  if (m === null) {
    throw new InputError(
      'bad_request',
      `${what}: expected a whole number and a unit, s, m, h or d (e.g. 90s, 15m, 24h, 7d), got ${JSON.stringify(String(text).slice(0, 40))}`,
    );
  }
  const ms = Number(m[1]) * UNITS[m[2] === '' ? 's' : m[2]!]!;
  const min = bounds.minMs ?? 1000;
  if (ms < min) throw new InputError('bad_request', `${what}: at least ${formatDuration(min)}, got ${text}`);
  if (bounds.maxMs !== undefined && !(ms <= bounds.maxMs))
    throw new InputError('bad_request', `${what}: at most ${formatDuration(bounds.maxMs)}, got ${text}`);
  return ms;
}
