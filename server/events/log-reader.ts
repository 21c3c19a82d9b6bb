// The KDC's log: its events (shared/events/kdc-events.ts) written as readable lines (terminal-lines.ts)
// or as JSON lines for a collector. JSON goes through pino, the Node ecosystem's structured logger:
// newline-delimited JSON with numeric levels and epoch-ms `time` (what every collector parses; no
// hand-written formatting to get wrong). Both formats write through one LineWriter (line-writer.ts):
// lines gathered and written together every few milliseconds, a warn or error line at once, nothing
// lost at stop, exit or crash.
//
// Every string field of a JSON line is made terminal-safe as the text lines are (a hostile certificate
// CN reaches `claimedName`): a valid name never changes, a hostile one reads as its escapes, so a log
// line shown with `tail -f` obeys nothing it carries.
import type { Logger } from 'pino';
import { EVENT_LEVEL, isEventLevel, type EventLevel, type KdcEvent } from '../../shared/events/kdc-events.js';
import { terminalSafe } from '../../shared/text/terminal-safe.js';
import type { EventBus } from './bus.js';
import { LineWriter, fdSink } from './line-writer.js';
import { LogThrottle } from './log-throttle.js';
import { describeEvent, eventLine } from './terminal-lines.js';

export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
/** `silent` writes nothing (the readers that are not logs still read). */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogReaderOptions {
  format: LogFormat;
  level: LogLevel;
  /** Default: the process's stderr (stdout carries the command's own answer, e.g. `--json`'s line). */
  fd?: number;
  /** Where the lines go instead of `fd` (tests): each call is one flush, whole lines in order. */
  write?: (chunk: string) => void;
  /** How long a line may wait for the next flush (default line-writer.ts FLUSH_MS). */
  flushMs?: number;
  /** The clock of the repeated-refusal throttle (log-throttle.ts; default Date.now). */
  now?: () => number;
}

export interface LogReader {
  /** Write what is buffered now. */
  flush(): void;
  /** Stop reading the bus and flush. */
  close(): void;
}

/** Ranks at and above which a line is written at once (warn, error): see line-writer.ts. */
const URGENT: Readonly<Record<EventLevel, boolean>> = { debug: false, info: false, warn: true, error: true };

function safeFields(e: KdcEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { event: e.type };
  for (const [key, value] of Object.entries(e)) {
    if (key === 'type' || key === 'at') continue;
    out[key] = typeof value === 'string' ? terminalSafe(value) : value;
  }
  return out;
}

/**
 * Subscribe the log to `bus`. Asynchronous because pino (~25 ms of CPU to load) is imported only for
 * the JSON format: a KDC logging text lines, the default, never loads it (test/cli/lazy-load.test.ts).
 */
export async function attachLogReader(bus: EventBus, opts: LogReaderOptions): Promise<LogReader> {
  if (opts.level === 'silent') return { flush: () => {}, close: () => {} };
  const level: EventLevel = isEventLevel(opts.level) ? opts.level : 'info';
  const writer = new LineWriter({
    sink: opts.write ?? fdSink(opts.fd ?? 2),
    ...(opts.flushMs === undefined ? {} : { flushMs: opts.flushMs }),
  });
  // Repeated refusals (log-throttle.ts): the first of a kind per window, then one line with the count.
  let write: (e: KdcEvent) => void = () => {};
  const throttle = new LogThrottle({
    ...(opts.now === undefined ? {} : { now: opts.now }),
    onSuppressed: (sample, n, windowMs) => {
      const [who, what] = describeEvent(sample);
      write({
        type: 'kdc.warning',
        at: (opts.now ?? Date.now)(),
        message: `${n} more lines like "${who} ${what}" in the last ${windowMs / 1000} s were not written (the metrics count every one)`,
      });
    },
  });
  const timer = setInterval(() => throttle.flush(), 1_000);
  timer.unref();
  const reader = (off: () => void): LogReader => ({
    flush: () => writer.flush(),
    close: () => {
      off();
      clearInterval(timer);
      throttle.close();
      writer.close();
    },
  });
  const read = (e: KdcEvent): void => {
    if (throttle.admit(e)) write(e);
  };
  if (opts.format === 'text') {
    write = (e) => writer.write(`${eventLine(e)}\n`, URGENT[EVENT_LEVEL[e.type]]);
    return reader(bus.subscribe(read, { level }));
  }
  // pino writes each line to its destination with one write(line) call; the writer is that destination.
  const { pino } = await import('pino');
  let urgent = false;
  const logger: Logger = pino(
    {
      level,
      base: null, // no pid/hostname on every line: kdc.started carries the pid once
      timestamp: false, // `time` is the event's own (when the KDC decided), set below
      messageKey: 'msg',
    },
    { write: (line: string) => writer.write(line, urgent) },
  );
  write = (e) => {
    const fields = safeFields(e);
    fields.time = e.at;
    const [who, what] = describeEvent(e);
    const eventLevel = EVENT_LEVEL[e.type];
    urgent = URGENT[eventLevel];
    logger[eventLevel](fields, `${who} ${what}`);
  };
  return reader(bus.subscribe(read, { level }));
}
