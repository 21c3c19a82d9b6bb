// The console's event feed: a bounded history (so a page opened late, or reloaded, can step back
// through what already happened) and the pages subscribed to it. Publishing costs one array push and
// one write per open page; when no console was asked for, nothing of this exists (kdc.ts).
import type { ServerResponse } from 'node:http';
import { randomBytes } from '../../shared/crypto/random.js';
import type { ConsoleEvent, ConsoleState } from '../../shared/console/events.js';

/** Events kept for pages that connect later (a class's whole demo fits several times over). */
const HISTORY_LIMIT = 5_000;
/** Pages open at once; one more is refused (503) rather than let pages pile up. */
const MAX_SUBSCRIBERS = 16;
/** A page that stops reading is dropped once this much is waiting for it (bounded memory per reader). */
const MAX_BUFFERED_BYTES = 1 << 20;

type Draft = ConsoleEvent extends infer E ? (E extends ConsoleEvent ? Omit<E, 'seq' | 'at'> : never) : never;

export class ConsoleFeed {
  readonly #history: ConsoleEvent[] = [];
  readonly #subscribers = new Set<ServerResponse>();
  #seq = 0;
  #state: ConsoleState | undefined;

  /** This process's feed: a page that reconnects to another instance knows it restarted. */
  readonly instance = randomBytes(8).toString('hex');

  /** `view`: whose view it is, `kdc` or `mallory`. */
  constructor(
    readonly view: 'kdc' | 'mallory' = 'kdc',
    private readonly now: () => number = Date.now,
  ) {}

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  get history(): readonly ConsoleEvent[] {
    return this.#history;
  }

  publish(draft: Draft): ConsoleEvent {
    const event = { ...draft, seq: ++this.#seq, at: this.now() } as ConsoleEvent;
    if (event.kind === 'state') this.#state = event.state;
    this.#history.push(event);
    if (this.#history.length > HISTORY_LIMIT) this.#history.splice(0, this.#history.length - HISTORY_LIMIT);
    if (this.#subscribers.size > 0) {
      const chunk = sseChunk(event);
      for (const res of this.#subscribers) this.#write(res, chunk);
    }
    return event;
  }

  /** The last published state (the page's panel before any event arrives). */
  get state(): ConsoleState | undefined {
    return this.#state;
  }

  /** Start an event stream on `res`: the history first, then every new event. False when full. */
  subscribe(res: ServerResponse): boolean {
    if (this.#subscribers.size >= MAX_SUBSCRIBERS) return false;
    this.#subscribers.add(res);
    res.on('close', () => this.#subscribers.delete(res));
    this.#write(
      res,
      `event: hello\ndata: ${JSON.stringify({ instance: this.instance, view: this.view })}\n\n`,
    );
    for (const event of this.#history) this.#write(res, sseChunk(event));
    return true;
  }

  /** End every stream (the process is stopping). */
  close(): void {
    for (const res of this.#subscribers) res.end();
    this.#subscribers.clear();
  }

  #write(res: ServerResponse, chunk: string): void {
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      this.#subscribers.delete(res);
      res.destroy();
      return;
    }
    res.write(chunk);
  }
}

/**
 * One Server-Sent Event. JSON.stringify escapes every control character, so a network-sourced string
 * can never end the `data:` line early and forge another event.
 */
function sseChunk(event: ConsoleEvent): string {
  return `id: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`;
}
