// The console feed's bounded history and its batched writes: a page that connects late gets exactly the
// last HISTORY_LIMIT events, in order, after its hello; what is published reaches an open page in one
// write at most every FLUSH_MS, in the order published, and closing the feed delivers what was still
// waiting.
import t from 'tap';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { ConsoleFeed, FLUSH_MS, HISTORY_LIMIT } from '../../../io/console/feed.js';
import type { ConsoleState } from '../../../shared/console/events.js';
import { Model } from '../../../web/console/model.js';
import { parseSse, readInto } from '../../helpers/sse.js';

/** What the feed uses of a response: write, writableLength, end, destroy and the close event. */
function fakePage(): { res: ServerResponse; writes: string[]; times: number[]; ended: () => boolean } {
  const writes: string[] = [];
  const times: number[] = [];
  let ended = false;
  const res = Object.assign(new EventEmitter(), {
    writableLength: 0,
    write: (chunk: string) => {
      times.push(performance.now());
      return writes.push(chunk) > 0;
    },
    end: () => {
      ended = true;
    },
    destroy: () => undefined,
  });
  return { res: res as unknown as ServerResponse, writes, times, ended: () => ended };
}

const seqs = (text: string): number[] =>
  [...text.matchAll(/^id: [0-9a-f]+-(\d+)$/gm)].map((m) => Number(m[1]));

t.test('a late page gets the last HISTORY_LIMIT events, in order', async (t) => {
  const feed = new ConsoleFeed('kdc', () => 0);
  const total = HISTORY_LIMIT * 2 + 123;
  for (let i = 0; i < total; i++) feed.publish({ kind: 'exchange.open', exchange: i + 1 });
  t.equal(feed.history.length, HISTORY_LIMIT);
  t.equal(feed.history[0]!.seq, total - HISTORY_LIMIT + 1, 'the oldest kept');
  t.equal(feed.history.at(-1)!.seq, total, 'the newest');
  const page = fakePage();
  t.ok(feed.subscribe(page.res));
  t.match(page.writes[0], /^event: hello\n/, 'the hello first');
  const got = seqs(page.writes.slice(1).join(''));
  t.same(
    got,
    feed.history.map((e) => e.seq),
    'then exactly the history, in order',
  );
});

/** Past the next write to the pages: timers run in the order of their due times. */
const afterFlush = (): Promise<void> => new Promise((r) => setTimeout(r, FLUSH_MS + 10));

