// How the demo speaks: numbered steps, plain-words narration, what crossed the wire, and results.
// Human mode writes text to stdout (colour only on a terminal, NO_COLOR respected, via the `style`
// the CLI passes); --json writes the event log instead, one JSON object per line, nothing else on
// stdout. --step waits for Enter before each step after the first (the prompt goes to stderr).
// Narration quotes what the participants received (messages, names, error messages, Mallory's loot):
// every text is made terminal-safe before it is printed (shared/text/terminal-safe.ts).
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { terminalSafe as safe, terminalSafeJson } from '../../shared/text/terminal-safe.js';
import { kdcText, type KdcLine } from './kdc-lines.js';
import type { WireFrame } from './wire-tap.js';

export interface DemoStyle {
  /** ✔/✘ on a terminal, OK/FAIL otherwise (cli/output.ts style.symbol). */
  symbol(ok: boolean): string;
  ok(text: string): string;
  bad(text: string): string;
  bold(text: string): string;
  dim(text: string): string;
}

export interface NarratorOptions {
  json: boolean;
  step: boolean;
  out: Writable;
  /** Where --step prompts go (stderr) and where Enter is read from (stdin). */
  promptOut: Writable;
  input: Readable;
  style: DemoStyle;
  now?: () => number;
}

export type DemoEvent = { event: string } & Record<string, unknown>;

/** At most this many record frames are listed one by one per flush; the rest are summed up. */
const MAX_RECORD_LINES = 4;

export class Narrator {
  readonly events: DemoEvent[] = [];
  readonly #o: NarratorOptions;
  readonly #start: number;
  readonly #now: () => number;
  #stepNo = 0;
  #wire: WireFrame[] = [];
  #kdc: KdcLine[] = [];
  #rl: Interface | undefined;
  #lines: string[] = [];
  #lineWaiter: ((line: string | undefined) => void) | undefined;
  #inputEnded = false;
  /** After done(): an interrupted story may still be unwinding; it must not add to the log. */
  #finished = false;

