// How the real `kds` reads a command line, for every command: an option given twice, a boolean that is
// neither true nor false, a number not in decimal digits, an empty path, a zero or over-long
// certificate serial are usage errors (exit 2, one line naming the option) before the handler runs;
// a usage error follows the --json contract (docs/cli.md "Errors") and never echoes what was typed raw.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { isTerminalSafe } from '../../shared/text/terminal-safe.js';
import { REPO_ROOT, mapLimit, runKds } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(120_000);

const dir = tempDir(t);
/**
 * The `kds` processes a subtest runs side by side: every command line here is refused while it is parsed,
 * so each is mostly start-up; the results are asserted one by one, in order.
 */
const CONCURRENT = 4;
const serial = 'ab'.repeat(16);
const alice = ['--name', 'alice', '--home', dir, '--server', 'ws://127.0.0.1:1/kds'];

/** [command line, environment, what the message must say]. */
const rows: [string[], Record<string, string>, RegExp][] = [
  [['cert', 'list', '--data-dir', dir, '--data-dir', dir], {}, /--data-dir given more than once/],
  [['server', 'init', '--data-dir', dir, '--data-dir', dir], {}, /--data-dir given more than once/],
  [['crl', 'show', '--data-dir', dir, '--data-dir', dir], {}, /--data-dir given more than once/],
  [['admin', 'keys', '--data-dir', dir, '--data-dir', dir], {}, /--data-dir given more than once/],
  [['client', 'status', ...alice, '--home', dir], {}, /--home given more than once/],
  [['cert', 'issue', '--data-dir', dir, '--name', 'bob', '--csr', 'a', '--csr', 'a'], {}, /--csr given/],
  [
    ['server', 'init', '--data-dir', dir, '--passphrase-file', 'f', '--passphrase-file', 'f'],
    {},
    /--passphrase-file given more than once/,
  ],
  [['client', 'send-key', ...alice, '--to', 'bob', '--mode', 'e2e', '--mode', 'kdc'], {}, /--mode given/],
  [
    [
      'client',
      'revoke-key',
      ...alice,
      '--serial',
      serial,
      '--reason',
      'keyCompromise',
      '--reason',
      'superseded',
    ],
    {},
    /--reason given more than once/,
  ],
  [['server', 'start', '--data-dir', dir, '--dh', 'x25519', '--dh', 'any'], {}, /--dh given more than once/],
  // booleans
  [['cert', 'list', '--data-dir', dir], { KDS_JSON: '1' }, /KDS_JSON takes true or false, got "1"/],
  [['cert', 'list', '--data-dir', dir], { KDS_JSON: 'TRUE' }, /KDS_JSON takes true or false/],
  [['cert', 'list', '--data-dir', dir, '--json=maybe'], {}, /--json takes true or false, got "maybe"/],
  [['admin', 'keys', '--data-dir', dir, '--revoked=foo'], {}, /--revoked takes true or false/],
  // numbers
  [['admin', 'audit', '--data-dir', dir, '--limit', '0x3'], {}, /--limit: expected a whole number 1 or more/],
  [['admin', 'audit', '--data-dir', dir, '--limit', '1e1'], {}, /in decimal digits, got "1e1"/],
  [['admin', 'audit', '--data-dir', dir, '--limit', '1e309'], {}, /got "1e309"/],
  [
    [
      'client',
      'enroll',
      '--name',
      'bob',
      '--home',
      dir,
      '--server',
      'ws://127.0.0.1:1/kds',
      '--token',
      'a'.repeat(43),
      '--key-bits',
      '0x800',
    ],
    {},
    /--key-bits: .*got "0x800"/,
  ],
  [['server', 'init', '--data-dir', dir, '--ca-key-bits', '1e309'], {}, /--ca-key-bits: .*got "1e309"/],
  // certificate serials (RFC 5280: positive, at most 20 octets)
  [['admin', 'cert-status', '--data-dir', dir, '--serial', '0'], {}, /1 to 40 hex digits, not all zero/],
  [
    ['admin', 'revoke-cert', '--data-dir', dir, '--serial', '00', '--reason', 'keyCompromise'],
    {},
    /not all zero/,
  ],
  [['admin', 'cert-status', '--data-dir', dir, '--serial', 'a'.repeat(41)], {}, /1 to 40 hex digits/],
  // empty paths
  [['server', 'init', '--data-dir', ''], {}, /--data-dir: expected a path, got ""/],
  [['cert', 'show', ''], {}, /<file>: expected a path, got ""/],
  [['crl', 'show', ''], {}, /<file>: expected a path, got ""/],
  [['mitm', '--report', '', '--attack', 'passthrough'], {}, /--report: expected a path, got ""/],
  [['server', 'start', '--data-dir', dir, '--passphrase-file', ''], {}, /--passphrase-file: expected a path/],
  [['admin', 'token', '--name', 'bob', '--passphrase-file', ''], {}, /--passphrase-file: expected a path/],
  [
    ['cert', 'revoke', '--data-dir', dir, '--name', 'bob', '--passphrase-file', ''],
    {},
    /--passphrase-file: expected/,
  ],
];

