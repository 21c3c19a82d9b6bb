// `kds client menu`: the interactive terminal menu the original single-process tool had, now a
// networked client. Numbered choices, two sub-menus (client/menu/key-actions.ts and
// client/menu/cert-actions.ts); it asks for what it needs, re-asks on bad answers, prints every failure
// as `error [code]: message` and carries on, and exits on 0 or at the end of input (Ctrl-D).
//
// While a session is open, what the KDC pushes (keys delivered, verified or revoked, messages) is
// printed as a notice above the prompt, so two menus (alice, bob) can talk to each other live.
import type { DhGroup } from '../../shared/crypto/dh.js';
import { resolveHome } from '../home.js';
import { describeKeyEvent } from '../keys/describe-event.js';
import { CERT_ITEMS } from './cert-actions.js';
import { MenuConnection } from './connection.js';
import { PLAIN_STYLE, runSubmenu, type MenuContext, type MenuItem, type MenuStyle } from './context.js';
import { KEY_ITEMS } from './key-actions.js';
import { EndOfInput, createPrompter, type PrompterStreams } from './prompter.js';

export interface MenuOptions extends PrompterStreams {
  name: string;
  home?: string | undefined;
  dataDir?: string | undefined;
  server: string;
  dh?: DhGroup;
  style?: MenuStyle;
  progress?: <T>(label: string, work: () => Promise<T>) => Promise<T>;
  /** Aborting it ends the menu like Ctrl-C (the CLI aborts on SIGINT/SIGTERM when stdin is a pipe). */
  signal?: AbortSignal;
}

/** Exit status of the menu: 0 after "0" or end of input, 130 after Ctrl-C (the shell convention). */
export type MenuExit = 0 | 130;

export async function runMenu(opts: MenuOptions): Promise<MenuExit> {
  const home = resolveHome({ name: opts.name, home: opts.home, dataDir: opts.dataDir });
  const io = createPrompter(opts);
  if (opts.signal?.aborted === true) io.interrupt();
  opts.signal?.addEventListener('abort', () => io.interrupt(), { once: true });
  const style = opts.style ?? PLAIN_STYLE;
  const conn = new MenuConnection({
    name: opts.name,
    home,
    server: opts.server,
    ...(opts.dh === undefined ? {} : { dh: opts.dh }),
    onEvent: (e) => io.notice(`  [notice] ${describeKeyEvent(e)}`),
    onClosed: (code) =>
      io.notice(
        `  [notice] the KDC ended the session${code === undefined ? '' : ` (${code})`}; the next action reconnects`,
      ),
  });
  const ctx: MenuContext = {
    name: opts.name,
    home,
    server: opts.server,
    dh: opts.dh,
    io,
    conn,
    style,
    progress: opts.progress ?? ((_label, work) => work()),
  };
  const main: MenuItem[] = [
    { label: 'Symmetric keys', run: (c) => runSubmenu(c, 'Symmetric keys', KEY_ITEMS) },
    { label: 'Certificates', run: (c) => runSubmenu(c, 'Certificates', CERT_ITEMS) },
  ];
  io.print(
    style.bold(`kds menu: ${opts.name}`),
    `  server ${opts.server}`,
    `  home   ${home} (${conn.enrolled ? 'enrolled' : 'not enrolled yet: Certificates > Enroll'})`,
    '  answer with a number; 0 goes back; Ctrl-D quits',
  );
  let exit: MenuExit = 0;
  try {
    await runSubmenu(ctx, 'Main menu', main, 'Exit');
  } catch (err) {
    if (!(err instanceof EndOfInput)) throw err;
    if (err.reason === 'interrupt') exit = 130;
  } finally {
    await conn.close();
    io.close();
  }
  io.print('bye');
  return exit;
}
