// Printing for every command: human text on a TTY (colour only there, NO_COLOR respected), JSON with --json,
// errors as `error [code]: message` with the exit code of the error's code (docs/cli.md).
import { KdsError, toKdsError, EXIT } from '../shared/errors.js';
import { defenceForError, describeDefence } from '../shared/defences.js';
import { terminalSafe, terminalSafeJson } from '../shared/text/terminal-safe.js';
import { outputClosed } from './closed-pipe.js';

// Text that came from the network or from a file is made terminal-safe where it is interpolated
// (shared/text/terminal-safe.ts); re-exported here for the command handlers, which import this module.
export { terminalSafe } from '../shared/text/terminal-safe.js';

export interface OutputOptions {
  json?: boolean;
}

const useColour = (stream: NodeJS.WriteStream): boolean =>
  Boolean(stream.isTTY) && process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb';

function paint(stream: NodeJS.WriteStream, code: string, text: string): string {
  return useColour(stream) ? `\u001b[${code}m${text}\u001b[0m` : text;
}

export const style = {
  ok: (t: string): string => paint(process.stdout, '32', t),
  bad: (t: string): string => paint(process.stdout, '31', t),
  warn: (t: string): string => paint(process.stderr, '33', t),
  dim: (t: string): string => paint(process.stdout, '2', t),
  bold: (t: string): string => paint(process.stdout, '1', t),
  symbol: (ok: boolean): string => (useColour(process.stdout) ? (ok ? '✔' : '✘') : ok ? 'OK' : 'FAIL'),
};

/** Print a result: JSON object with --json, otherwise the human lines. */
export function emit(opts: OutputOptions, json: unknown, human: string | string[]): void {
  if (opts.json) {
    process.stdout.write(`${terminalSafeJson(json, 2)}\n`);
  } else {
    const lines = Array.isArray(human) ? human : [human];
    if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
  }
}

/** A loud note on stderr (never in --json stdout). */
export function warn(message: string): void {
  process.stderr.write(`${style.warn('warning:')} ${message}\n`);
}

export function info(opts: OutputOptions, message: string): void {
  if (!opts.json) process.stderr.write(`${message}\n`);
}

/** How a command writes under --json: one object (pretty), or a stream of one object per line. */
export interface OutputShape {
  jsonLines?: boolean;
}

/** Report an error and set the exit code. Never prints stack traces or key material. */
export function reportError(opts: OutputOptions, err: unknown, shape: OutputShape = {}): number {
  const e: KdsError = toKdsError(err);
  // The defence this error is the trace of (shared/defences.ts), e.g. after a MITM attempt.
  const defence = defenceForError(e);
  const because = describeDefence(e);
  if (opts.json) {
    const out =
      defence === undefined
        ? { error: e.toJSON() }
        : { error: e.toJSON(), defence: defence.defence, explanation: because };
    // After a stream of one JSON object per line, the error is one line too: a reader that parses
    // line by line must not meet a pretty-printed object at the end.
    process.stdout.write(`${terminalSafeJson(out, shape.jsonLines === true ? undefined : 2)}\n`);
  } else {
    // The message may quote the KDC or a peer (an error it sent, a name it claimed): never raw.
    process.stderr.write(`error [${e.code}]: ${terminalSafe(e.message)}\n`);
    if (defence !== undefined) process.stderr.write(`${because}\nstopped by: ${defence.defence}\n`);
    if (e.code === 'internal' && process.env.KDS_DEBUG)
      process.stderr.write(`${String((err as Error)?.stack)}\n`);
  }
  return e.code === 'internal' ? EXIT.failure : e.exitCode;
}

/** Wrap a command handler: errors become exit codes; success sets the code the handler returns (default 0). */
export function run<A extends OutputOptions>(
  handler: (argv: A) => Promise<number | void>,
  shape: OutputShape = {},
): (argv: A) => Promise<void> {
  return async (argv: A) => {
    try {
      const code = await handler(argv);
      // Stopped because the reader of our output went away (cli/closed-pipe.ts): not a failure.
      process.exitCode = outputClosed() ? EXIT.ok : (code ?? EXIT.ok);
    } catch (err) {
      process.exitCode = outputClosed() ? EXIT.ok : reportError(argv, err, shape);
    }
  };
}

/** A spinner on stderr for steps over ~1 s (RSA key generation); silent when not a TTY or with --json. */
export async function withProgress<T>(
  opts: OutputOptions,
  label: string,
  work: () => Promise<T>,
): Promise<T> {
  const stream = process.stderr;
  if (opts.json || !stream.isTTY) return work();
  const frames = ['|', '/', '-', '\\'];
  let i = 0;
  const timer = setInterval(() => stream.write(`\r${frames[i++ % frames.length]} ${label}`), 100);
  try {
    const result = await work();
    stream.write(`\r${style.symbol(true)} ${label}\n`);
    return result;
  } catch (err) {
    stream.write(`\r${style.symbol(false)} ${label}\n`);
    throw err;
  } finally {
    clearInterval(timer);
  }
}
