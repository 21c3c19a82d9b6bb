// `npm run demo` (= `kds demo`): runs the scenario (client/demo/scenario.ts) in a fresh temporary
// directory with free ports, and guarantees that it leaves nothing behind: every step's resources are
// closed, the KDC child process is stopped and the directory removed, on success, on failure and when
// the user interrupts it (the CLI aborts `signal` on SIGINT/SIGTERM). A process 'exit' hook is the last
// resort (children SIGKILLed, directory removed) should anything escape.
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { toKdsError } from '../../shared/errors.js';
import { KdcLines } from './kdc-lines.js';
import { Narrator, type DemoStyle } from './narrator.js';
import { throwawayScene } from './processes.js';
import { STEPS, closeAll, type DemoState } from './scenario.js';

export interface DemoOptions {
  json: boolean;
  step: boolean;
  out: Writable;
  /** stderr: --step prompts. */
  promptOut: Writable;
  input: Readable;
  style: DemoStyle;
  progress?: <T>(label: string, work: () => Promise<T>) => Promise<T>;
  /** The KDC serves the live console (`kds demo --console`). */
  console?: boolean;
  /** Show the KDC's own log lines under each step (default); false: `kds demo --no-kdc-log`. */
  kdcLog?: boolean;
  /** Aborted on Ctrl-C: the demo cleans up and resolves with 130. */
  signal?: AbortSignal;
}

/** 0: every step passed; 1: a step failed (after cleanup); 130: interrupted (after cleanup). */
export type DemoExit = 0 | 1 | 130;

export async function runDemo(opts: DemoOptions): Promise<DemoExit> {
  const { tmp, passphrase, procs, lastResort } = throwawayScene('kds-demo-');
  const n = new Narrator({
    json: opts.json,
    step: opts.step,
    out: opts.out,
    promptOut: opts.promptOut,
    input: opts.input,
    style: opts.style,
  });
  const state: DemoState = {
    n,
    procs,
    tmp,
    dataDir: join(tmp, 'certs'),
    passphrase,
    progress: opts.progress ?? ((_label, work) => work()),
    console: opts.console === true,
    kdcLines: new KdcLines(opts.kdcLog !== false, (l) => n.kdc(l)),
    closers: [],
  };
  const started = Date.now();
  n.record({ event: 'start', tmp, pid: process.pid });
  let cleanup: Promise<void> | undefined;
  const cleanUpOnce = (): Promise<void> => (cleanup ??= closeAll(state));

  const interrupted = new Promise<'interrupted'>((resolve) => {
    if (opts.signal?.aborted === true) resolve('interrupted');
    opts.signal?.addEventListener('abort', () => resolve('interrupted'), { once: true });
  });
  const story = (async (): Promise<void> => {
    for (const step of STEPS) {
      state.kdcLines.nextStep();
      await step(state);
    }
  })();
  story.catch(() => undefined); // observed below; an interrupted story may reject later

  let exit: DemoExit;
  try {
    const outcome = await Promise.race([story.then(() => 'done' as const), interrupted]);
    if (outcome === 'interrupted') {
      n.say('interrupted: stopping the KDC and removing the temporary directory');
      await cleanUpOnce();
      n.done(false, { interrupted: true, elapsedMs: Date.now() - started });
      exit = 130;
    } else {
      await cleanUpOnce();
      n.done(true, { elapsedMs: Date.now() - started, steps: n.stepNumber });
      if (!opts.json)
        opts.out.write(
          `\n${opts.style.ok('demo complete')} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${n.stepNumber} steps, nothing left behind\n`,
        );
      exit = 0;
    }
  } catch (err) {
    const e = toKdsError(err);
    n.result(false, `step ${n.stepNumber} failed: [${e.code}] ${e.message}`, { code: e.code });
    await cleanUpOnce();
    n.done(false, { code: e.code, elapsedMs: Date.now() - started });
    exit = 1;
  } finally {
    n.close();
  }
  // After an interruption the story may still be unwinding: keep the last-resort hook for the exit
  // that follows (the process group refuses new children once closed).
  if (exit !== 130) process.off('exit', lastResort);
  return exit;
}
