// startup: `kds --help` and KDC start-to-ready, each against `node -e 0` measured in the same run
// (docs/performance.md: --help under 0.5 s; the ratio shows what kds adds on top of Node itself), plus the
// floor of any yargs CLI (a one-command yargs parser printing its help) as a second baseline.
//
// Wall-clock figures move with the machine's load more than with anything kds does, so each figure is
// also measured in CPU time (user + system, every thread), which is much steadier on a shared machine:
// for a command that exits, the CPU the kernel credits to this process's reaped children
// (/proc/self/stat cutime + cstime) around the run; for the KDC, the server's own CPU
// (/proc/<pid>/stat utime + stime) at the moment it prints its URL. Linux only: elsewhere the CPU
// figures are left out.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { machine, summarize, type BenchResult, type Figure } from './harness.js';

const exec = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kds = join(root, 'bin', 'kds.js');
const yargsEntry = createRequire(join(root, 'package.json')).resolve('yargs');
/** The floor of a yargs CLI: load yargs, declare one command, print the help (same wrap as kds). */
const yargsFloor = `require(${JSON.stringify(yargsEntry)})(process.argv.slice(1)).scriptName('x').command('a', 'b').help().wrap(100).parse()`;

/** Kernel clock ticks per second (the unit of /proc/<pid>/stat times); 100 on Linux. */
const ticksPerSecond = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();
const procStat = existsSync('/proc/self/stat');

/** utime, stime, cutime, cstime of a process, in milliseconds (fields 14-17 of /proc/<pid>/stat). */
function cpuTimes(pid: number | 'self'): { own: number; children: number } {
  // The command name (field 2) may contain spaces: the fields after it start after the last ')'.
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ms = (i: number): number => (Number(f[i]) * 1000) / ticksPerSecond;
  return { own: ms(11) + ms(12), children: ms(13) + ms(14) };
}

interface Run {
  wallMs: number;
  cpuMs: number;
}

/** Run `node <args>` to completion: wall time, and its CPU time (NaN without /proc). */
async function timeCommand(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  const before = procStat ? cpuTimes('self').children : 0;
  const t0 = process.hrtime.bigint();
  await exec(process.execPath, args, { env });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return { wallMs, cpuMs: procStat ? cpuTimes('self').children - before : Number.NaN };
}

/** `kds server start` until it prints its URL: wall time, and the server's CPU time at that moment. */
async function serverReady(dataDir: string, env: NodeJS.ProcessEnv): Promise<Run> {
  const t0 = process.hrtime.bigint();
  const child = spawn(
    process.execPath,
    [kds, 'server', 'start', '--port', '0', '--data-dir', dataDir, '--json'],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  try {
    return await new Promise<Run>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('"url"')) {
          const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
          resolve({ wallMs, cpuMs: procStat ? cpuTimes(child.pid!).own : Number.NaN });
        }
      });
      child.once('exit', (code) => reject(new Error(`server exited early (${code})`)));
    });
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

/** `n` measured runs of `fn` after `warmup` unmeasured ones. */
async function runs(n: number, fn: () => Promise<Run>, warmup = 0): Promise<Run[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: Run[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out;
}

const wall = (rs: Run[]): Figure =>
  summarize(
    rs.map((r) => r.wallMs),
    'ms',
  );
const cpu = (rs: Run[]): Figure =>
  summarize(
    rs.map((r) => r.cpuMs),
    'ms CPU',
  );

export async function run(): Promise<BenchResult> {
  const n = 10;
  // Interleaved, so that a change in the machine's load affects every figure alike.
  const node0: Run[] = [];
  const floor: Run[] = [];
  const help: Run[] = [];
  for (let i = 0; i <= n; i++) {
    const round = [
      await timeCommand(['-e', '0']),
      await timeCommand(['-e', yargsFloor, '--', '--help']),
      await timeCommand([kds, '--help']),
    ];
    if (i === 0) continue; // warm-up: the page cache, and the first run's one-off costs
    node0.push(round[0]!);
    floor.push(round[1]!);
    help.push(round[2]!);
  }
  const dir = mkdtempSync(join(tmpdir(), 'kds-bench-startup-'));
  const env = { ...process.env, KDS_CA_PASSPHRASE: 'bench-passphrase' };
  try {
    await exec(process.execPath, [kds, 'server', 'init', '--data-dir', dir, '--ca-key-bits', '2048'], {
      env,
    });
    const ready = await runs(5, () => serverReady(dir, env), 1);
    const figures: Record<string, Figure> = {
      node_e_0: wall(node0),
      yargs_cli_help: wall(floor),
      kds_help: wall(help),
      server_start_to_ready: wall(ready),
    };
    const ratios: Record<string, number> = {
      kds_help_vs_node: figures.kds_help!.median / figures.node_e_0!.median,
      server_ready_vs_node: figures.server_start_to_ready!.median / figures.node_e_0!.median,
    };
    if (procStat) {
      figures.node_e_0_cpu = cpu(node0);
      figures.yargs_cli_help_cpu = cpu(floor);
      figures.kds_help_cpu = cpu(help);
      figures.server_start_to_ready_cpu = cpu(ready);
      ratios.kds_help_vs_node_cpu = figures.kds_help_cpu.median / figures.node_e_0_cpu.median;
      ratios.kds_help_vs_yargs_cli_cpu = figures.kds_help_cpu.median / figures.yargs_cli_help_cpu.median;
      ratios.server_ready_vs_node_cpu =
        figures.server_start_to_ready_cpu.median / figures.node_e_0_cpu.median;
    }
    return {
      machine: machine(),
      figures,
      ratios,
      notes: [
        `kds --help median ${figures.kds_help!.median.toFixed(0)} ms (target < 500 ms)`,
        'CPU figures: /proc/<pid>/stat (10 ms ticks), every thread of the measured process',
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
