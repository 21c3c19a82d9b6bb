// Mallory's machine-readable record (docs/attacks.md): {attack, outcome: succeeded|failed|inconclusive,
// defence, stolen, frames} plus the findings behind the outcome.
//
// `stolen` is null unless Mallory actually held a victim's session keys (an insecure session she
// terminated on both sides) and took something from it. A report of a run against secure clients
// therefore holds no key material and no plaintext: frames carry sizes, types and public handshake
// facts only (modes, groups, certificate names), never payload bytes.
import { writeFileAtomic } from '../../io/fs-atomic.js';
import { terminalSafeJson } from '../../shared/text/terminal-safe.js';
import type { Expectation, Outcome } from './attack.js';
import type { FrameEvent, MitmContext } from './context.js';
import type { StolenPlaintext } from './loot.js';
import { summaryLine, type Finding } from './verdict.js';

export interface ReportedKey {
  serial: string;
  /** hex: printing the stolen key is the point of the insecure lab. */
  key: string;
  fingerprint: string;
  from?: string;
  to?: string;
  source: string;
  conn: number;
}

export interface MitmReport {
  attack: string;
  outcome: Outcome;
  /** The defence that stopped the attack (the first one, when several did); null unless it failed. */
  defence: string | null;
  stolen: { keys: ReportedKey[]; plaintext: StolenPlaintext[] } | null;
  frames: FrameEvent[];
  summary: string;
  defences: string[];
  findings: Finding[];
  position: string;
  expected: { secure: Expectation; insecure: Expectation };
  victims: { connections: number; modes: string[] };
  startedAt: number;
  endedAt: number;
}

export function buildReport(ctx: MitmContext): MitmReport {
  const verdict = ctx.verdict;
  const outcome = verdict.outcome;
  const mayHaveLoot = ctx.terminatedInsecure && !ctx.loot.empty;
  const keys: ReportedKey[] = mayHaveLoot
    ? [...ctx.loot.keys.values()].map((k) => ({
        serial: k.serial,
        key: k.key.toString('hex'),
        fingerprint: k.fingerprint,
        ...(k.from === undefined ? {} : { from: k.from }),
        ...(k.to === undefined ? {} : { to: k.to }),
        source: k.source,
        conn: k.conn,
      }))
    : [];
  const firstKey = keys[0]?.key;
  return {
    attack: ctx.attack.name,
    outcome,
    defence: outcome === 'failed' ? (verdict.defences[0] ?? null) : null,
    stolen: mayHaveLoot ? { keys, plaintext: [...ctx.loot.plaintext] } : null,
    frames: [...ctx.events],
    summary: summaryLine(
      ctx.attack.name,
      verdict,
      outcome === 'succeeded' ? firstKey : undefined,
      keys.length - 1,
    ),
    defences: verdict.defences,
    findings: [...verdict.findings],
    position: ctx.attack.position,
    expected: { secure: ctx.attack.secure, insecure: ctx.attack.insecure },
    victims: { connections: ctx.connections, modes: [...ctx.modes] },
    startedAt: ctx.startedAt,
    endedAt: Date.now(),
  };
}

/** Written atomically (temp file + rename), 0600: a lab report may hold stolen keys. */
export function writeReport(path: string, report: MitmReport): void {
  // Exactly the same JSON value; the characters a terminal would obey are \u-escaped (`cat report.json`).
  writeFileAtomic(path, `${terminalSafeJson(report, 2)}\n`, 0o600);
}
