// The KDC's side of the console: turns what a connection reports (server/kdc/connection.ts
// ConnectionWatch) into the feed's arrows. A connection's handshake frames wait until the handshake
// ends, because only then is it known on whose lifeline they belong: the authenticated name, the
// enrolling newcomer, or a peer that never proved who it is (drawn as Mallory when the failure is one
// an attacker in the middle would cause).
//
// A teacher watching a KDC under load (hundreds of handshakes a second) cannot read hundreds of
// diagrams a second, and drawing them cost the KDC a tenth of its CPU per handshake. So exchanges are
// drawn in full up to DRAWN_PER_SECOND (a token bucket: a demo's bursts are drawn whole); beyond it an
// exchange is only counted, and the count reaches the page as one `undrawn` row ("N more exchanges
// not drawn") on each state tick of the console (kdc-console.ts). A refused exchange is always drawn:
// it is the news.
import { defenceForCode } from '../../shared/defences.js';
import { isErrorCode, type KdsError } from '../../shared/errors.js';
import { KDC_LANE, MALLORY_LANE, UNKNOWN_LANE, type MessageEvent } from '../../shared/console/events.js';
import { performance } from 'node:perf_hooks';
import { decodeFrame } from '../../shared/protocol/messages.js';
import type { Connection, ConnectionWatch } from '../kdc/connection.js';
import type { ConsoleFeed } from '../../io/console/feed.js';

/** The lane of a session that is enrolling: it has no name yet. */
const ENROLLING_LANE = 'newcomer';

/** Exchanges drawn in full per second, on average; the rest are counted. */
export const DRAWN_PER_SECOND = 10;
/** Exchanges drawn in full in a burst (the bucket's size): a demo step's handshakes are drawn whole. */
export const DRAWN_BURST = 30;

type Arrow = Omit<MessageEvent, 'seq' | 'at' | 'from' | 'to' | 'kind'> & { dir: 'in' | 'out' };
/**
 * An arrow held until the handshake ends. `raw`: the peer's second handshake frame, until it is known
 * whether it was its finish or an alert in its place (decoded only for a handshake that failed).
 */
type PendingArrow = Arrow & { raw?: Buffer };

interface Exchange {
  n: number;
  lane: string | undefined;
  pending: PendingArrow[];
  refused: boolean;
  mode: string | undefined;
  /** The name in the certificate the peer presented, not verified: the lane of a refused handshake. */
  claimedName: string | undefined;
  /** False while the exchange is only counted (over the drawing budget, and not refused). */
  drawn: boolean;
}

/** For the console only: whether a handshake-phase frame is the peer's alert rather than its finish. */
function isAlertFrame(frame: Buffer): boolean {
  try {
    return decodeFrame(frame).t === 'alert';
  } catch {
    return false;
  }
}

/** What each handshake message carries, in the words of docs/protocol.md. */
function stepOf(name: string, mode: string | undefined): string | undefined {
  switch (name) {
    case 'client_hello':
      return mode === 'resume'
        ? 'protocol version, DH groups offered, DH share, nonce, session ticket and binder'
        : 'protocol version, DH groups offered, DH share, nonce';
    case 'server_hello':
      // A resumed session proves itself with the ticket's secret: the KDC sends no certificate.
      return mode === 'insecure'
        ? 'DH share and Finished MAC; NO certificate, NO signature (insecure)'
        : mode === 'resume'
          ? "DH share and Finished MAC keyed by the ticket's secret; no certificate (resumption)"
          : 'DH share, KDC certificate, RSA-PSS signature over the transcript, Finished MAC';
    case 'client_finish':
      return mode === 'auth'
        ? 'client certificate, RSA-PSS signature over the transcript, Finished MAC'
        : mode === 'insecure'
          ? 'a claimed name, no certificate, no signature; Finished MAC'
          : mode === 'resume'
            ? "Finished MAC keyed by the ticket's secret; no certificate (resumption)"
            : mode === 'enroll'
              ? 'anonymous (enrollment); Finished MAC'
              : 'Finished MAC';
    case 'ready':
      return 'session keys confirmed: everything from here is AES-256-GCM';
    default:
      return undefined;
  }
}

