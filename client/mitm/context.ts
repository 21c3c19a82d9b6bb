// The state of one running Mallory shared by all her victim connections: the options, the event stream
// the CLI watches, the verdict, the loot, her own identity and the side tasks (her own sessions, a
// replay on a fresh connection) that must finish before the report is written.
import type { KeyObject } from 'node:crypto';
import type { DefenceName } from '../../shared/defences.js';
import type { HandshakeMode } from '../../shared/protocol/handshake.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import type { ClientSession } from '../session.js';
import type { AttackModule } from './attack.js';
import type { Link } from './link.js';
import { Loot, type StolenKey, type StolenPlaintext } from './loot.js';
import { Verdict, type Finding } from './verdict.js';

/** c2s/s2c: a frame from the client/KDC that Mallory handled; m2c/m2s: one Mallory sent herself. */
export type EventDirection = 'c2s' | 's2c' | 'm2c' | 'm2s' | 'side';

export type FrameAction =
  | 'forward'
  | 'modify'
  | 'drop'
  | 'hold'
  | 'inject'
  | 'replay'
  | 'reflect'
  | 'reorder'
  | 're-encrypt'
  | 'terminate'
  | 'close'
  | 'session'
  | 'refused'
  | 'accepted';

export interface FrameEvent {
  /** Milliseconds since Mallory started. */
  t: number;
  conn: number;
  dir: EventDirection;
  type: string;
  size: number;
  action: FrameAction;
  note?: string;
}

export type MitmEvent =
  | ({ event: 'frame' } & FrameEvent)
  | { event: 'info'; conn: number; text: string }
  | ({ event: 'finding' } & Finding)
  | { event: 'stolen-key'; conn: number; serial: string; key: string; fingerprint: string; source: string }
  | { event: 'plaintext'; conn: number; dir: string; type: string; text: string };

/** A client identity Mallory owns (an enrolled insider, or a revoked one): `kds mitm --identity <home>`. */
export interface MitmIdentity {
  name: string;
  privateKey: KeyObject;
  certPem: string;
  cert: ParsedCertificate;
  caPem: string;
}

export interface MitmSettings {
  /** ws://host:port/kds of the real KDC. */
  target: string;
  identity?: MitmIdentity;
  /** A peer name for attacks that create keys (default: learned from the victim). */
  peer?: string;
  /** How long reorder/drop hold a record waiting for the next one (ms). */
  holdMs: number;
}

/**
 * Mallory's live console (`kds mitm --console`, client/mitm/console.ts) watches her through this;
 * absent unless the console was asked for, when every call below is one test of an absent field.
 * It is told names, sizes, codes and verdicts only: stolen keys and decrypted text stay in the report.
 */
export interface MitmWatch {
  /** A victim connected (the proxy made its link). */
  opened(link: Link): void;
  /** A frame event as the report records it, with the error code the frame or close carried. */
  frame(e: FrameEvent, code?: string): void;
  /** Mallory holds the session keys on both sides of this victim's (insecure) session. */
  intercepted(link: Link): void;
  /** Both of the connection's sockets are closed and it has been judged. */
  ended(link: Link): void;
  finding(f: Finding): void;
  stolenKey(k: { serial: string; from?: string; to?: string; source: string; conn: number }): void;
  decrypted(p: { conn: number; dir: 'c2s' | 's2c'; type: string }): void;
}

/** Most frame events kept for the report (the watch output shows them all). */
const MAX_EVENTS = 20_000;

export class MitmContext {
  readonly startedAt = Date.now();
  readonly events: FrameEvent[] = [];
  readonly verdict: Verdict;
  readonly loot: Loot;
  /** Handshake modes the victims used (report: secure vs insecure run). */
  readonly modes = new Set<HandshakeMode>();
  /** Set once Mallory has held session keys of a victim: only then may anything be stolen. */
  terminatedInsecure = false;
  connections = 0;
  #tasks = new Set<Promise<unknown>>();
  #emit: (e: MitmEvent) => void;
  /** Per-attack scratch space (e.g. a forged CA from prepare()). */
  readonly scratch = new Map<string, unknown>();
  /** The live console's watcher, when one runs (set by the proxy before any connection). */
  watch: MitmWatch | undefined;

