// Mallory's live console (`kds mitm --console`): the same page as the KDC's, drawn from where she
// sits. Lifelines: the victim (named once its client_finish shows who it is), Mallory, the KDC. Every
// frame she handled is an arrow labelled with what she did to it (forwarded, changed, dropped, kept,
// injected, replayed, ...); a frame she kept ends on her lifeline, one she made starts there. Her
// attack's findings are rows with their outcome, a refusal is the red crossed arrow from whoever
// refused, naming the code and the defence in the CLI's words (shared/defences.ts).
//
// What enters the feed: names, sizes, codes, the watch line's public notes, verdicts, the serials of
// keys she stole. Never key bytes (not even a stolen key's), never decrypted text: those stay in her
// report (client/mitm/report.ts), which only the operator reads.
import { defenceForCode } from '../../shared/defences.js';
import {
  KDC_LANE,
  MALLORY_LANE,
  UNKNOWN_LANE,
  type ConsoleState,
  type KeyRow,
  type MalloryAction,
  type MessageEvent,
} from '../../shared/console/events.js';
import type { ConsoleFeed } from '../../io/console/feed.js';
import type { ConsoleRoutes } from '../../io/console/http.js';
import { openConsole } from '../../io/console/open.js';
import type { AttackModule } from './attack.js';
import type { FrameAction, FrameEvent, MitmWatch } from './context.js';
import type { Link } from './link.js';
import type { MitmReport } from './report.js';
import type { Finding } from './verdict.js';

/** Stolen keys listed in the panel (the count stays exact). */
const STOLEN_ROWS = 200;

const ACTIONS: Record<FrameAction, MalloryAction | undefined> = {
  forward: 'forwarded',
  modify: 'changed',
  drop: 'dropped',
  hold: 'held',
  inject: 'injected',
  replay: 'replayed',
  reflect: 'reflected',
  reorder: 'reordered',
  're-encrypt': 're-encrypted',
  terminate: 'kept',
  close: 'closed',
  session: undefined,
  refused: undefined,
  accepted: undefined,
};

/** What reaches the far side: everything else stops at Mallory (she dropped, held or kept it). */
const PASSED_ON = new Set<FrameAction>(['forward', 'modify', 'replay', 'reorder']);

/** Outcome words of the page: `failed` is the attack's failure, the defence's success. */
function outcomeWord(outcome: string): string {
  return outcome === 'failed' ? 'defended' : outcome;
}

type Arrow = Omit<MessageEvent, 'seq' | 'at' | 'kind' | 'from' | 'to'> & {
  /** Lanes, with `victim` standing for this connection's victim until its name is known. */
  from: string;
  to: string;
};

const VICTIM = '\u0000victim';

interface Victim {
  link: Link;
  lane: string | undefined;
  pending: Arrow[];
}

export interface MalloryConsole {
  readonly watch: MitmWatch;
  readonly routes: ConsoleRoutes;
  readonly feed: ConsoleFeed;
  urlFor(httpUrl: string, boundAddress: string): string;
  /** An attack begins (the first one, or a live switch). */
  attackStarted(attack: AttackModule): void;
  /** An attack ended: its verdict over every connection. */
  attackEnded(report: MitmReport): void;
  close(): void;
}

export function startMalloryConsole(): MalloryConsole {
  const opened = openConsole('mallory');
  const watch = new MalloryWatch(opened.feed);
  return {
    watch,
    routes: opened.routes,
    feed: opened.feed,
    urlFor: (httpUrl, boundAddress) => opened.urlFor(httpUrl, boundAddress),
    attackStarted: (attack) => watch.attackStarted(attack),
    attackEnded: (report) => watch.attackEnded(report),
    close: () => opened.close(),
  };
}

export class MalloryWatch implements MitmWatch {
  readonly #victims = new Map<number, Victim>();
  readonly #stolen: KeyRow[] = [];
  #stolenCount = 0;
  #attack: NonNullable<ConsoleState['attack']> | undefined;

  constructor(private readonly feed: ConsoleFeed) {}