/**
 * What the connection knows of a handshake before it succeeds: the mode its hello asked for (so a
 * refused one is described as what it tried to be, not as an enrollment), and the name in the
 * certificate it presented. A successful handshake overwrites both with what was proven.
 */
function learn(x: Exchange, conn: Connection): void {
  const { mode, name } = conn.claimed;
  x.mode ??= mode;
  x.claimedName ??= name;
}

/** A presented but unproven name, marked as the KDC's log marks it: `bob?`. */
function claimedLane(x: Exchange): string | undefined {
  return x.claimedName === undefined || x.claimedName === '' ? undefined : `${x.claimedName}?`;
}

export class KdcWatch implements ConnectionWatch {
  readonly #exchanges = new WeakMap<Connection, Exchange>();
  #next = 0;
  /** Set when something may have changed the state panel (a request was answered, a session came or went). */
  dirty = true;

  readonly #feed: ConsoleFeed;
  readonly #now: () => number;
  /** The drawing budget: exchanges that may still be drawn in full, refilled over time. */
  #tokens = DRAWN_BURST;
  #refilledAt: number;
  /** Exchanges only counted since the last `undrawn` row, and since the start. */
  #undrawn = 0;
  #undrawnTotal = 0;

  /** `now`: milliseconds, for the drawing budget (a test's clock). */
  constructor(feed: ConsoleFeed, now: () => number = () => performance.now()) {
    this.#feed = feed;
    this.#now = now;
    this.#refilledAt = now();
  }

  /** The exchange number of a connection (0 when the console never saw it open). */
  exchangeOf(conn: Connection): number {
    return this.#exchanges.get(conn)?.n ?? 0;
  }

