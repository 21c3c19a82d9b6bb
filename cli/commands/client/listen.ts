// `kds client listen`: stay connected; print each key received (serial, peer, fingerprint: never the
// key), its automatic verification verdict, decrypted messages and revocation notices; reconnect with
// exponential backoff when the server goes away. With --json: one JSON object per event per line.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { homeOf, withClientOptions, type ClientArgs } from './common.js';

export const listenCommand: CommandModule<object, ClientArgs> = {
  command: 'listen',
  describe: 'stay connected: receive and verify keys, print messages and revocations (reconnects)',
  builder: (y) =>
    withClientOptions(y)
      .example('$0 client listen --name bob', "bob's inbox")
      .example('$0 client listen --name bob --json', 'one JSON object per event per line') as never,
  handler: run(async (argv: ClientArgs) => {
    const { listen } = await import('../../../client/keys/listen.js');
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      await listen({
        ...homeOf(argv),
        server: argv.server,
        dh: argv.dh,
        insecure: argv['insecure-dh'] === true,
        signal: controller.signal,
        onEvent: (e) => {
          if (argv.json) process.stdout.write(`${JSON.stringify({ ...e, at: Date.now() })}\n`);
          else process.stdout.write(`${describe(e)}\n`);
        },
      });
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  }),
};

function describe(e: { event: string } & Record<string, unknown>): string {
  const s = (k: string): string => String(e[k]);
  switch (e.event) {
    case 'connected':
      return `connected as ${s('name')} (certificate ${s('serial')})`;
    case 'key':
      return `key ${s('serial')} from ${s('from')} (${s('mode')}), fingerprint ${s('fingerprint')}: ${s('verdict')}`;
    case 'key.rejected':
      return `REJECTED key ${s('serial')} from ${s('from')}: [${s('code')}] ${s('message')}`;
    case 'key.verified':
      return `key ${s('serial')} verified by ${s('peer')}: now ${s('state')}`;
    case 'key.revoked':
      return `key ${s('serial')} ${s('state')} (${s('reason')}); key material deleted`;
    case 'message':
      return `message from ${s('from')} (key ${s('serial')}): ${s('text')}`;
    case 'message.rejected':
      return e.kept === true
        ? `NOT SHOWN YET message from ${s('from')} (key ${s('serial')}): [${s('code')}] ${s('message')}; kept at the KDC, delivered again at the next connection`
        : `REJECTED message from ${s('from')} (key ${s('serial')}): [${s('code')}] ${s('message')}`;
    case 'disconnected':
      return `disconnected (${s('code')}); reconnecting in ${s('retryInMs')} ms`;
    case 'stopped':
      return e.code === undefined ? 'stopped' : `stopped (${s('code')})`;
    default:
      return JSON.stringify(e);
  }
}
