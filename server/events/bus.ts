// The KDC's event bus: emitters (kdc.ts, connection.ts, the CA, the key service) hand it typed events
// (shared/events/kdc-events.ts); readers (the terminal and JSON logs, the metrics, the audit signer,
// the browser console) subscribe. Delivery is synchronous, in emission order, on the emitter's stack:
// a reader that needs to do I/O queues it itself (pino's destination does).
//
// Cost without readers: emitters on hot paths (per connection, per request) test `wants(type)` before
// building an event, so a KDC nobody reads pays one set lookup per site. The answer is per type: a
// reader that takes a few types (the metrics) does not make the bus build every event of their level
// (a connection opened, a prekey upload), only those. bench/events.ts measures the cost with the
// default readers on.
//
// Delivery per event is one lookup of the readers of its type (worked out when a reader subscribes or
// leaves) and the stamp: the bus adds `at` to the object the emitter built, which every emitter builds
// fresh for the one call, rather than copying it (a copy of an object of one of 26 shapes is V8's
// slowest kind of spread, and was a third of the metrics reader's cost).
//
// A reader that throws is cut off from that one event and counted (`readerErrors`), never allowed to
// fail the decision being reported: the KDC's behaviour does not depend on who watches it.
import {
  EVENT_LEVEL,
  EVENT_LEVELS,
  type EventInput,
  type EventLevel,
  type KdcEvent,
  type KdcEventType,
} from '../../shared/events/kdc-events.js';

export type EventReader = (event: KdcEvent) => void;

export interface SubscribeOptions {
  /** The lowest level this reader wants (default 'debug': everything). */
  level?: EventLevel;
  /** Only these types (default: all). */
  types?: readonly KdcEventType[];
}

interface Subscription {
  reader: EventReader;
  rank: number;
  types: ReadonlySet<KdcEventType> | undefined;
}

export class EventBus {
  #subs: Subscription[] = [];
  /** The lowest level rank any reader wants; EVENT_LEVELS.length when nobody reads. */
  #floor: number = EVENT_LEVELS.length;
  /** The types some reader takes (its level and its type filter both let them through). */
  #wanted: ReadonlySet<KdcEventType> = new Set();
  /** Per type some reader takes: those readers, in subscription order. */
  #readersOf: ReadonlyMap<KdcEventType, readonly EventReader[]> = new Map();
  readonly #now: () => number;
  #readerErrors = 0;

  constructor(opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now;
  }

  /** Add a reader; returns the function that removes it. */
  subscribe(reader: EventReader, opts: SubscribeOptions = {}): () => void {
    const sub: Subscription = {
      reader,
      rank: EVENT_LEVELS.indexOf(opts.level ?? 'debug'),
      types: opts.types === undefined ? undefined : new Set(opts.types),
    };
    // Copy on write: a reader that unsubscribes (or subscribes another) during an emit changes the
    // next emit, not the one in progress.
    this.#subs = [...this.#subs, sub];
    this.#recompute();
    return () => {
      this.#subs = this.#subs.filter((s) => s !== sub);
      this.#recompute();
    };
  }

  /** Some reader takes events of this type (or, given a level, some events of this level). */
  wants(levelOrType: EventLevel | KdcEventType): boolean {
    if (Object.hasOwn(EVENT_LEVEL, levelOrType)) return this.#wanted.has(levelOrType as KdcEventType);
    return EVENT_LEVELS.indexOf(levelOrType as EventLevel) >= this.#floor;
  }

  /** Number of readers. */
  get readers(): number {
    return this.#subs.length;
  }

  /** Events a reader threw on (each reader that threw counts once per event). */
  get readerErrors(): number {
    return this.#readerErrors;
  }

  /**
   * Stamp `at` and hand the event to every reader that wants it. The bus takes `input` over (it adds
   * `at` to it and readers may keep it): build it for this call, do not reuse it.
   */
  emit<T extends KdcEventType>(input: EventInput<T>): void {
    const readers = this.#readersOf.get(input.type);
    if (readers === undefined) return;
    (input as { at?: number }).at = this.#now();
    const event = input as unknown as KdcEvent;
    for (const reader of readers) {
      try {
        reader(event);
      } catch {
        this.#readerErrors += 1;
      }
    }
  }

  #recompute(): void {
    this.#floor = this.#subs.reduce<number>((min, s) => Math.min(min, s.rank), EVENT_LEVELS.length);
    const readersOf = new Map<KdcEventType, EventReader[]>();
    for (const type of Object.keys(EVENT_LEVEL) as KdcEventType[]) {
      const rank = EVENT_LEVELS.indexOf(EVENT_LEVEL[type]);
      const readers = this.#subs
        .filter((s) => rank >= s.rank && (s.types === undefined || s.types.has(type)))
        .map((s) => s.reader);
      if (readers.length > 0) readersOf.set(type, readers);
    }
    this.#readersOf = readersOf;
    this.#wanted = new Set(readersOf.keys());
  }
}
