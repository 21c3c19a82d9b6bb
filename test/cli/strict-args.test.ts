// cli/strict-args.ts: an option given twice and a boolean given a word other than true/false are
// usage errors (before any coerce runs); a usage error is JSON when the command line asks for JSON.
import t from 'tap';
import yargs from 'yargs';
import { jsonRequested, refuseLooseArguments } from '../../cli/strict-args.js';

/** Parse `args` as kds would (strict, the middleware first): the error thrown, or the argv. */
async function parse(args: string[]): Promise<Error | Record<string, unknown>> {
  let coerced = 0;
  try {
    const argv = await yargs(args)
      .middleware(refuseLooseArguments(args), true)
      .option('json', { type: 'boolean', default: false })
      .option('data-dir', { type: 'string', coerce: (v: unknown) => (coerced += 1) && v })
      .option('head', { type: 'string', array: true })
      .option('dh', { choices: ['any', 'x25519'] })
      .strict()
      .fail((msg, err) => {
        throw err ?? new Error(msg);
      })
      .parseAsync();
    return { ...argv, coerced };
  } catch (err) {
    return err as Error;
  }
}

t.test('an option given twice is refused, naming it, before its coerce runs', async (t) => {
  for (const [args, name] of [
    [['--data-dir', 'd', '--data-dir', 'd'], '--data-dir'],
    [['--data-dir=d', '--dataDir', 'e'], '--data-dir'],
    [['--dh', 'x25519', '--dh', 'any'], '--dh'],
    [['--json', '--json'], '--json'],
    [['--json', '--no-json'], '--json'],
  ] as const) {
    const r = await parse([...args]);
    t.match(r, { code: 'bad_request', message: `${name} given more than once` }, args.join(' '));
  }
  t.match(await parse(['--head', 'a', '--head', 'b']), { head: ['a', 'b'] }, 'an array option repeats');
  t.match(await parse(['--data-dir', 'd', '--json']), { 'data-dir': 'd', json: true, coerced: 1 });
});

t.test('a boolean takes true or false, nothing else', async (t) => {
  for (const word of ['maybe', 'TRUE', '1', 'yes', '']) {
    const r = await parse([`--json=${word}`]);
    t.match(r, { code: 'bad_request', message: `--json takes true or false, got "${word}"` }, word);
  }
  t.match(await parse(['--json=false']), { json: false });
  t.match(await parse(['--json=true']), { json: true });
  t.match(await parse(['--', '--json=maybe']), { json: false }, 'after -- it is not an option');
});

t.test('jsonRequested reads the command line as yargs does, then KDS_JSON', async (t) => {
  t.equal(jsonRequested(['cert', 'list', '--json'], {}), true);
  t.equal(jsonRequested(['--json', 'false'], {}), false);
  t.equal(jsonRequested(['--json=true'], {}), true);
  t.equal(jsonRequested(['--no-json'], { KDS_JSON: 'true' }), false);
  t.equal(jsonRequested(['cert', 'list'], { KDS_JSON: 'true' }), true);
  t.equal(jsonRequested(['cert', 'list'], { KDS_JSON: '1' }), false);
  t.equal(jsonRequested(['--', '--json'], {}), false);
});
