// The CLI as a whole, and its reference page (docs/cli.md): every command has --help with an example and
// is documented in docs/cli.md; unknown flags are usage errors (exit 2) in every area; the exit-code
// table of docs/cli.md is exactly shared/errors.ts; KDS_* variables configure the commands that have
// the option and do not break the others; colour appears on a terminal only, and NO_COLOR removes it.
import t from 'tap';
import type yargsFactory from 'yargs';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { KDS_BIN, REPO_ROOT, runKds } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(180_000);

const CLI_MD = readFileSync(join(REPO_ROOT, 'docs', 'cli.md'), 'utf8');

/** The subcommand names a `--help` lists under "Commands:" (after the given prefix). */
function listed(help: string, prefix: string): string[] {
  const section = help.split('\nCommands:\n')[1]?.split('\n\n')[0] ?? '';
  return [...section.matchAll(new RegExp(`^ {2}${prefix} ([a-z-]+)`, 'gm'))].map((m) => m[1]!);
}

async function inBatches<I, O>(items: readonly I[], size: number, fn: (item: I) => Promise<O>): Promise<O[]> {
  const out: O[] = [];
  for (let i = 0; i < items.length; i += size)
    out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

/**
 * `kds <args> --help` in this process: the command modules registered on a fresh parser, as cli/kds.ts
 * does (a process start per command would make this test slow; the real root is spawned once below).
 */
async function helpOf(args: string[]): Promise<string> {
  const require = createRequire(import.meta.url);
  const yargs = require('yargs') as typeof yargsFactory;
  const { commands } = await import('../../cli/commands/index.js');
  const y = yargs().scriptName('kds').strict().help().exitProcess(false).wrap(100);
  for (const register of commands) register(y);
  return new Promise(
    (resolve) => void y.parse([...args, '--help'], {}, (_err, _argv, output) => resolve(output)),
  );
}

t.test('every command has --help with an example, and docs/cli.md documents it', async (t) => {
  const root = await runKds(['--help']);
  t.equal(root.code, 0);
  const areas = listed(root.stdout, 'kds');
  t.same(areas, ['server', 'cert', 'crl', 'admin', 'client', 'mitm', 'demo'], 'the areas, in order');
  const leaves: string[][] = [];
  for (const area of areas) {
    const help = await helpOf([area]);
    t.match(help, /\nExamples:\n/, `kds ${area} --help has an example`);
    const verbs = listed(help, `kds ${area}`);
    if (verbs.length === 0) leaves.push([area]);
    else for (const verb of verbs) leaves.push([area, verb]);
  }
  t.ok(leaves.length >= 25, `${leaves.length} commands`);
  for (const leaf of leaves) {
    t.match(await helpOf(leaf), /\nExamples:\n {2}kds /, `kds ${leaf.join(' ')} --help has an example`);
    t.ok(CLI_MD.includes(`kds ${leaf.join(' ')}`), `docs/cli.md documents kds ${leaf.join(' ')}`);
  }
  const real = await runKds(['client', 'menu', '--help']);
  t.equal(real.code, 0, 'the real kds client menu --help exits 0');
  t.match(
    real.stdout,
    /\nExamples:\n {2}kds client menu --name alice/,
    'the real command has the same examples',
  );
});

t.test('unknown flags are usage errors in every area', async (t) => {
  const samples = [
    ['server', 'start'],
    ['cert', 'list'],
    ['crl', 'show'],
    ['admin', 'keys'],
    ['client', 'keys', '--name', 'alice'],
    ['mitm', '--list'],
    ['demo'],
  ];
  const runs = await inBatches(samples, 4, (args) => runKds([...args, '--bogus-flag']));
  samples.forEach((args, i) => {
    t.equal(runs[i]!.code, 2, `kds ${args.join(' ')} --bogus-flag`);
    t.match(runs[i]!.stderr, /error \[bad_request\]: Unknown argument: bogus-flag/);
  });
});

t.test("docs/cli.md's exit-code table is shared/errors.ts", async (t) => {
  const source = readFileSync(join(REPO_ROOT, 'shared', 'errors.ts'), 'utf8');
  const exitBlock = /export const EXIT = \{([\s\S]*?)\}/.exec(source)![1]!;
  const exitOf = new Map([...exitBlock.matchAll(/(\w+): (\d+),/g)].map((m) => [m[1]!, Number(m[2])]));
  const codes = [...source.matchAll(/^ {2}([a-z_]+): \{ exit: EXIT\.(\w+), close:/gm)].map((m) => ({
    code: m[1]!,
    exit: exitOf.get(m[2]!)!,
  }));
  t.ok(codes.length >= 50, `${codes.length} error codes`);
  const rows = new Map(
    [...CLI_MD.matchAll(/^\| (\d+) +\|[^|]*\|([^|]*)\|$/gm)].map((m) => [
      Number(m[1]),
      new Set([...m[2]!.matchAll(/`([a-z_]+)`/g)].map((c) => c[1]!)),
    ]),
  );
  for (const { code, exit } of codes) t.ok(rows.get(exit)?.has(code), `${code} is listed under exit ${exit}`);
  const documented = [...rows.values()].reduce((n, s) => n + s.size, 0);
  t.equal(documented, codes.length, 'and nothing else is');
});

t.test(
  'KDS_* variables configure the commands that have the option and are ignored by the others',
  async (t) => {
    const missing = join(tempDir(t), 'no-ca-here');
    const foreign = await runKds(['crl', 'show', '--data-dir', missing], {
      env: {
        KDS_SERVER: 'ws://127.0.0.1:1/kds',
        KDS_NAME: 'alice',
        KDS_DEBUG: '1',
        KDS_TTL: '1h',
        // yargs read these as options named "", "" and `bin` (strict mode: Unknown argument): KDS is a
        // natural name for an alias of the command, and `__` is yargs's nesting separator.
        KDS: 'node bin/kds.js',
        KDS__X: '1',
        KDSBIN: '/opt/kds/bin',
        KDSJSON: 'yes',
      },
    });
    t.equal(
      foreign.code,
      1,
      'crl show runs despite KDS_SERVER, KDS_NAME, KDS_DEBUG, KDS_TTL, KDS, KDS__X, KDSBIN',
    );
    t.notMatch(foreign.stderr, /^\{/, 'KDSJSON (no separator) is not KDS_JSON: human output');
    t.match(foreign.stderr, /error \[ca_missing\]/);
    const used = await runKds(['crl', 'show'], { env: { KDS_DATA_DIR: missing } });
    t.match(
      used.stderr,
      new RegExp(`no CA in ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
      'KDS_DATA_DIR is used',
    );
    const flagWins = await runKds(['crl', 'show', '--data-dir', `${missing}-flag`], {
      env: { KDS_DATA_DIR: missing },
    });
    t.match(flagWins.stderr, /no-ca-here-flag/, 'a flag wins over the environment');
    const typed = await runKds(['crl', 'show', '--server', 'ws://127.0.0.1:1/kds'], {
      env: { KDS_SERVER: 'ws://127.0.0.1:1/kds' },
    });
    t.equal(
      typed.code,
      2,
      'a flag the command does not have is still an error, even if also in the environment',
    );
  },
);

/** ESC, for matching terminal control sequences (a RegExp literal may not hold control characters). */
const ESC = String.fromCharCode(27);

const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

t.test(
  'colour on a terminal only; NO_COLOR turns it off (under a pseudo-terminal)',
  { skip: hasScript ? false : 'no `script` (util-linux) to make a pseudo-terminal' },
  async (t) => {
    const home = join(tempDir(t), 'alice');
    const onPty = (env: NodeJS.ProcessEnv): Promise<string> =>
      new Promise((resolve) => {
        const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(KDS_BIN)} client menu --name alice --home ${JSON.stringify(home)} --server ws://127.0.0.1:1/kds`;
        const child = spawn('script', ['-qec', command, '/dev/null'], {
          env,
          stdio: ['pipe', 'pipe', 'ignore'],
        });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
        child.stdin.end('0\n');
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        child.on('close', () => {
          clearTimeout(timer);
          resolve(out);
        });
      });
    const base: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env))
      if (!k.startsWith('KDS_') && k !== 'NO_COLOR') base[k] = v;
    base.TERM = 'xterm';
    const coloured = await onPty(base);
    t.ok(coloured.includes(`${ESC}[1mkds menu: alice${ESC}[0m`), 'bold title on a terminal');
    t.match(coloured, /bye/, 'the menu ran and exited under the pseudo-terminal');
    const plain = await onPty({ ...base, NO_COLOR: '1' });
    t.match(plain, /kds menu: alice/);
    t.notMatch(plain, new RegExp(`${ESC}\\[[0-9;]*m`), 'no colour codes with NO_COLOR');
    const piped = await runKds(
      ['client', 'menu', '--name', 'alice', '--home', home, '--server', 'ws://127.0.0.1:1/kds'],
      { env: { NO_COLOR: undefined } },
    );
    t.notOk(piped.stdout.includes(ESC), 'no escape codes when stdout is not a terminal');
  },
);
