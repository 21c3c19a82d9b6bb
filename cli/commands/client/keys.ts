// `kds client keys`: this client's keys as the KDC records them (serial, peer, state, created,
// expires) with the local state of each (whether this client holds usable key material).
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { withClientOptions, type ClientArgs } from './common.js';
import { iso, withKeyClient } from './key-common.js';

export const keysCommand: CommandModule<object, ClientArgs> = {
  command: 'keys',
  describe: "list this client's symmetric keys (KDC state and local state)",
  builder: (y) =>
    withClientOptions(y)
      .example('$0 client keys --name alice', "alice's keys")
      .example('$0 client keys --name bob --json', 'as JSON') as never,
  handler: run(async (argv: ClientArgs) => {
    const { emit, terminalSafe: safe } = await import('../../output.js');
    const keys = await withKeyClient(argv, (c) => c.listKeys());
    const lines = keys.map((k) => {
      // The KDC's answer: every field terminal-safe before it is shown.
      const other = k.owner === argv.name ? `-> ${safe(k.peer)}` : `<- ${safe(k.owner)}`;
      const why = k.reason === undefined ? '' : ` (${safe(k.reason)})`;
      return `${safe(k.serial)}  ${other.padEnd(12)} ${safe(k.mode).padEnd(4)} ${`${safe(k.state)}${why}`.padEnd(28)} local ${safe(k.local).padEnd(10)} created ${iso(k.createdAt)}  expires ${iso(k.expiresAt)}`;
    });
    emit(argv, { keys }, keys.length === 0 ? ['no keys'] : lines);
  }),
};
