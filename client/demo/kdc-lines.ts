// The KDC's own terminal lines, as the demo shows them under each step: the KDC child process writes
// one line per decision on its stderr (`kds server start`'s default text log, server/events/
// terminal-lines.ts), and the demo reads that pipe. Nothing is invented here: what the student sees
// is what the KDC's operator would see in terminal 1, minus the clock.
//
// The lines come from another process and quote names that came from the network: each is escaped
// again on the way in (terminalSafe is idempotent on safe text, so a line the KDC escaped reads the
// same), and the narrator escapes what it prints as well.
//
// A step that narrates something the KDC decides waits for the KDC's line about it, with a deadline:
// the line travels through a pipe while the answer travels through a socket, and either may arrive
// first. Waiting makes each line appear under the step that caused it, every run.
import { EnvironmentError } from '../../shared/errors.js';
import { terminalSafe } from '../../shared/text/terminal-safe.js';
import { DEFAULT_WAIT_MS } from './event-log.js';

export interface KdcLine {
  /** Who the line is about (a name, `name?` for a claimed one, an address, `kdc`); '' for other output. */
  who: string;
  /** What the KDC decided. */
  what: string;
  /** The KDC's clock (UTC, HH:MM:SS.mmm), when the line had one. */
  clock?: string;
}

/** `07:41:02.113  alice      handshake ok (x25519, 1.3 ms)` (server/events/terminal-lines.ts eventLine). */
const EVENT_LINE = /^(\d\d:\d\d:\d\d\.\d{3}) {2}(\S+) +(.*)$/;

/** One line of the KDC's stderr, made terminal-safe, split into its columns when it is an event line. */
export function parseKdcLine(raw: string): KdcLine {
  const line = terminalSafe(raw.replace(/\r$/, ''));
  const m = EVENT_LINE.exec(line);
  if (m === null) return { who: '', what: line };
  return { clock: m[1]!, who: m[2]!, what: m[3]! };
}

/** `who what`, the text a step matches and the narrator prints (`who` padded as the KDC pads it). */
export function kdcText(l: KdcLine): string {
  return l.who === '' ? l.what : `${l.who.padEnd(10)} ${l.what}`;
}

export class KdcLines {
  readonly lines: KdcLine[] = [];
  readonly #waiters = new Set<() => void>();
  #partial = '';
  /** Lines before this index belong to earlier steps: a wait looks only at later ones. */
  #from = 0;

  /** `enabled` false (`kds demo --no-kdc-log`): the KDC runs silent and nothing is waited for. */
  constructor(
    readonly enabled: boolean,
    private readonly onLine: (l: KdcLine) => void,
  ) {}

  /** Bytes from the KDC's stderr, in any chunking. */
  feed = (chunk: string): void => {
    this.#partial += chunk;
    let nl: number;
    while ((nl = this.#partial.indexOf('\n')) >= 0) {
      const raw = this.#partial.slice(0, nl);
      this.#partial = this.#partial.slice(nl + 1);
      if (raw.trim() === '') continue;
      const l = parseKdcLine(raw);
      this.lines.push(l);
      this.onLine(l);
    }
    for (const w of [...this.#waiters]) w();
  };

  /** A new step begins: later waits ignore the lines already shown. */
  nextStep(): void {
    this.#from = this.lines.length;
  }

  /**
   * Resolves once the KDC printed a line matching `re` (`who what`, see kdcText) since the step began;
   * rejects after `timeoutMs`. Resolves at once when the KDC log is off.
   */
  waitFor(re: RegExp, what: string, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!this.lines.slice(this.#from).some((l) => re.test(kdcText(l)))) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new EnvironmentError('timeout', `the KDC did not log ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** Every line of `res`, in any order (each its own wait). */
  async waitForAll(res: readonly RegExp[], what: string): Promise<void> {
    await Promise.all(res.map((re) => this.waitFor(re, `${what} (${String(re)})`)));
  }
}