  constructor(opts: NarratorOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#start = this.#now();
    if (opts.step) {
      this.#rl = createInterface({ input: opts.input, terminal: false });
      this.#rl.on('line', (l) => (this.#lineWaiter ? this.#takeWaiter()(l) : this.#lines.push(l)));
      this.#rl.on('close', () => {
        this.#inputEnded = true;
        if (this.#lineWaiter) this.#takeWaiter()(undefined);
      });
    }
  }

  get stepNumber(): number {
    return this.#stepNo;
  }

  #takeWaiter(): (line: string | undefined) => void {
    const w = this.#lineWaiter!;
    this.#lineWaiter = undefined;
    return w;
  }

  #emit(e: DemoEvent): void {
    if (this.#finished) return;
    const stamped = { ...e, ms: this.#now() - this.#start };
    this.events.push(stamped);
    if (this.#o.json) this.#o.out.write(`${terminalSafeJson(stamped)}\n`);
  }

  #print(...lines: string[]): void {
    if (!this.#o.json && !this.#finished) this.#o.out.write(`${lines.join('\n')}\n`);
  }

  /** A new numbered step: with --step, first wait for Enter (the end of stdin stops the pausing). */
  async step(title: string, ...intro: string[]): Promise<void> {
    this.flushWire();
    if (this.#o.step && this.#stepNo > 0 && !this.#inputEnded) {
      this.#o.promptOut.write(this.#o.style.dim(`-- press Enter for step ${this.#stepNo + 1}: ${title} --`));
      await this.#nextLine();
      this.#o.promptOut.write('\n');
    }
    this.#stepNo += 1;
    this.#emit({ event: 'step', n: this.#stepNo, title });
    this.#print('', this.#o.style.bold(`== ${this.#stepNo}. ${safe(title)} ==`));
    if (intro.length > 0) this.say(...intro);
  }

  #nextLine(): Promise<string | undefined> {
    const queued = this.#lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#inputEnded) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.#lineWaiter = resolve));
  }

  /** Narration in plain words. */
  say(...lines: string[]): void {
    this.flushWire();
    for (const text of lines) this.#emit({ event: 'say', text });
    this.#print(...lines.map((l) => `   ${safe(l)}`));
  }

  /** A result worth a check mark: `data` goes into the event log as is. */
  result(ok: boolean, text: string, data: Record<string, unknown> = {}): void {
    this.flushWire();
    this.#emit({ ...data, event: 'result', ok, text });
    const mark = this.#o.style.symbol(ok);
    const shown = safe(text);
    this.#print(
      `   ${ok ? this.#o.style.ok(mark) : this.#o.style.bad(mark)} ${ok ? shown : this.#o.style.bad(shown)}`,
    );
  }

  /** A line from Mallory (her frames, findings and loot). */
  mallory(text: string, data: Record<string, unknown>, loud = false): void {
    this.flushWire();
    this.#emit({ ...data, event: 'mallory', text });
    const shown = safe(text);
    this.#print(`   ${this.#o.style.dim('mallory')}  ${loud ? this.#o.style.bad(shown) : shown}`);
  }

  /** A frame seen by a wire tap: buffered, printed (summarised) at the next narration. */
  wire(frame: WireFrame): void {
    this.#emit({ ...frame, event: 'wire' });
    this.#wire.push(frame);
  }

  /** A line of the KDC's own log: buffered, printed (after the wire) at the next narration. */
  kdc(line: KdcLine): void {
    this.#emit({ ...line, event: 'kdc', text: kdcText(line) });
    this.#kdc.push(line);
  }

  /**
   * Print what is buffered: the frames (all of them when few, else handshake frames plus record
   * totals per direction), then the KDC's lines about them.
   */
  flushWire(): void {
    this.#flushFrames();
    const lines = this.#kdc;
    this.#kdc = [];
    if (this.#o.json || lines.length === 0) return;
    this.#print(...lines.map((l) => `   ${this.#o.style.dim('KDC |')} ${safe(kdcText(l))}`));
  }

  #flushFrames(): void {
    const frames = this.#wire;
    this.#wire = [];
    if (this.#o.json || frames.length === 0) return;
    const records = frames.filter((f) => f.frame === 'record');
    if (records.length <= MAX_RECORD_LINES) {
      this.#print(...frames.map((f) => wireLine(f, this.#o.style)));
      return;
    }
    const lines = frames.filter((f) => f.frame !== 'record').map((f) => wireLine(f, this.#o.style));
    const groups = new Map<string, WireFrame[]>();
    for (const r of records) {
      const key = `${r.who}\u0000${r.dir}`;
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    for (const rs of groups.values()) {
      const bytes = rs.reduce((n, r) => n + r.bytes, 0);
      lines.push(
        this.#o.style.dim(
          `   wire  ${arrow(rs[0]!.who, rs[0]!.dir)}  ${`${rs.length} record${rs.length === 1 ? '' : 's'}`.padEnd(13)} ${String(bytes).padStart(5)} B  AES-256-GCM ciphertext only`,
        ),
      );
    }
    this.#print(...lines);
  }

  /** The structured end of the log. */
  done(ok: boolean, data: Record<string, unknown> = {}): void {
    this.flushWire();
    this.#emit({ ...data, event: 'done', ok });
    this.#finished = true;
  }

  /** Any other structured event (json only). */
  record(e: DemoEvent): void {
    this.#emit(e);
  }

  close(): void {
    this.#rl?.close();
  }
}

function arrow(who: string, dir: 'out' | 'in'): string {
  return (dir === 'out' ? `${who} -> KDC` : `KDC -> ${who}`).padEnd(14);
}

function wireLine(f: WireFrame, style: DemoStyle): string {
  return style.dim(
    `   wire  ${arrow(safe(f.who), f.dir)}  ${safe(f.frame).padEnd(13)} ${String(f.bytes).padStart(5)} B  ${safe(f.detail)}`,
  );
}
