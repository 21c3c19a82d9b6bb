// Where the KDC's log lines go: gathered in memory and handed to the output together, once per
// FLUSH_MS (or at once when MAX_PENDING characters wait), instead of one write(2) per line. A key
// makes three info lines and a handshake one; written one by one, the log was a system call per event
// on the KDC's event loop, the largest part of what it cost (docs/performance.md "events").
//
// No line is lost or reordered: every flush is one synchronous write of everything pending, in order;
// a warn or error line (a refusal, a failure, a store error) is written at once, with everything
// before it, so an operator sees it when it happens; and what is pending is written on close (normal
// stop, SIGTERM and SIGINT go through it), on process exit, and before an uncaught exception is
// reported (so the lines leading to a crash come before its stack trace). Only a process killed
// outright (SIGKILL, a signal nobody handles) loses the last FLUSH_MS of lines.
import { writeSync } from 'node:fs';

/** How long a line may wait: short enough for an operator's `tail -f` or a test reading stderr live. */
const FLUSH_MS = 20;
/** Characters pending that make a flush at once (a burst needs no wait for the timer). */
const MAX_PENDING = 16 * 1024;

export interface LineWriterOptions {
  /** Receives each flush: all pending lines, in order, as one string. */
  sink: (chunk: string) => void;
  /** Default FLUSH_MS; 0 writes every line at once (one write per line, as before batching). */
  flushMs?: number;
}

export class LineWriter {
  readonly #sink: (chunk: string) => void;
  readonly #flushMs: number;
  #pending = '';
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #flush = (): void => this.flush();

  constructor(opts: LineWriterOptions) {
    this.#sink = opts.sink;
    this.#flushMs = opts.flushMs ?? FLUSH_MS;
    process.on('exit', this.#flush);
    // Runs before Node reports the exception (and before the 'exit' that follows it).
    process.on('uncaughtExceptionMonitor', this.#flush);
  }

  /** Queue `text` (whole lines, each ending in a newline); `now`: write it and what waits, at once. */
  write(text: string, now = false): void {
    if (this.#closed) return;
    this.#pending += text;
    if (now || this.#flushMs === 0 || this.#pending.length >= MAX_PENDING) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#flush, this.#flushMs);
      // A pending flush never keeps the process alive: exit writes what is left.
      this.#timer.unref();
    }
  }

  /** Write everything pending now. */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending === '') return;
    const chunk = this.#pending;
    this.#pending = '';
    this.#sink(chunk);
  }

  /** Flush, and write nothing more. */
  close(): void {
    this.flush();
    this.#closed = true;
    process.off('exit', this.#flush);
    process.off('uncaughtExceptionMonitor', this.#flush);
  }
}

/**
 * A sink for a file descriptor: stdout and stderr through their Node streams (synchronous on Linux for
 * files, terminals and pipes; a closed pipe reported as those streams report it, cli/closed-pipe.ts),
 * any other descriptor by writeSync until every byte is written.
 */
export function fdSink(fd: number): (chunk: string) => void {
  if (fd === 1) return (chunk) => void process.stdout.write(chunk);
  if (fd === 2) return (chunk) => void process.stderr.write(chunk);
  return (chunk) => {
    let buf = Buffer.from(chunk, 'utf8');
    while (buf.length > 0) buf = buf.subarray(writeSync(fd, buf));
  };
}