t.test('one write per FLUSH_MS at most; close delivers what is waiting', async (t) => {
  const feed = new ConsoleFeed('kdc', () => 0);
  const page = fakePage();
  feed.subscribe(page.res);
  const before = page.writes.length;
  for (let i = 0; i < 10; i++) feed.publish({ kind: 'exchange.open', exchange: i + 1 });
  t.equal(page.writes.length, before, 'nothing written within the turn');
  await afterFlush();
  t.equal(page.writes.length, before + 1, 'one write for the ten events');
  t.same(seqs(page.writes.at(-1)!), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  // A quiet spell: FLUSH_MS since the last write, counted from when it happened (on a loaded machine
  // the write's timer can fire well after it was due, and afterFlush's wait then ends too early).
  const quietAt = page.times.at(-1)! + FLUSH_MS + 5;
  while (performance.now() < quietAt) await new Promise((r) => setTimeout(r, quietAt - performance.now()));
  feed.publish({ kind: 'exchange.open', exchange: 11 });
  await new Promise((r) => setTimeout(r, 1));
  t.same(seqs(page.writes.at(-1)!), [11], 'after a quiet spell, the first event goes out at once');
  // Right after a write, the next waits its turn: events published over several turns share it.
  for (let i = 0; i < 2; i++) {
    feed.publish({ kind: 'exchange.open', exchange: 12 + i });
    await new Promise((r) => setImmediate(r));
  }
  await afterFlush();
  t.same(
    page.writes.slice(before + 2).map(seqs),
    [[12, 13]],
    'events published in two turns right after a write: one write',
  );
  feed.publish({ kind: 'exchange.open', exchange: 14 });
  const late = fakePage();
  feed.subscribe(late.res);
  t.same(seqs(page.writes.at(-1)!), [14], 'a new page first flushes the waiting events to the open ones');
  t.same(
    seqs(late.writes.slice(1).join('')),
    Array.from({ length: 14 }, (_, i) => i + 1),
    'the new page: history',
  );
  feed.publish({ kind: 'exchange.open', exchange: 15 });
  feed.close();
  t.same(seqs(page.writes.at(-1)!), [15], 'close writes what was waiting');
  t.ok(page.ended() && late.ended(), 'and ends every stream');
  t.same(seqs(late.writes.at(-1)!), [15]);
});

/** A state as the KDC publishes it: `n` sessions open, `n` certificates active. */
function stateOf(n: number): ConsoleState {
  return {
    view: 'kdc',
    sessions: Array.from({ length: n }, (_, i) => ({ name: `u${i}`, role: 'client', exchange: i + 1 })),
    certs: Array.from({ length: n }, (_, i) => ({
      serial: `${i}`,
      name: `u${i}`,
      role: 'client',
      status: 'active',
    })),
    keys: [],
    crlNumber: 7,
    truncated: false,
    counts: { certsActive: n, certsRevoked: 0, keysActive: 0, keysRevoked: 0, keysExpired: 0 },
  };
}

t.test('a page opened after the history passed the last state is sent that state first', async (t) => {
  const feed = new ConsoleFeed('kdc', () => 0);
  feed.publish({ kind: 'state', state: stateOf(3) });
  // The state changes no more: only exchanges, more than the history holds.
  for (let i = 0; i < HISTORY_LIMIT + 10; i++) feed.publish({ kind: 'exchange.open', exchange: i + 1 });
  const page = fakePage();
  feed.subscribe(page.res);
  const sent = parseSse(page.writes.join(''));
  t.same(
    sent.slice(0, 2).map((e) => e.event),
    ['hello', 'state'],
    'the state right after the hello',
  );
  t.equal(sent.length, 2 + HISTORY_LIMIT, 'then the whole history');
  const model = new Model();
  readInto(model, page.writes.join(''));
  const shown = model.stateAt(model.events.length - 1);
  t.equal(shown?.sessions.length, 3, "the panel's sessions");
  t.equal(shown?.counts.certsActive, 3, "the panel's certificates");
  t.equal(shown?.crlNumber, 7);
  t.equal(model.events.length, 1 + HISTORY_LIMIT, 'the state and every event of the history on the timeline');

  // A state the history still holds is not sent twice.
  feed.publish({ kind: 'state', state: stateOf(4) });
  const again = fakePage();
  feed.subscribe(again.res);
  t.notOk(
    parseSse(again.writes.join('')).some((e) => e.event === 'state'),
    'no separate state when the history has it',
  );
  const model2 = new Model();
  readInto(model2, again.writes.join(''));
  t.equal(model2.stateAt(model2.events.length - 1)?.counts.certsActive, 4);
});

t.test('a page that reconnects gets what followed its last event, or sees the hole', async (t) => {
  const feed = new ConsoleFeed('kdc', () => 0);
  feed.publish({ kind: 'state', state: stateOf(2) });
  for (let i = 0; i < 10; i++) feed.publish({ kind: 'exchange.open', exchange: i + 1 });
  const first = fakePage();
  feed.subscribe(first.res);
  const model = new Model();
  readInto(model, first.writes.join(''));
  const lastId = parseSse(first.writes.join('')).at(-1)!.id!;
  t.match(lastId, new RegExp(`^${feed.instance}-11$`), "the event ids name the feed's process");

  // Its stream is cut (a backlog); a few events later the browser reconnects with Last-Event-ID.
  for (let i = 0; i < 5; i++) feed.publish({ kind: 'exchange.open', exchange: 11 + i });
  const back = fakePage();
  feed.subscribe(back.res, lastId);
  t.same(seqs(back.writes.join('')), [12, 13, 14, 15, 16], 'only what followed, while the feed holds it');
  readInto(model, back.writes.join(''));
  t.equal(model.events.length, 16, 'every event once');
  t.notOk(
    model.events.some((e) => e.kind === 'missed'),
    'no hole',
  );

  // Cut again; this time more follows than the feed holds.
  const seen = `${feed.instance}-16`;
  feed.publish({ kind: 'state', state: stateOf(5) });
  for (let i = 0; i < 2 * HISTORY_LIMIT + 7; i++) feed.publish({ kind: 'exchange.open', exchange: 100 + i });
  const late = fakePage();
  feed.subscribe(late.res, seen);
  const sent = parseSse(late.writes.join(''));
  t.same(
    sent.slice(0, 2).map((e) => e.event),
    ['hello', 'state'],
    'the state it missed, then the history',
  );
  t.equal(sent.length, 2 + HISTORY_LIMIT);
  readInto(model, late.writes.join(''));
  const missed = model.events.filter((e) => e.kind === 'missed');
  t.equal(missed.length, 1, 'one row for the hole');
  // 17 .. the oldest held: less the state, which it was sent.
  const expected = feed.history[0]!.seq - 17 - 1;
  t.match(missed[0], { kind: 'missed', count: expected, seq: 17 }, 'N events missed');
  t.equal(model.stateAt(model.events.length - 1)?.counts.certsActive, 5, 'the panel is current');

  // An id of another process (the KDC restarted on the same port): the whole history.
  const other = fakePage();
  feed.subscribe(other.res, `0123456789abcdef-${feed.history.at(-1)!.seq - 3}`);
  t.same(
    parseSse(other.writes.join('')).map((e) => e.event),
    ['hello', 'state', ...Array<string>(HISTORY_LIMIT).fill('message')],
    'a stranger id: the state and the whole history',
  );
  feed.close();
});