t.test('a usage error: exit 2, one line naming the option, before the handler', async (t) => {
  const results = await mapLimit(rows, CONCURRENT, ([args, env]) => runKds(args, { env, timeoutMs: 15_000 }));
  for (const [i, [args, env, message]] of rows.entries()) {
    const r = results[i]!;
    const what = `${Object.entries(env)
      .map(([k, v]) => `${k}=${v} `)
      .join('')}kds ${args.join(' ')}`;
    t.equal(r.code, 2, `${what}: exit 2 (${r.stderr.trim()})`);
    t.match(r.stderr, /^error \[bad_request\]: /, `${what}: a usage error`);
    t.match(r.stderr, message, `${what}: names the option`);
    t.notMatch(r.stderr, /internal|schema|MITM|ERR_|\n\s+at /, `${what}: no crash, nothing sent`);
    t.equal(r.stdout, '', `${what}: nothing on stdout`);
  }
});

t.test('an array option still takes several values', async (t) => {
  const r = await runKds([
    'admin',
    'audit',
    'verify',
    '--data-dir',
    dir,
    '--head',
    '#1:3f9a0c51d2e8b7a4',
    '--head',
    '#2:3f9a0c51d2e8b7a4',
  ]);
  t.notMatch(r.stderr, /given more than once/);
  t.not(r.code, 2, r.stderr);
});

t.test('with --json or KDS_JSON=true a usage error is JSON on stdout', async (t) => {
  const runs: [string[], Record<string, string>][] = [
    [['cert', 'list', '--json', '--data-dir', dir, '--data-dir', dir], {}],
    [['cert', 'list', '--data-dir', dir, '--data-dir', dir], { KDS_JSON: 'true' }],
    [['cert', 'list', '--json', '--bogus'], {}],
    [['--json', 'clinet'], {}],
    [['cert', 'list', '--json', '--ca-passphrase', 'x'], {}],
  ];
  const results = await mapLimit(runs, CONCURRENT, ([args, env]) => runKds(args, { env, timeoutMs: 15_000 }));
  for (const [i, [args]] of runs.entries()) {
    const r = results[i]!;
    t.equal(r.code, 2, args.join(' '));
    t.equal(r.stderr, '', `${args.join(' ')}: nothing on stderr`);
    const out = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    t.equal(out.error.code, 'bad_request', args.join(' '));
    t.type(out.error.message, 'string');
  }
});

t.test('what was typed is never echoed raw', async (t) => {
  const runs: [string[], string][] = [
    [['admin', 'keys', '--x\u001b[31my'], 'x\\x1b[31my'],
    [['admin', 'token', '--data-dir', dir, '--name', 'a\u009bb'], 'a\\u009bb'],
    [['admin', 'token', '--data-dir', dir, '--name', 'a\u202eb'], 'a\\u202eb'],
  ];
  const results = await mapLimit(runs, CONCURRENT, ([args]) => runKds(args, { timeoutMs: 15_000 }));
  for (const [i, [args, shown]] of runs.entries()) {
    const r = results[i]!;
    t.equal(r.code, 2, JSON.stringify(args));
    t.ok(r.stderr.includes(shown), `${JSON.stringify(args)}: escaped (${r.stderr.trim()})`);
    t.ok(isTerminalSafe(r.stderr.replaceAll('\n', '')), 'no raw control or bidi character');
  }
});

t.test('kds --version names the package version wherever it runs', async (t) => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const cwds = [REPO_ROOT, tempDir(t)];
  const results = await Promise.all(cwds.map((cwd) => runKds(['--version'], { cwd })));
  for (const [i, cwd] of cwds.entries()) {
    const r = results[i]!;
    t.equal(r.code, 0, r.stderr);
    t.equal(
      r.stdout.trim(),
      pkg.version,
      `from ${cwd === REPO_ROOT ? 'the repository' : 'another directory'}`,
    );
  }
});
