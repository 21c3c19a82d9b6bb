// What the page knows: every event received, in order, across restarts of the process it watches
// (each stream begins with a `hello` naming the process instance; a reconnection to the same instance
// resends what the page has not seen, or its history, which is skipped by sequence number; a hole in
// the sequence becomes a `missed` row). Events are checked for shape before use:
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

/**
 * A key's state as the keys panel shows it, with the reason when it adds something: a key replaced by a
 * rotation is in state `superseded` for the reason `superseded`, shown once, not "superseded (superseded)".
 */
export function keyStateLabel(state: string, reason: string): string {
  return reason === '' || reason === state ? state : `${state} (${reason})`;
}

export class Model {
  readonly events: Kept[] = [];
  #instance = '';
  #lastSeq = 0;
  #baselineSeq = 0;
  restarts = 0;
  view = 'kdc';

  /** A stream began: a new instance (first connection or a restarted process), or the same one again. */
  hello(instance: string, view: string): void {
    if (instance !== this.#instance) {
      if (this.#instance !== '') this.restarts += 1;
      this.#instance = instance;
      this.#lastSeq = 0;
      this.#baselineSeq = 0;
    }
    this.view = view === 'mallory' ? 'mallory' : 'kdc';
  }

  /** Keep an event; false when it was a duplicate or malformed. */
  add(raw: unknown): boolean {
    const e = shaped(raw);
    if (e === undefined) return false;
    const seq = num(e.seq);
    if (seq <= this.#lastSeq) return false;
    // A jump in the sequence of the same process is a hole, never silent: a row says how many events
    // the page did not get (a first stream starts wherever the feed's history does: no hole).
    if (this.#lastSeq > 0 && seq > this.#lastSeq + 1) {
      const baseline = this.#baselineSeq > this.#lastSeq && this.#baselineSeq < seq ? 1 : 0;
      const count = seq - this.#lastSeq - 1 - baseline;
      if (count > 0) this.#keep({ kind: 'missed', count, seq: this.#lastSeq + 1, at: num(e.at) });
    }
    this.#lastSeq = seq;
    this.#keep(e);
    return true;
  }

  /**
   * The state the feed sends before its history when the history no longer holds it (the process
   * publishes its state only when it changes): the panel's state from the first event on. It is kept
   * as a state event but does not move the sequence on, so the history after it is still read.
   */
  baseline(raw: unknown): boolean {
    const e = shaped(raw);
    const seq = num(e?.seq);
    if (e === undefined || e.kind !== 'state' || seq <= this.#lastSeq || seq === this.#baselineSeq)
      return false;
    this.#baselineSeq = seq;
    this.#keep(e);
    return true;
  }

  #keep(e: Record<string, unknown>): void {
    this.events.push({
      ...(e as unknown as ConsoleEvent),
      index: this.events.length,
      instance: this.#instance,
    });
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

function shaped(raw: unknown): Record<string, unknown> | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const e = raw as Record<string, unknown>;
  return typeof e.kind === 'string' && KINDS.has(e.kind) ? e : undefined;
}