  attackStarted(attack: AttackModule): void {
    this.#attack = {
      name: attack.name,
      outcome: 'running',
      summary: attack.summary,
      defences: [],
      stolenKeys: 0,
    };
    this.#stolenCount = 0;
    this.#stolen.length = 0;
    this.feed.publish({
      kind: 'attack',
      name: attack.name,
      outcome: 'running',
      detail: `${attack.summary} (where: ${attack.position})`,
    });
    this.#publishState();
  }

  attackEnded(report: MitmReport): void {
    const outcome = outcomeWord(report.outcome);
    const decisive = report.findings.find((f) => f.outcome === report.outcome);
    // Not report.summary: for a success it carries the stolen key in hex.
    const detail =
      report.outcome === 'failed'
        ? `stopped by ${report.defences.join(' and ') || 'the protocol'}`
        : report.outcome === 'succeeded'
          ? `${decisive?.detail ?? 'the defences did not stop it'}${report.stolen === null ? '' : `; keys stolen: ${report.stolen.keys.length}`}`
          : (decisive?.detail ?? 'no victim connection was attacked');
    this.feed.publish({
      kind: 'attack',
      name: report.attack,
      outcome,
      detail,
      final: true,
      ...(report.defence === null ? {} : { defence: report.defence }),
    });
    if (this.#attack !== undefined && this.#attack.name === report.attack) {
      this.#attack = { ...this.#attack, outcome, defences: [...report.defences] };
    }
    this.#publishState();
  }

  opened(link: Link): void {
    this.#victims.set(link.id, { link, lane: undefined, pending: [] });
    this.feed.publish({ kind: 'exchange.open', exchange: link.id });
    this.#publishState();
  }

  frame(e: FrameEvent, code?: string): void {
    const arrow = this.#arrow(e, code);
    if (arrow === undefined) return;
    const v = e.conn === 0 ? undefined : this.#victims.get(e.conn);
    if (v === undefined) {
      this.#draw(arrow, UNKNOWN_LANE);
      return;
    }
    // A handshake's first frames wait until the client_finish names the victim, so that a whole
    // exchange stays on one lifeline (as on the KDC's console).
    if (v.lane === undefined && v.link.victimName !== undefined) this.#resolve(v, v.link.victimName);
    if (v.lane === undefined) v.pending.push(arrow);
    else this.#draw(arrow, v.lane);
  }

  intercepted(link: Link): void {
    const v = this.#victims.get(link.id);
    const lane = v === undefined ? (link.victimName ?? UNKNOWN_LANE) : this.#settle(v);
    this.feed.publish({
      kind: 'established',
      exchange: link.id,
      party: lane,
      role: 'insecure',
      group: '',
    });
  }

  ended(link: Link): void {
    const v = this.#victims.get(link.id);
    if (v !== undefined) this.#settle(v);
    this.#victims.delete(link.id);
    this.feed.publish({ kind: 'exchange.close', exchange: link.id });
    this.#publishState();
  }

  finding(f: Finding): void {
    const v = f.conn === 0 ? undefined : this.#victims.get(f.conn);
    const lane = v === undefined ? undefined : this.#settle(v);
    const attack = this.#attack?.name ?? '';
    if (f.outcome === 'failed' && f.code !== undefined) {
      // Who refused: the side whose alert or close reason carried the code.
      const from = v?.link.observed.find((o) => o.code === f.code)?.from ?? 'server';
      const byKdc = from === 'server' || lane === undefined;
      const handshake = v === undefined || v.link.records.c2s + v.link.records.s2c === 0;
      const verdict = defenceForCode(f.code, {
        ...(handshake ? { phase: 'handshake' as const } : {}),
        ...(byKdc ? { remote: true } : {}),
      });
      this.feed.publish({
        kind: 'refused',
        exchange: f.conn,
        by: byKdc ? KDC_LANE : lane,
        peer: MALLORY_LANE,
        code: f.code,
        ...(f.defence === undefined ? {} : { defence: f.defence }),
        ...(verdict === undefined ? {} : { explanation: verdict.explanation }),
        possibleMitm: true,
        phase: handshake ? 'handshake' : 'session',
      });
    }
    this.feed.publish({
      kind: 'attack',
      name: attack,
      outcome: outcomeWord(f.outcome),
      detail: f.detail,
      ...(f.conn === 0 ? {} : { exchange: f.conn }),
      ...(f.defence === undefined ? {} : { defence: f.defence }),
      ...(f.code === undefined ? {} : { code: f.code }),
    });
    if (this.#attack !== undefined) {
      const defences =
        f.outcome === 'failed' && f.defence !== undefined && !this.#attack.defences.includes(f.defence)
          ? [...this.#attack.defences, f.defence]
          : this.#attack.defences;
      const outcome =
        this.#attack.outcome === 'succeeded' || f.outcome === 'succeeded'
          ? 'succeeded'
          : f.outcome === 'failed' || this.#attack.outcome === 'defended'
            ? 'defended'
            : this.#attack.outcome;
      this.#attack = { ...this.#attack, outcome, defences };
    }
    this.#publishState();
  }

  stolenKey(k: { serial: string; from?: string; to?: string; source: string; conn: number }): void {
    this.#stolenCount += 1;
    if (this.#stolen.length < STOLEN_ROWS)
      this.#stolen.push({
        serial: k.serial,
        owner: k.from ?? '?',
        peer: k.to ?? '?',
        state: 'stolen',
        reason: k.source,
      });
    this.feed.publish({
      kind: 'change',
      what: 'key.stolen',
      subject: k.serial,
      detail: `${k.from ?? '?'} -> ${k.to ?? '?'}: Mallory read it from a ${k.source} (the bytes are in her report, not here)`,
    });
    if (this.#attack !== undefined) this.#attack = { ...this.#attack, stolenKeys: this.#stolenCount };
    this.#publishState();
  }

  decrypted(p: { conn: number; dir: 'c2s' | 's2c'; type: string }): void {
    // Every record she re-encrypts is already an arrow named by its type; what is news is an
    // end-to-end message opened with a key she stole.
    if (p.type !== 'message') return;
    this.feed.publish({
      kind: 'change',
      what: 'message.read',
      subject: `exchange #${p.conn}`,
      detail: `Mallory decrypted an end-to-end message ${p.dir === 'c2s' ? 'from' : 'to'} the victim with a key she stole (the text is in her report, not here)`,
    });
  }

  /** The victim's lane from now on (its name, or `?` when it never said); pending arrows drawn. */
  #settle(v: Victim): string {
    if (v.lane === undefined) this.#resolve(v, v.link.victimName ?? UNKNOWN_LANE);
    return v.lane!;
  }

  #resolve(v: Victim, lane: string): void {
    v.lane = lane;
    for (const arrow of v.pending.splice(0)) this.#draw(arrow, lane);
  }

  #arrow(e: FrameEvent, code: string | undefined): Arrow | undefined {
    const action = ACTIONS[e.action];
    const base = {
      exchange: e.conn,
      name: e.type,
      bytes: e.size,
      sealed: e.type === 'record',
      ...(e.note === undefined ? {} : { step: e.note }),
      ...(code === undefined ? {} : { code }),
      ...(action === undefined ? {} : { action }),
    };
    switch (e.dir) {
      case 'c2s':
        return { ...base, from: VICTIM, to: PASSED_ON.has(e.action) ? KDC_LANE : MALLORY_LANE };
      case 's2c':
        return { ...base, from: KDC_LANE, to: PASSED_ON.has(e.action) ? VICTIM : MALLORY_LANE };
      case 'm2s':
        return { ...base, from: MALLORY_LANE, to: KDC_LANE };
      case 'm2c':
        return { ...base, from: MALLORY_LANE, to: VICTIM };
      case 'side': {
        // Her own sessions with the KDC: what she sends, what it answers, and how they ended.
        const fromKdc = e.action === 'forward' || e.action === 'refused' || e.action === 'accepted';
        const outcome = e.action === 'refused' ? { code: e.note ?? '' } : {};
        return {
          ...base,
          ...outcome,
          name: e.type === 'session' ? `her session ${e.action}` : e.type,
          from: fromKdc ? KDC_LANE : MALLORY_LANE,
          to: fromKdc ? MALLORY_LANE : KDC_LANE,
        };
      }
    }
  }

  #draw(arrow: Arrow, lane: string): void {
    this.feed.publish({
      kind: 'message',
      ...arrow,
      from: arrow.from === VICTIM ? lane : arrow.from,
      to: arrow.to === VICTIM ? lane : arrow.to,
    });
  }

  #publishState(): void {
    const sessions = [...this.#victims.values()].map((v) => ({
      name: v.lane ?? v.link.victimName ?? UNKNOWN_LANE,
      role: v.link.mode ?? 'victim',
      exchange: v.link.id,
    }));
    this.feed.publish({
      kind: 'state',
      state: {
        view: 'mallory',
        sessions,
        certs: [],
        keys: [...this.#stolen],
        crlNumber: 0,
        truncated: this.#stolenCount > this.#stolen.length,
        counts: {
          certsActive: 0,
          certsRevoked: 0,
          keysActive: 0,
          keysRevoked: 0,
          keysExpired: 0,
        },
        ...(this.#attack === undefined
          ? {}
          : { attack: { ...this.#attack, defences: [...this.#attack.defences] } }),
      },
    });
  }
}
