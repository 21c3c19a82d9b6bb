// `kds client listen`: stay connected; print each key received (serial, peer, fingerprint: never the
// key), its automatic verification verdict, decrypted messages and revocation notices; reconnect with
// exponential backoff when the server goes away. With --json: one JSON object per event per line.
import type { CommandModule } from 'yargs';
import { run, warn } from '../../output.js';
import { homeOf, withClientOptions, type ClientArgs } from './common.js';

export const listenCommand: CommandModule<object, ClientArgs> = {
  command: 'listen',
  describe: 'stay connected: receive and verify keys, print messages and revocations (reconnects)',
  builder: (y) =>
    withClientOptions(y)
      .example('$0 client listen --name bob', "bob's inbox")
      .example('$0 client listen --name bob --json', 'one JSON object per event per line') as never,
  handler: run(
    async (argv: ClientArgs) => {
      const { listen } = await import('../../../client/keys/listen.js');
      const { describeListenEvent } = await import('../../../client/keys/describe-event.js');
      const { terminalSafeJson } = await import('../../../shared/text/terminal-safe.js');
      const { clientDefences } = await import('../../lab-switches.js');
      const { labOff } = await import('../../../shared/lab-switches.js');
      const defences = clientDefences(argv);
      const controller = new AbortController();
      const stop = (): void => controller.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const { onOutputClosed } = await import('../../closed-pipe.js');
      const unwatch = onOutputClosed(stop);
      try {
        await listen({
          ...homeOf(argv),
          server: argv.server,
          dh: argv.dh,
          // LAB SWITCH authentication: the same unauthenticated session as --insecure-dh.
          insecure: labOff(defences, 'authentication') || argv['insecure-dh'] === true,
          defences,
          signal: controller.signal,
          onEvent: (e) => {
            if (argv.json) process.stdout.write(`${terminalSafeJson({ ...e, at: Date.now() })}\n`);
            // A warning about this machine, not an event of the session: on stderr, where warnings go.
            else if (e.event === 'clock.skew') warn(describeListenEvent(e));
            else process.stdout.write(`${describeListenEvent(e)}\n`);
          },
        });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        unwatch();
      }
    },
    { jsonLines: true },
  ),
};
