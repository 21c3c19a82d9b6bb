// The console's feed: what `kds server start --console` (and `kds mitm --console`) sends to the page,
// one JSON object per Server-Sent Event. It is a projection made for drawing, never a copy of protocol
// data: names, serials, sizes, codes and the defence that refused something. No key bytes, tokens,
// passphrases, signatures or message text ever enter it (docs/console.md "What the page never sees").
// Pure types: the page (web/console), the KDC (server/console) and Mallory (client/mitm/console.ts)
// all import them.

/** A lifeline: a party's name, `kdc`, `mallory`, or `?` for a peer that never said who it is. */
export type Lifeline = string;

export const KDC_LANE = 'kdc';
export const MALLORY_LANE = 'mallory';
export const UNKNOWN_LANE = '?';

interface Base {
  /** Position in the feed (1, 2, ...): the timeline steps through it. */
  seq: number;
  /** Epoch milliseconds. */
  at: number;
}

/** An arrow of the sequence diagram. */
export interface MessageEvent extends Base {
  kind: 'message';
  /** The exchange (one connection) it belongs to. */
  exchange: number;
  from: Lifeline;
  to: Lifeline;
  /** client_hello, server_hello, client_finish, alert, or the message type inside a record (key.create). */
  name: string;
  /** Size on the wire. */
  bytes: number;
  /** True inside an AES-256-GCM record; false for what travels in clear (hellos, finish, alerts). */
  sealed: boolean;
  /** The handshake step it carries, in words ("DH share + nonce", "certificate + RSA-PSS signature + Finished MAC"). */
  step?: string;
  /** An error code it carries (an alert, an error reply, a session.closing push). */
  code?: string;
  /** What Mallory did to it (her own console only). */
  action?: MalloryAction;
}

export interface ExchangeOpenEvent extends Base {
  kind: 'exchange.open';
  exchange: number;
}

export interface EstablishedEvent extends Base {
  kind: 'established';
  exchange: number;
  party: Lifeline;
  /** client, admin, anonymous (enrollment), insecure (MITM lab control mode: nothing authenticated). */
  role: string;
  group: string;
}

/** A refused exchange: the marked arrow names the code and the defence, in the CLI's words. */
export interface RefusedEvent extends Base {
  kind: 'refused';
  exchange: number;
  /** Who refused: the lane the marked arrow starts from. */
  by: Lifeline;
  /** The other end of the marked arrow. */
  peer: Lifeline;
  code: string;
  /** shared/defences.ts: the defence's name and the one-line explanation the CLI prints. */
  defence?: string;
  explanation?: string;
  /** The failure is what an attacker in the middle would cause. */
  possibleMitm: boolean;
  phase: 'handshake' | 'session';
}

export interface ExchangeCloseEvent extends Base {
  kind: 'exchange.close';
  exchange: number;
}

/** Something the KDC's state shows changed: a revocation (with its cascade), a CRL, a key. */
export interface StateChangeEvent extends Base {
  kind: 'change';
  /** cert.revoked, key.revoked, key.created, key.expired, crl.published, cert.issued */
  what: string;
  subject: string;
  detail: string;
}

/**
 * Exchanges the KDC ran but the console did not draw, to keep its cost and the picture in bounds under
 * load (server/console/kdc-watch.ts): one row for a spell of them. Refused exchanges are always drawn.
 */
export interface UndrawnEvent extends Base {
  kind: 'undrawn';
  /** Exchanges not drawn since the previous such row. */
  count: number;
  /** Since the console started. */
  total: number;
  /** The drawing budget: exchanges drawn in full per second, on average. */
  perSecond: number;
}

/**
 * What Mallory did with a frame, in her own view: passed it on unchanged, changed it, kept it from its
 * addressee (dropped, held back, kept because she answers it herself), sent one of her own, sent an
 * old one again, sent one back to its sender, sent records out of order, or sealed a record again with
 * the keys of the other session (the insecure control mode), or saw a close.
 */
export type MalloryAction =
  | 'forwarded'
  | 'changed'
  | 'dropped'
  | 'held'
  | 'kept'
  | 'injected'
  | 'replayed'
  | 'reflected'
  | 'reordered'
  | 're-encrypted'
  | 'closed';

/** Mallory's own view (`kds mitm --console`): her attack and its outcome. */
export interface AttackEvent extends Base {
  kind: 'attack';
  name: string;
  /** running, defended, succeeded, inconclusive */
  outcome: string;
  detail: string;
  /** The victim connection the finding is about (absent: the attack as a whole, or her own sessions). */
  exchange?: number;
  /** The defence that stopped it (outcome `defended`). */
  defence?: string;
  /** The error code that showed the defence at work. */
  code?: string;
  /** The attack's end: its verdict over every connection. */
  final?: boolean;
}

/**
 * Made by the page, never sent: events of the same process the page never received (its stream was cut
 * under a backlog, and the feed no longer held them when it reconnected). `seq` is the first missed.
 */
export interface MissedEvent extends Base {
  kind: 'missed';
  count: number;
}

export interface StateEvent extends Base {
  kind: 'state';
  state: ConsoleState;
}

export type ConsoleEvent =
  | MessageEvent
  | ExchangeOpenEvent
  | EstablishedEvent
  | RefusedEvent
  | ExchangeCloseEvent
  | StateChangeEvent
  | UndrawnEvent
  | AttackEvent
  | MissedEvent
  | StateEvent;

export interface CertRow {
  serial: string;
  name: string;
  role: string;
  status: string;
}

export interface KeyRow {
  serial: string;
  owner: string;
  peer: string;
  /** active, revoked, expired, ... (store states) */
  state: string;
  reason?: string;
}

export interface ConsoleState {
  /** Whose view: `kdc` or `mallory`. */
  view: string;
  sessions: { name: string; role: string; exchange: number }[];
  certs: CertRow[];
  keys: KeyRow[];
  crlNumber: number;
  /** True when the lists were cut to their limit (the counts stay exact). */
  truncated: boolean;
  /** MITM lab only: the defences this KDC runs with switched off (`--lab-disable`); absent otherwise. */
  labDisabled?: string[];
  /** Mallory's view only: the attack running and where it stands. */
  attack?: { name: string; outcome: string; summary: string; defences: string[]; stolenKeys: number };
  counts: {
    /** Sessions open, when the list was cut to its limit (a KDC with thousands open). */
    sessions?: number;
    certsActive: number;
    certsRevoked: number;
    keysActive: number;
    keysRevoked: number;
    keysExpired: number;
  };
}
