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
    const { emit } = await import('../../output.js');
    const keys = await withKeyClient(argv, (c) => c.listKeys());
    const lines = keys.map((k) => {
      const other = k.owner === argv.name ? `-> ${k.peer}` : `<- ${k.owner}`;
      const why = k.reason === undefined ? '' : ` (${k.reason})`;
      return `${k.serial}  ${other.padEnd(12)} ${k.mode.padEnd(4)} ${`${k.state}${why}`.padEnd(28)} local ${k.local.padEnd(10)} created ${iso(k.createdAt)}  expires ${iso(k.expiresAt)}`;
    });
    emit(argv, { keys }, keys.length === 0 ? ['no keys'] : lines);
  }),
};