  opened(conn: Connection): void {
    const n = ++this.#next;
    const drawn = this.#takeToken();
    this.#exchanges.set(conn, {
      n,
      lane: undefined,
      pending: [],
      refused: false,
      mode: undefined,
      claimedName: undefined,
      drawn,
    });
    if (drawn) this.#feed.publish({ kind: 'exchange.open', exchange: n });
  }

  /**
   * Publish the count of exchanges not drawn since the last call, if any (called on the console's state
   * tick: one row for a spell of load, not one per exchange).
   */
  publishUndrawn(): void {
    if (this.#undrawn === 0) return;
    this.#feed.publish({
      kind: 'undrawn',
      count: this.#undrawn,
      total: this.#undrawnTotal,
      perSecond: DRAWN_PER_SECOND,
    });
    this.#undrawn = 0;
  }

  #takeToken(): boolean {
    const now = this.#now();
    this.#tokens = Math.min(DRAWN_BURST, this.#tokens + ((now - this.#refilledAt) * DRAWN_PER_SECOND) / 1000);
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  frame(
    conn: Connection,
    dir: 'in' | 'out',
    name: string,
    bytes: number,
    sealed: boolean,
    code?: string,
  ): void {
    const x = this.#exchanges.get(conn);
    if (x === undefined) return;
    if (sealed && name.endsWith(' ok')) this.dirty = true;
    // A session that is only counted draws nothing more, unless it is refused (then from that point).
    if (!x.drawn && x.lane !== undefined) return;
    if (x.mode === undefined) learn(x, conn);
    const arrow: Arrow = { exchange: x.n, name, bytes, sealed, dir };
    if (code !== undefined) arrow.code = code;
    if (x.lane === undefined) x.pending.push(arrow);
    else this.#draw(x.lane, arrow, x.mode);
  }

  finish(conn: Connection, frame: Buffer): void {
    const x = this.#exchanges.get(conn);
    if (x === undefined) return;
    if (x.mode === undefined) learn(x, conn);
    x.pending.push({
      exchange: x.n,
      name: 'client_finish',
      bytes: frame.length,
      sealed: false,
      dir: 'in',
      raw: frame,
    });
  }

  established(conn: Connection, group: string): void {
    const x = this.#exchanges.get(conn);
    if (x === undefined) return;
    const { name, role } = conn.identity;
    x.mode = conn.mode;
    x.lane = role === 'anonymous' ? ENROLLING_LANE : name === '' ? UNKNOWN_LANE : name;
    this.dirty = true;
    if (!x.drawn) {
      x.pending = [];
      return;
    }
    this.#flush(x, true);
    this.#feed.publish({ kind: 'established', exchange: x.n, party: x.lane, role, group });
  }

  failed(conn: Connection, err: KdsError, established: boolean): void {
    const x = this.#exchanges.get(conn);
    if (x === undefined || x.refused) return;
    // A shutdown is not a refusal: nothing to mark.
    if (err.code === 'unavailable' && err.details?.remote !== true) return;
    learn(x, conn);
    this.#refuse(x, err.code, err.details?.remote === true, established);
  }

  closed(conn: Connection, code: number, reason: string): void {
    const x = this.#exchanges.get(conn);
    if (x === undefined) return;
    // A peer that refused our handshake closes with the code in the reason (client/session.ts): the
    // only news the KDC gets of a client that found the server's signature wrong.
    if (x.lane === undefined) learn(x, conn);
    if (x.lane === undefined && !x.refused && code >= 4000 && isErrorCode(reason)) {
      this.#refuse(x, reason, true, false);
    }
    this.dirty = true;
    if (!x.drawn) {
      // Counted when it ends: one that was refused meanwhile was drawn after all.
      this.#undrawn += 1;
      this.#undrawnTotal += 1;
      return;
    }
    if (x.lane === undefined) {
      x.lane = claimedLane(x) ?? UNKNOWN_LANE;
      this.#flush(x, false);
    }
    this.#feed.publish({ kind: 'exchange.close', exchange: x.n });
  }

  #refuse(x: Exchange, code: string, byPeer: boolean, established: boolean): void {
    x.refused = true;
    if (!x.drawn) {
      // Over the budget, but a refusal is always drawn: from its opening, with the frames still known.
      x.drawn = true;
      this.#feed.publish({ kind: 'exchange.open', exchange: x.n });
    }
    // The table's wording is the client's (shared/defences.ts): a refusal by the KDC is "remote" to it.
    const phase = established ? 'session' : 'handshake';
    const verdict = defenceForCode(code, {
      ...(established ? {} : { phase: 'handshake' as const }),
      ...(byPeer ? {} : { remote: true }),
    });
    const possibleMitm = verdict?.possibleMitm === true;
    if (x.lane === undefined) {
      // A failure an attacker in the middle would cause is drawn as her, whatever name was presented.
      x.lane = possibleMitm ? MALLORY_LANE : (claimedLane(x) ?? UNKNOWN_LANE);
      this.#flush(x, false);
    }
    this.#feed.publish({
      kind: 'refused',
      exchange: x.n,
      by: byPeer ? x.lane : KDC_LANE,
      peer: byPeer ? KDC_LANE : x.lane,
      code,
      ...(verdict === undefined ? {} : { defence: verdict.defence, explanation: verdict.explanation }),
      possibleMitm,
      phase,
    });
  }

  /** Draw the frames held back until the handshake ended; `completed`: it ended in a session. */
  #flush(x: Exchange, completed: boolean): void {
    const lane = x.lane!;
    for (const { raw, ...arrow } of x.pending) {
      // Only a handshake that did not complete can have had an alert in place of the finish.
      if (raw !== undefined && !completed && isAlertFrame(raw)) arrow.name = 'alert';
      this.#draw(lane, arrow, x.mode);
    }
    x.pending = [];
  }

  #draw(lane: string, arrow: Arrow, mode: string | undefined): void {
    const { dir, ...rest } = arrow;
    const step = stepOf(arrow.name, mode);
    this.#feed.publish({
      kind: 'message',
      ...rest,
      from: dir === 'in' ? lane : KDC_LANE,
      to: dir === 'in' ? KDC_LANE : lane,
      ...(step === undefined ? {} : { step }),
    });
  }
}
