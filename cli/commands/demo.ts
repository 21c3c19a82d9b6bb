// `kds demo` (`npm run demo`): the whole product in one command, narrated (client/demo/run-demo.ts).
// A temporary data directory and free ports; a real KDC child process; Alice, Bob, the admin and
// Mallory. Exit 0 when every step did what it says, 1 when one did not, 130 when interrupted (Ctrl-C);
// in every case nothing is left behind. Heavy modules load inside the handler so `kds --help` stays fast.
import type { Argv } from 'yargs';
import { run, type OutputOptions } from '../output.js';

interface DemoArgs extends OutputOptions {
  step: boolean;
  console: boolean;
  'kdc-log': boolean;
}

/** `kds demo` (its name and description are in cli/commands/index.ts, which loads this lazily). */
export function builder(d: Argv): Argv {
  return d
    .option('step', {
      type: 'boolean',
      default: false,
      describe: 'pause before each step until Enter is pressed (for a live audience)',
    })
    .option('console', {
      type: 'boolean',
      default: false,
      describe:
        'the KDC also serves the live console, and Mallory her view of it (both URLs are printed): watch every exchange in a browser',
    })
    .option('kdc-log', {
      type: 'boolean',
      default: true,
      describe: "show the KDC's own log lines (KDC | ...) under each step; --no-kdc-log hides them",
    })
    .example('$0 demo', 'the whole story, narrated, in well under a minute')
    .example('$0 demo --console --step', 'one step per Enter, drawn live in the browser')
    .example('$0 demo --step', 'one step per Enter')
    .example('$0 demo --json > demo.jsonl', 'the event log: one JSON object per line');
}

export const handler = run(async (argv: DemoArgs) => {
  const { runDemo } = await import('../../client/demo/run-demo.js');
  const { style, withProgress } = await import('../output.js');
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // The reader went away (`kds demo --json | head`): stop as on Ctrl-C (KDC stopped, directory
  // removed), then exit 0 (cli/closed-pipe.ts).
  const { onOutputClosed, outputClosed } = await import('../closed-pipe.js');
  const unwatch = onOutputClosed(stop);
  let code: number;
  try {
    code = await runDemo({
      json: argv.json === true,
      step: argv.step,
      console: argv.console,
      kdcLog: argv['kdc-log'],
      out: process.stdout,
      promptOut: process.stderr,
      input: process.stdin,
      style: { symbol: style.symbol, ok: style.ok, bad: style.bad, bold: style.bold, dim: style.dim },
      progress: (label, work) => withProgress(argv, label, work),
      signal: controller.signal,
    });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    unwatch();
  }
  // Interrupted: everything is cleaned up, but the story's last await may still hold a socket or a
  // timer; exit now rather than wait for it.
  if (code === 130) process.exit(outputClosed() ? 0 : 130);
  return code;
});
