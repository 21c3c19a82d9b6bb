// Start-up cost of the CLI (docs/performance.md: `kds --help` under 0.5 s): `kds --help` and the help
// of every area load no heavy module (node-forge, better-sqlite3, ws, msgpackr, the CA/KDC/client code)
// and no command area's module; the areas register lazily (cli/commands/index.ts). The loaded modules
// are recorded by a preload (test/cli/module-trace.ts) in a real `node bin/kds.js` process.
import t from 'tap';
import yargs from 'yargs';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { areas, registerArea, type CommandArea } from '../../cli/commands/index.js';
import { initDataDir, KDS_BIN, kdsEnv, REPO_ROOT } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(120_000);

const TRACE = fileURLToPath(new URL('./module-trace.js', import.meta.url));
const DIST = `file://${join(REPO_ROOT, 'dist')}/`;
/** The packages `kds --help` must not load: each costs 10-60 ms of CPU to load (docs/performance.md). */
const HEAVY_PACKAGES = ['node-forge', 'better-sqlite3', 'ws', 'msgpackr', 'msgpackr-extract'];
/** Our own heavy code: the CA, KDC, client library, PKI and protocol modules. */
const HEAVY_DIST = [
  'server/',
  'client/',
  'shared/pki/',
  'shared/protocol/',
  'shared/crypto/',
  'shared/keys/',
];

const children = new Set<ChildProcess>();
t.teardown(() => {
  for (const child of children) child.kill('SIGKILL');
});

interface Traced {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Modules under dist/, as paths relative to it (cli/kds.js). */
  ours: string[];
  /** npm packages loaded (by name). */
  packages: Set<string>;
}

/**
 * Run `kds <args>` under the trace until it exits, or (untilStdout) until its stdout matches, then stop
 * it with SIGTERM as a supervisor would (the CommonJS modules are read at exit).
 */
