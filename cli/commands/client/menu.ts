// `kds client menu`: the interactive numbered menu (client/menu/menu.ts) for one client identity:
// Symmetric keys and Certificates sub-menus over a live session. Reads answers from stdin (a terminal,
// or a script piped in); exits 0 on "0" or end of input (Ctrl-D), 130 on Ctrl-C.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { withClientOptions, type ClientArgs } from './common.js';

export const menuCommand: CommandModule<object, ClientArgs> = {
  command: 'menu',
  describe: 'interactive menu: symmetric keys (send, verify, revoke, list, message) and certificates',
  builder: (y) =>
    withClientOptions(y)
      .example('$0 client menu --name alice', "alice's menu (enroll from its Certificates sub-menu)")
      .example(
        "printf '2\\n6\\n0\\n0\\n' | $0 client menu --name alice",
        'scripted: show my certificate, then exit',
      ) as never,
  handler: run(async (argv: ClientArgs) => {
    const { AuthError, InputError } = await import('../../../shared/errors.js');
    if (argv.json)
      throw new InputError(
        'bad_request',
        'the menu is interactive: --json is not supported (use the other kds client commands)',
      );
    if (argv['insecure-dh'] === true) {
      throw new AuthError(
        'insecure_refused',
        'the menu always uses authenticated sessions (--insecure-dh is for kds client send-key/send/listen)',
      );
    }
    const { runMenu } = await import('../../../client/menu/menu.js');
    const { style, withProgress } = await import('../../output.js');
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    // On a terminal readline sees Ctrl-C itself; with a pipe on stdin the signal comes to the process.
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const { onOutputClosed } = await import('../../closed-pipe.js');
    const unwatch = onOutputClosed(stop);
    try {
      return await runMenu({
        name: argv.name,
        home: argv.home,
        dataDir: argv['data-dir'],
        server: argv.server,
        dh: argv.dh,
        input: process.stdin,
        output: process.stdout,
        style,
        progress: (label, work) => withProgress(argv, label, work),
        signal: controller.signal,
      });
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      unwatch();
    }
  }),
};
