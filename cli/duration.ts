// Durations on the command line: `90s`, `15m`, `1h`, `7d`, or plain seconds. Returned in milliseconds
// (times are epoch/duration milliseconds everywhere in kds).
import { InputError } from '../shared/errors.js';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string, what = 'duration'): number {
  const m = /^([0-9]{1,9})([smhd]?)$/.exec(text.trim());
  if (m === null) {
    throw new InputError(
      'bad_request',
      `${what}: expected a number with s, m, h or d (e.g. 15m), got ${JSON.stringify(text)}`,
    );
  }
  const ms = Number(m[1]) * UNITS[m[2] === '' ? 's' : m[2]!]!;
  if (ms <= 0) throw new InputError('bad_request', `${what} must be positive`);
  return ms;
}