  constructor(
    readonly attack: AttackModule,
    readonly settings: MitmSettings,
    emit: (e: MitmEvent) => void,
  ) {
    this.#emit = emit;
    this.verdict = new Verdict((f) => {
      this.#emit({ event: 'finding', ...f });
      this.watch?.finding(f);
    });
    this.loot = new Loot({
      onKey: (k: StolenKey) => {
        this.#emit({
          event: 'stolen-key',
          conn: k.conn,
          serial: k.serial,
          key: k.key.toString('hex'),
          fingerprint: k.fingerprint,
          source: k.source,
        });
        this.watch?.stolenKey({
          serial: k.serial,
          source: k.source,
          conn: k.conn,
          ...(k.from === undefined ? {} : { from: k.from }),
          ...(k.to === undefined ? {} : { to: k.to }),
        });
        // A stolen key decides the attack, whatever else happened (docs/attacks.md "How Mallory judges"),
        // once Mallory holds a victim's session keys: what the report calls stolen (client/mitm/report.ts).
        if (this.terminatedInsecure)
          this.succeed(
            k.conn,
            `stole key ${k.serial}${k.from === undefined ? '' : ` from ${k.from}`}${k.to === undefined ? '' : ` to ${k.to}`} (${k.source})`,
          );
      },
      onPlaintext: (p: StolenPlaintext) => {
        this.#emit({ event: 'plaintext', ...p });
        this.watch?.decrypted({ conn: p.conn, dir: p.dir, type: p.type });
      },
    });
  }

  /** `code`: the error code the frame (an alert) or the close (its reason) carried, for the console. */
  record(e: Omit<FrameEvent, 't'>, code?: string): void {
    const event: FrameEvent = { t: Date.now() - this.startedAt, ...e };
    if (this.events.length < MAX_EVENTS) this.events.push(event);
    this.#emit({ event: 'frame', ...event });
    this.watch?.frame(event, code);
  }

  info(conn: number, text: string): void {
    this.#emit({ event: 'info', conn, text });
  }

  succeed(conn: number, detail: string): void {
    this.verdict.add({ outcome: 'succeeded', conn, detail });
  }

  fail(conn: number, defence: DefenceName, detail: string, code?: string): void {
    this.verdict.add({ outcome: 'failed', conn, detail, defence, ...(code === undefined ? {} : { code }) });
  }

  inconclusive(conn: number, detail: string): void {
    this.verdict.add({ outcome: 'inconclusive', conn, detail });
  }

  /** Track a side task; its failure is reported, never thrown into the proxy. */
  task(work: () => Promise<void>): void {
    const p = work().catch((err: unknown) =>
      this.info(0, `side task failed: ${(err as Error)?.message ?? String(err)}`),
    );
    this.#tasks.add(p);
    void p.finally(() => this.#tasks.delete(p));
  }

  /** Wait for the side tasks (bounded: a stuck task must not keep Mallory from reporting). */
  async settle(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#tasks.size > 0 && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.#tasks]),
        new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
    }
  }

  /**
   * Mallory's own session with the real KDC, under her identity: 'auth' presents her certificate,
   * 'insecure' only claims a name (`as`, default her identity's name).
   */
  async openOwnSession(mode: 'auth' | 'insecure', as?: string, onTicket?: OnTicket): Promise<ClientSession> {
    const { openSession } = await import('../session.js');
    const id = this.settings.identity;
    if (mode === 'auth') {
      if (id === undefined) throw new Error('no identity');
      return openSession({
        server: this.settings.target,
        mode: 'auth',
        credentials: { privateKey: id.privateKey, certPem: id.certPem },
        caCertPem: id.caPem,
        connectTimeoutMs: 10_000,
        requestTimeoutMs: 10_000,
        ...(onTicket === undefined ? {} : { onTicket }),
      });
    }
    const name = as ?? id?.name;
    return openSession({
      server: this.settings.target,
      mode: 'insecure',
      ...(name === undefined ? {} : { insecureName: name }),
      connectTimeoutMs: 10_000,
      requestTimeoutMs: 10_000,
    });
  }

  /** Mallory's own resumed session (mode 'resume'), with a ticket and psk one of her sessions was given. */
  async resumeOwnSession(resumption: { ticket: Buffer; psk: Buffer }): Promise<ClientSession> {
    const { openSession } = await import('../session.js');
    const id = this.settings.identity;
    if (id === undefined) throw new Error('no identity');
    return openSession({
      server: this.settings.target,
      mode: 'resume',
      resumption,
      credentials: { privateKey: id.privateKey, certPem: id.certPem },
      caCertPem: id.caPem,
      connectTimeoutMs: 10_000,
      requestTimeoutMs: 10_000,
    });
  }
}

/** Receives the resumption ticket the KDC hands one of Mallory's own sessions. */
type OnTicket = (t: { ticket: Buffer; psk: Buffer; expiresAt: number }) => void;
