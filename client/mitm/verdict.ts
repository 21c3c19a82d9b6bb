// Mallory's scorecard: did the attack succeed, fail (and which defence stopped it) or stay
// inconclusive? Each victim connection and each of Mallory's own sessions adds findings; the attack's
// outcome is the strongest of them: one success is a success (an attacker needs to win once), else one
// failure is a failure, else nothing conclusive happened.
import type { DefenceName } from '../../shared/defences.js';
import type { Outcome } from './attack.js';

export interface Finding {
  outcome: Outcome;
  /** 0 for Mallory's own sessions, else the victim connection number. */
  conn: number;
  detail: string;
  defence?: DefenceName;
  /** The error code that showed the defence at work (alert, close reason, refusal), when one was seen. */
  code?: string;
}

export class Verdict {
  readonly findings: Finding[] = [];
  #onFinding: (f: Finding) => void;

  constructor(onFinding: (f: Finding) => void = () => {}) {
    this.#onFinding = onFinding;
  }

  add(f: Finding): void {
    this.findings.push(f);
    this.#onFinding(f);
  }

  get outcome(): Outcome {
    if (this.findings.some((f) => f.outcome === 'succeeded')) return 'succeeded';
    if (this.findings.some((f) => f.outcome === 'failed')) return 'failed';
    return 'inconclusive';
  }

  /** The defences that stopped the attack, first seen first. */
  get defences(): DefenceName[] {
    const out: DefenceName[] = [];
    for (const f of this.findings)
      if (f.outcome === 'failed' && f.defence !== undefined && !out.includes(f.defence)) out.push(f.defence);
    return out;
  }

  /** The decisive finding for the summary line. */
  get decisive(): Finding | undefined {
    const outcome = this.outcome;
    return this.findings.find((f) => f.outcome === outcome);
  }
}

/** `attack substitute-dh: FAILED — stopped by transcript signature` (the wording docs/attacks.md shows). */
export function summaryLine(attack: string, verdict: Verdict, stolenKeyHex?: string, moreKeys = 0): string {
  const outcome = verdict.outcome;
  const head = `attack ${attack}: ${outcome.toUpperCase()} — `;
  if (outcome === 'succeeded') {
    if (stolenKeyHex !== undefined)
      return `${head}stole key ${stolenKeyHex}${moreKeys > 0 ? ` (and ${moreKeys} more)` : ''}`;
    return `${head}${verdict.decisive?.detail ?? 'the defences did not stop it'}`;
  }
  if (outcome === 'failed') {
    const defences = verdict.defences;
    return `${head}stopped by ${defences.length > 0 ? defences.join(' and ') : 'the protocol'}`;
  }
  return `${head}${verdict.decisive?.detail ?? 'no victim connection was attacked'}`;
}
