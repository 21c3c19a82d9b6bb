// What every menu action gets: who we are, the terminal (Prompter), the KDC connection, and the one
// question loop that re-asks until an answer is valid. Also the generic numbered sub-menu.
import type { DhGroup } from '../../shared/crypto/dh.js';
import { toKdsError } from '../../shared/errors.js';
import { terminalSafe } from '../../shared/text/terminal-safe.js';
import { EMPTY_ANSWER, parseChoice, type Parsed } from './answers.js';
import type { MenuConnection } from './connection.js';
import { EndOfInput, type Prompter } from './prompter.js';

/** Colour helpers (identity functions when output is not a terminal, or NO_COLOR is set). */
export interface MenuStyle {
  ok(text: string): string;
  bad(text: string): string;
  bold(text: string): string;
  dim(text: string): string;
}

export const PLAIN_STYLE: MenuStyle = { ok: (t) => t, bad: (t) => t, bold: (t) => t, dim: (t) => t };

export interface MenuContext {
  readonly name: string;
  readonly home: string;
  readonly server: string;
  readonly dh: DhGroup | undefined;
  readonly io: Prompter;
  readonly conn: MenuConnection;
  readonly style: MenuStyle;
  /** Run slow work (RSA key generation) with a progress indicator. */
  readonly progress: <T>(label: string, work: () => Promise<T>) => Promise<T>;
}

/** Thrown when the person answers 0 inside an action: back to the sub-menu, nothing done. */
class BackToMenu extends Error {
  constructor() {
    super('back');
    this.name = 'BackToMenu';
  }
}

/**
 * Ask until `parse` accepts the answer. Empty answers get EMPTY_ANSWER; "0" cancels the action
 * (BackToMenu) unless `zeroIsAnswer`; invalid ones get the parser's message. Never gives up: only
 * the end of input (EndOfInput) leaves the loop without a valid answer.
 */
export async function ask<T>(
  ctx: MenuContext,
  prompt: string,
  parse: (text: string) => Parsed<T>,
  opts: { zeroIsAnswer?: boolean } = {},
): Promise<T> {
  for (;;) {
    const text = await ctx.io.ask(prompt);
    if (text.trim() === '') {
      ctx.io.print(`  ${EMPTY_ANSWER}`);
      continue;
    }
    if (opts.zeroIsAnswer !== true && text.trim() === '0') throw new BackToMenu();
    const parsed = parse(text);
    if (parsed.ok) return parsed.value;
    ctx.io.print(`  ${parsed.message}`);
  }
}

export interface MenuItem {
  label: string;
  run(ctx: MenuContext): Promise<void>;
}

/** Show a numbered menu until 0; each item runs inside `runAction` so no failure leaves the loop. */
export async function runSubmenu(
  ctx: MenuContext,
  title: string,
  items: readonly MenuItem[],
  zeroLabel = 'Back',
): Promise<void> {
  for (;;) {
    ctx.io.print(
      '',
      ctx.style.bold(title),
      ...items.map((item, i) => `  ${i + 1}) ${item.label}`),
      `  0) ${zeroLabel}`,
    );
    const choice = await ask(ctx, `choose [0-${items.length}]: `, (t) => parseChoice(t, items.length), {
      zeroIsAnswer: true,
    });
    if (choice === 0) return;
    await runAction(ctx, items[choice - 1]!);
  }
}

/** Run one action: its errors are printed (`error [code]: message`) and the menu goes on. */
export async function runAction(ctx: MenuContext, item: MenuItem): Promise<void> {
  try {
    await item.run(ctx);
  } catch (err) {
    if (err instanceof EndOfInput) throw err;
    if (err instanceof BackToMenu) {
      ctx.io.print('  (cancelled)');
      return;
    }
    const e = toKdsError(err);
    // The message may quote what the KDC or a peer sent: never raw to the terminal.
    ctx.io.print(`  ${ctx.style.bad(`error [${e.code}]`)}: ${terminalSafe(e.message)}`);
  }
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
