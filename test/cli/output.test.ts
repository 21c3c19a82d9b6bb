// cli/output.ts: an error message the KDC sent, or a value in a --json document, never reaches the
// terminal raw; the JSON stays the exact value.
import t from 'tap';
import { emit, reportError } from '../../cli/output.js';
import { errorFor } from '../../shared/errors.js';

const hostile = 'denied\r\u001b[2K\u001b[1Aok: key verified\n\u009b2K\u202e\u001b[8m';

function capture(fn: () => void): { stdout: string; stderr: string } {
  const out = { stdout: '', stderr: '' };
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out.stdout += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((out.stderr += s), true)) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
  return out;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/;

t.test('error [code]: message, with a message from the network', async (t) => {
  const human = capture(() => reportError({}, errorFor('forbidden', hostile)));
  t.notMatch(human.stderr, CONTROL);
  t.equal(human.stderr.split('\n').filter((l) => l !== '').length, 1, human.stderr);
  t.match(human.stderr, /^error \[forbidden\]: denied\\r\\x1b\[2K/);
  const json = capture(() => reportError({ json: true }, errorFor('forbidden', hostile)));
  t.notMatch(json.stdout, CONTROL);
  t.equal((JSON.parse(json.stdout) as { error: { message: string } }).error.message, hostile);
});

t.test('emit --json: exact value, safe bytes', async (t) => {
  const out = capture(() => emit({ json: true }, { text: hostile, n: 1 }, 'unused'));
  t.notMatch(out.stdout, CONTROL);
  t.same(JSON.parse(out.stdout), { text: hostile, n: 1 });
});
