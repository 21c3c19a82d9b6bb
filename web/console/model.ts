// What the page knows: every event received, in order, across restarts of the process it watches
// (each stream begins with a `hello` naming the process instance; a reconnection to the same instance
// resends its history, which is skipped by sequence number). Events are checked for shape before use:
// they come from the network.
import type { ConsoleEvent, ConsoleState } from '../../shared/console/events.js';

export const KDC = 'kdc';
export const MALLORY = 'mallory';

/** An event as the page keeps it: `index` is its place on the timeline (0, 1, ...). */
export type Kept = ConsoleEvent & { index: number; instance: string };

const KINDS = new Set([
  'message',
  'exchange.open',
  'established',
  'refused',
  'exchange.close',
  'change',
  'undrawn',
  'attack',
  'state',
]);

/** A string field, or '' (anything else the network sent is not drawn). */
export function str(value: unknown, max = 200): string {
  return typeof value === 'string' ? value.slice(0, max) : '';
}

export function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

export class Model {
  readonly events: Kept[] = [];
  #instance = '';
  #lastSeq = 0;
  restarts = 0;
  view = 'kdc';

  /** A stream began: a new instance (first connection or a restarted process), or the same one again. */
  hello(instance: string, view: string): void {
    if (instance !== this.#instance) {
      if (this.#instance !== '') this.restarts += 1;
      this.#instance = instance;
      this.#lastSeq = 0;
    }
    this.view = view === 'mallory' ? 'mallory' : 'kdc';
  }

  /** Keep an event; false when it was a duplicate or malformed. */
  add(raw: unknown): boolean {
    if (typeof raw !== 'object' || raw === null) return false;
    const e = raw as Record<string, unknown>;
    if (typeof e.kind !== 'string' || !KINDS.has(e.kind)) return false;
    const seq = num(e.seq);
    if (seq <= this.#lastSeq) return false;
    this.#lastSeq = seq;
    this.events.push({
      ...(e as unknown as ConsoleEvent),
      index: this.events.length,
      instance: this.#instance,
    });
    return true;
  }

  /** The state panel as it was at `cursor` (the last state event at or before it). */
  stateAt(cursor: number): ConsoleState | undefined {
    for (let i = Math.min(cursor, this.events.length - 1); i >= 0; i--) {
      const e = this.events[i]!;
      if (e.kind === 'state') return e.state;
    }
    return undefined;
  }
}
