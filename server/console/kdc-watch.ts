// The KDC's side of the console: turns what a connection reports (server/kdc/connection.ts
// ConnectionWatch) into the feed's arrows. A connection's handshake frames wait until the handshake
// ends, because only then is it known on whose lifeline they belong: the authenticated name, the
// enrolling newcomer, or a peer that never proved who it is (drawn as Mallory when the failure is one
// an attacker in the middle would cause).
import { defenceForCode } from '../../shared/defences.js';
import { isErrorCode, type KdsError } from '../../shared/errors.js';
import { KDC_LANE, MALLORY_LANE, UNKNOWN_LANE, type MessageEvent } from '../../shared/console/events.js';
import type { Connection, ConnectionWatch } from '../kdc/connection.js';
import type { ConsoleFeed } from '../../io/console/feed.js';

/** The lane of a session that is enrolling: it has no name yet. */
const ENROLLING_LANE = 'newcomer';

type Arrow = Omit<MessageEvent, 'seq' | 'at' | 'from' | 'to' | 'kind'> & { dir: 'in' | 'out' };

interface Exchange {
  n: number;
  lane: string | undefined;
  pending: Arrow[];
  refused: boolean;
  mode: string | undefined;
}

/** What each handshake message carries, in the words of docs/protocol.md. */
function stepOf(name: string, mode: string | undefined): string | undefined {
  switch (name) {
    case 'client_hello':
      return 'protocol version, DH groups offered, DH share, nonce';
    case 'server_hello':
      return mode === 'insecure'
        ? 'DH share and Finished MAC; NO certificate, NO signature (insecure)'
        : 'DH share, KDC certificate, RSA-PSS signature over the transcript, Finished MAC';
    case 'client_finish':
      return mode === 'auth'
        ? 'client certificate, RSA-PSS signature over the transcript, Finished MAC'
        : mode === 'insecure'
          ? 'a claimed name, no certificate, no signature; Finished MAC'
          : 'anonymous (enrollment); Finished MAC';
    case 'ready':
      return 'session keys confirmed: everything from here is AES-256-GCM';
    default:
      return undefined;
  }
}

export class KdcWatch implements ConnectionWatch {
  readonly #exchanges = new WeakMap<Connection, Exchange>();
  #next = 0;
  /** Set when something may have changed the state panel (a request was answered, a session came or went). */
  dirty = true;

  constructor(private readonly feed: ConsoleFeed) {}

  /** The exchange number of a connection (0 when the console never saw it open). */
  exchangeOf(conn: Connection): number {
    return this.#exchanges.get(conn)?.n ?? 0;
  }

  opened(conn: Connection): void {
    const n = ++this.#next;
    this.#exchanges.set(conn, { n, lane: undefined, pending: [], refused: false, mode: undefined });
    this.feed.publish({ kind: 'exchange.open', exchange: n });
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
    if (x.mode === undefined && conn.mode !== undefined) x.mode = conn.mode;
    const arrow: Arrow = { exchange: x.n, name, bytes, sealed, dir };
    if (code !== undefined) arrow.code = code;
    if (sealed && name.endsWith(' ok')) this.dirty = true;
    if (x.lane === undefined) x.pending.push(arrow);
    else this.#draw(x.lane, arrow, x.mode);
  }

  established(conn: Connection, group: string): void {
    const x = this.#exchanges.get(conn);
    if (x === undefined) return;
    const { name, role } = conn.identity;
    x.mode = conn.mode;
    x.lane = role === 'anonymous' ? ENROLLING_LANE : name === '' ? UNKNOWN_LANE : name;
    this.#flush(x);
    this.feed.publish({ kind: 'established', exchange: x.n, party: x.lane, role, group });
    this.dirty = true;
  }

  failed(conn: Connection, err: KdsError, established: boolean): void {
    const x = this.#exchanges.get(conn);
    if (x === undefined || x.refused) return;
    // A shutdown is not a refusal: nothing to mark.
    if (err.code === 'unavailable' && err.details?.remote !== true) return;
    this.#refuse(x, err.code, err.details?.remote === true, established);
  }

  closed(conn: Connection, code: number, reason: string): void {
    const x = this.#exchanges.get(conn);
    if (x === undefined) return;
    // A peer that refused our handshake closes with the code in the reason (client/session.ts): the
    // only news the KDC gets of a client that found the server's signature wrong.
    if (x.lane === undefined && !x.refused && code >= 4000 && isErrorCode(reason)) {
      this.#refuse(x, reason, true, false);
    }
    if (x.lane === undefined) {
      x.lane = UNKNOWN_LANE;
      this.#flush(x);
    }
    this.feed.publish({ kind: 'exchange.close', exchange: x.n });
    this.dirty = true;
  }

  #refuse(x: Exchange, code: string, byPeer: boolean, established: boolean): void {
    x.refused = true;
    // The table's wording is the client's (shared/defences.ts): a refusal by the KDC is "remote" to it.
    const phase = established ? 'session' : 'handshake';
    const verdict = defenceForCode(code, {
      ...(established ? {} : { phase: 'handshake' as const }),
      ...(byPeer ? {} : { remote: true }),
    });
    const possibleMitm = verdict?.possibleMitm === true;
    if (x.lane === undefined) {
      x.lane = possibleMitm ? MALLORY_LANE : UNKNOWN_LANE;
      this.#flush(x);
    }
    this.feed.publish({
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

  #flush(x: Exchange): void {
    const lane = x.lane!;
    for (const arrow of x.pending) this.#draw(lane, arrow, x.mode);
    x.pending = [];
  }

  #draw(lane: string, arrow: Arrow, mode: string | undefined): void {
    const { dir, ...rest } = arrow;
    const step = stepOf(arrow.name, mode);
    this.feed.publish({
      kind: 'message',
      ...rest,
      from: dir === 'in' ? lane : KDC_LANE,
      to: dir === 'in' ? KDC_LANE : lane,
      ...(step === undefined ? {} : { step }),
    });
  }
}
