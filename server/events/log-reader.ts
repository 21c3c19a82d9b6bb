// The KDC's log: its events (shared/events/kdc-events.ts) written as readable lines (terminal-lines.ts)
// or as JSON lines for a collector. JSON goes through pino, the Node ecosystem's structured logger:
// newline-delimited JSON with numeric levels and epoch-ms `time` (what every collector parses; no
// hand-written formatting to get wrong), and a buffered destination off the request path.
//
// Every string field of a JSON line is made terminal-safe as the text lines are (a hostile certificate
// CN reaches `claimedName`): a valid name never changes, a hostile one reads as its escapes, so a log
// line shown with `tail -f` obeys nothing it carries.
import { pino, type Logger } from 'pino';
import { EVENT_LEVEL, isEventLevel, type EventLevel, type KdcEvent } from '../../shared/events/kdc-events.js';
import { terminalSafe } from '../../shared/text/terminal-safe.js';
import type { EventBus } from './bus.js';
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
  /** Text lines only: where to write instead (tests). */
  write?: (line: string) => void;
}

export interface LogReader {
  /** Write what is buffered (at stop). */
  flush(): void;
  /** Stop reading the bus and flush. */
  close(): void;
}

function safeFields(e: KdcEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { event: e.type };
  for (const [key, value] of Object.entries(e)) {
    if (key === 'type' || key === 'at') continue;
    out[key] = typeof value === 'string' ? terminalSafe(value) : value;
  }
  return out;
}

export function attachLogReader(bus: EventBus, opts: LogReaderOptions): LogReader {
  if (opts.level === 'silent') return { flush: () => {}, close: () => {} };
  const level: EventLevel = isEventLevel(opts.level) ? opts.level : 'info';
  const fd = opts.fd ?? 2;
  if (opts.format === 'text') {
    // process.stderr: synchronous for files, terminals and (on Linux) pipes, so lines are never lost
    // at exit and appear in the order of the decisions.
    const write =
      opts.write ?? ((line: string) => void (fd === 1 ? process.stdout : process.stderr).write(line));
    const off = bus.subscribe((e) => write(`${eventLine(e)}\n`), { level });
    return { flush: () => {}, close: off };
  }
  const destination = pino.destination({ fd, sync: false, minLength: 4096 });
  const logger: Logger = pino(
    {
      level,
      base: null, // no pid/hostname on every line: kdc.started carries the pid once
      timestamp: false, // `time` is the event's own (when the KDC decided), set below
      messageKey: 'msg',
    },
    destination,
  );
  const off = bus.subscribe(
    (e) => {
      const fields = safeFields(e);
      fields.time = e.at;
      const [who, what] = describeEvent(e);
      logger[EVENT_LEVEL[e.type]](fields, `${who} ${what}`);
    },
    { level },
  );
  const flush = (): void => {
    try {
      destination.flushSync();
    } catch {
      // Nothing buffered yet (sonic-boom refuses flushSync before its fd opened), or the reader is gone.
    }
  };
  return {
    flush,
    close: () => {
      off();
      flush();
    },
  };
}