async function traced(args: string[], dir: string, untilStdout?: RegExp): Promise<Traced> {
  const out = join(dir, `trace-${args.join('_').replace(/[^a-z0-9_-]/gi, '')}.txt`);
  const child = spawn(process.execPath, ['--import', TRACE, KDS_BIN, ...args], {
    cwd: dir,
    env: kdsEnv({ MODULE_TRACE_OUT: out }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (untilStdout?.test(stdout) === true) child.kill('SIGTERM');
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  children.delete(child);
  const urls = [...new Set(readFileSync(out, 'utf8').split('\n').filter(Boolean))];
  const ours = urls.filter((u) => u.startsWith(DIST)).map((u) => u.slice(DIST.length));
  // By the last node_modules/ of the URL, not by the checkout's own: a node_modules/ that is a symbolic
  // link (a git worktree sharing one) loads its modules from the link's target.
  const packages = new Set(
    urls
      .filter((u) => u.includes('/node_modules/'))
      .map((u) => {
        const parts = u.slice(u.lastIndexOf('/node_modules/') + '/node_modules/'.length).split('/');
        return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
      }),
  );
  return { code, stdout, stderr, ours, packages };
}

function heavyOf(run: Traced): string[] {
  return [
    ...HEAVY_PACKAGES.filter((p) => run.packages.has(p)),
    ...run.ours.filter((m) => HEAVY_DIST.some((prefix) => m.startsWith(prefix))),
  ];
}

t.test('kds --help loads yargs and a handful of our modules, nothing heavy', async (t) => {
  const run = await traced(['--help'], tempDir(t));
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /\nCommands:\n {2}kds server /, 'it is the root help');
  // The trace sees both kinds of module (else this test could not fail).
  t.ok(run.ours.includes('cli/kds.js'), 'ES modules are traced');
  t.ok(run.packages.has('yargs'), 'CommonJS modules are traced');
  t.same(heavyOf(run), [], 'no heavy module');
  const areaModules = run.ours.filter((m) => m.startsWith('cli/commands/') && m !== 'cli/commands/index.js');
  t.same(areaModules, [], 'no command area module (they load when their command runs)');
  t.notOk(run.ours.includes('cli/output.js'), 'not even cli/output.js');
  // A budget rather than a list: the root parser, the area table, errors, env, usage-message.
  t.ok(run.ours.length <= 8, `${run.ours.length} of our modules (${run.ours.join(', ')})`);
});

t.test('each area loads only its own command modules for --help, nothing heavy', async (t) => {
  const dir = tempDir(t);
  const cases: { args: string[]; area: string }[] = [
    { args: ['server', '--help'], area: 'server' },
    { args: ['server', 'start', '--help'], area: 'server' },
    { args: ['client', 'enroll', '--help'], area: 'client' },
    { args: ['cert', '--help'], area: 'cert' },
    { args: ['mitm', '--help'], area: 'mitm' },
  ];
  const runs = await Promise.all(cases.map((c) => traced(c.args, dir)));
  cases.forEach(({ args, area }, i) => {
    const run = runs[i]!;
    t.equal(run.code, 0, `kds ${args.join(' ')} exits 0 ${run.stderr}`.trim());
    t.match(run.stdout, /\nExamples:\n/, `kds ${args.join(' ')} prints its help`);
    t.same(heavyOf(run), [], `kds ${args.join(' ')} loads nothing heavy`);
    const others = run.ours.filter(
      (m) =>
        m.startsWith('cli/commands/') &&
        m !== 'cli/commands/index.js' &&
        m !== `cli/commands/${area}.js` &&
        !m.startsWith(`cli/commands/${area}/`) &&
        !(area === 'server' && m === 'cli/commands/server-start.js'),
    );
    t.same(others, [], `kds ${args.join(' ')} loads no other area`);
  });
});

t.test('the trace does see heavy modules when a command needs them', async (t) => {
  // `kds crl show` opens the CA read-only: the store and the PKI code load (and it fails: no CA here).
  const dir = tempDir(t);
  const run = await traced(['crl', 'show', '--data-dir', join(dir, 'no-ca')], dir);
  t.equal(run.code, 1);
  t.match(run.stderr, /error \[ca_missing\]/);
  t.ok(run.packages.has('better-sqlite3') || run.packages.has('node-forge'), 'a heavy package loaded');
  t.ok(
    run.ours.some((m) => m.startsWith('server/ca/')),
    'the CA code loaded',
  );
});

t.test('kds server start loads the KDC, and no other command area nor the client library', async (t) => {
  // No CA in the data dir: the KDC's modules load, then opening the CA fails (before any listening).
  const dir = tempDir(t);
  const run = await traced(['server', 'start', '--port', '0', '--data-dir', join(dir, 'no-ca')], dir);
  t.equal(run.code, 1);
  t.match(run.stderr, /error \[ca_missing\]/);
  t.ok(run.ours.includes('server/kdc/kdc.js'), 'the KDC loaded');
  const otherAreas = run.ours.filter(
    (m) =>
      m.startsWith('cli/commands/') && m !== 'cli/commands/index.js' && !m.startsWith('cli/commands/server'),
  );
  t.ok(run.ours.includes('cli/commands/server-start.js'), 'the server area loaded');
  t.same(otherAreas, [], 'no other area of the CLI');
  t.same(
    run.ours.filter((m) => m.startsWith('client/')),
    [],
    'no client library module',
  );
});

t.test(
  'a default KDC (SQLite, text log, no console) reaches listening without pg, pino or the console',
  async (t) => {
    // Each of these is 25-45 ms of CPU to load (docs/performance.md "startup") and none is used: pg only
    // for a --store postgres:// URL, pino only for --log-format json, the console only with --console;
    // node-forge (~40-70 ms) only encodes the CSRs of enrollment and renewal (shared/pki/x509.ts).
    // prom-client is used (GET /metrics is served by default), loaded once the KDC listens (metrics.ts).
    const dir = tempDir(t);
    const dataDir = await initDataDir(t);
    const start = ['server', 'start', '--port', '0', '--data-dir', dataDir, '--json'];
    const run = await traced(start, dir, /"url"/);
    t.match(run.stdout, /"url":"ws:\/\/127\.0\.0\.1:\d+/, `it listened ${run.stderr}`);
    t.ok(
      run.packages.has('better-sqlite3') && run.packages.has('prom-client'),
      'the packages it uses loaded',
    );
    for (const unused of ['pg', 'pino', 'node-forge'])
      t.notOk(run.packages.has(unused), `${unused} not loaded`);
    t.same(
      run.ours.filter((m) => m.startsWith('server/store/pg-') || m.startsWith('server/console/')),
      [],
      'no PostgreSQL store or console module',
    );
    // The same trace does see them when the options ask for them.
    const json = await traced([...start, '--log-format', 'json'], dir, /"url"/);
    t.match(json.stdout, /"url"/, `--log-format json listened ${json.stderr}`);
    t.ok(json.packages.has('pino'), '--log-format json loads pino');
    // No server on port 1: the store fails to connect, after pg loaded.
    const pg = await traced([...start, '--store', 'postgres://127.0.0.1:1/none'], dir);
    t.equal(pg.code, 8, pg.stderr);
    t.match(pg.stdout + pg.stderr, /unavailable/);
    t.ok(pg.packages.has('pg'), '--store postgres:// loads pg');
    t.ok(pg.ours.includes('server/store/pg-store.js'), 'and the PostgreSQL store');
  },
);

t.test('registerArea: an area module loads only when its command is parsed', async (t) => {
  let loads = 0;
  let handled: unknown;
  const area: CommandArea = {
    command: 'lab',
    describe: 'a test area',
    leaf: true,
    load: async () => {
      loads++;
      return {
        builder: (y) => y.option('depth', { type: 'number', default: 1, describe: 'how deep' }),
        handler: async (argv: { depth: number }) => {
          handled = argv.depth;
        },
      };
    },
  };
  const parser = () => {
    const y = yargs().scriptName('kds').strict().help().exitProcess(false);
    registerArea(y, area);
    return y;
  };
  const help = await new Promise<string>(
    (resolve) => void parser().parse(['--help'], {}, (_e, _a, output) => resolve(output)),
  );
  t.match(help, /kds lab {2}a test area/, 'the root help lists the area from the table');
  t.equal(loads, 0, 'the root help did not load the area');
  await parser().parseAsync(['lab', '--depth', '3']);
  t.ok(loads >= 1, 'running the command loaded it');
  t.equal(handled, 3, 'the leaf handler ran with the parsed arguments');
  const bad = await new Promise<Error | undefined>(
    (resolve) =>
      void parser()
        .fail(false)
        .parseAsync(['lab', '--bogus'])
        .then(
          () => resolve(undefined),
          (err: Error) => resolve(err),
        ),
  );
  t.match(bad?.message, /Unknown argument: bogus/, "the area's options are strict as before");
});

t.test('the table lists every area once, in --help order, and each module has a builder', async (t) => {
  t.same(
    areas.map((a) => a.command),
    ['server', 'cert', 'crl', 'admin', 'client', 'mitm', 'demo'],
  );
  for (const area of areas) {
    if (area.leaf === true) {
      const module = await area.load();
      t.type(module.builder, 'function', `${area.command} exports builder`);
      t.type(module.handler, 'function', `${area.command} exports handler`);
    } else {
      t.type((await area.load()).builder, 'function', `${area.command} exports builder`);
    }
  }
});
