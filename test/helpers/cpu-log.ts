// The CPU each test file costs, for finding where the suite's time goes: with KDSTEST_CPU_LOG=FILE, each
// test process appends one line `<file>\t<own CPU s>\t<children's CPU s>\t<wall s>` to FILE as it exits.
// The children's figure is every process the file started and waited for (kds servers and clients,
// chromium, openssl...), from the kernel's cutime/cstime, so the two columns are the file's whole cost.
// The suite is CPU-bound on CI's 2 cores: a file's CPU, not its wall time, is what it costs the run
// (docs/performance.md "The test suite's time").
//
//   KDSTEST_CPU_LOG=/tmp/cpu.tsv npm test
//   awk -F'\t' '{printf "%6.1f %s\n", $2 + $3, $1}' /tmp/cpu.tsv | sort -rn | head -30
import { appendFileSync, readFileSync } from 'node:fs';

const CLOCK_TICKS = 100;

/** utime, stime, cutime, cstime of this process, in seconds (fields 14-17 of /proc/self/stat). */
export function ownAndChildrenCpu(stat: string): { own: number; children: number } {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = (i: number): number => Number(f[i]) / CLOCK_TICKS;
  return { own: ticks(11) + ticks(12), children: ticks(13) + ticks(14) };
}

/** Registers the exit hook when the variable names a file and this process runs a test file. */
export function logCpuOnExit(env: NodeJS.ProcessEnv, script: string | undefined): void {
  const out = env.KDSTEST_CPU_LOG;
  if (out === undefined || out === '' || script === undefined || !script.endsWith('.test.js')) return;
  const started = Date.now();
  process.on('exit', () => {
    try {
      const { own, children } = ownAndChildrenCpu(readFileSync('/proc/self/stat', 'latin1'));
      const file = script.replace(/^.*?dist\/test\//, '');
      appendFileSync(
        out,
        `${file}\t${own.toFixed(2)}\t${children.toFixed(2)}\t${(Date.now() - started) / 1000}\n`,
      );
    } catch {
      // No /proc (not Linux) or an unwritable file: the measurement is lost, the test's result is not.
    }
  });
}
