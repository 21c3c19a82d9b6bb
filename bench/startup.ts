// startup: `kds --help` and KDC start-to-ready, each against `node -e 0` measured in the same run
// (issue 6 asks for --help under 0.5 s; the ratio shows what kds adds on top of Node itself).
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { machine, sample, summarize, type BenchResult } from './harness.js';

const exec = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kds = join(root, 'bin', 'kds.js');

async function timeCommand(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const t0 = process.hrtime.bigint();
  await exec(process.execPath, args, { env });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function serverReady(dataDir: string, env: NodeJS.ProcessEnv): Promise<number> {
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
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('"url"')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`server exited early (${code})`)));
    });
    return Number(process.hrtime.bigint() - t0) / 1e6;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

export async function run(): Promise<BenchResult> {
  const runs = 10;
  const node0 = await sample(runs, () => timeCommand(['-e', '0']));
  const help = await sample(runs, () => timeCommand([kds, '--help']));
  const dir = mkdtempSync(join(tmpdir(), 'kds-bench-startup-'));
  const env = { ...process.env, KDS_CA_PASSPHRASE: 'bench-passphrase' };
  try {
    await exec(process.execPath, [kds, 'server', 'init', '--data-dir', dir, '--ca-key-bits', '2048'], {
      env,
    });
    const ready = await sample(5, () => serverReady(dir, env));
    const fNode = summarize(node0, 'ms');
    const fHelp = summarize(help, 'ms');
    const fReady = summarize(ready, 'ms');
    return {
      machine: machine(),
      figures: { node_e_0: fNode, kds_help: fHelp, server_start_to_ready: fReady },
      ratios: {
        kds_help_vs_node: fHelp.median / fNode.median,
        server_ready_vs_node: fReady.median / fNode.median,
      },
      notes: [`kds --help median ${fHelp.median.toFixed(0)} ms (target < 500 ms)`],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
