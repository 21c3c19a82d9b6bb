// `kds client keys`: this client's keys as the KDC records them (serial, peer, state, created,
// expires) with the local state of each (whether this client holds usable key material). When the KDC
// cannot be reached: the client's own records, with a warning that they may be stale (exit 0; --json
// adds "stale": true, "source": "local").
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { homeOf, withClientOptions, type ClientArgs } from './common.js';
import { iso, withKeyClient } from './key-common.js';

export const keysCommand: CommandModule<object, ClientArgs> = {
  command: 'keys',
  describe: "list this client's symmetric keys (KDC state and local state)",
  builder: (y) =>
    withClientOptions(y)
      .example('$0 client keys --name alice', "alice's keys")
      .example('$0 client keys --name bob --json', 'as JSON') as never,
  handler: run(async (argv: ClientArgs) => {
    const { emit, warn, terminalSafe: safe } = await import('../../output.js');
    const { isTransient } = await import('../../../client/keys/listen.js');
    const { toKdsError } = await import('../../../shared/errors.js');
    let keys;
    let offline: string | undefined;
    try {
      keys = await withKeyClient(argv, (c) => c.listKeys());
    } catch (err) {
      // The keys are local: when the KDC cannot be reached, show this client's own records, saying
      // they may be stale (a revocation or delivery since the last session is not in them).
      const e = toKdsError(err);
      if (!isTransient(e)) throw err;
      const { listLocalKeys } = await import('../../../client/keys/local-keys.js');
      keys = listLocalKeys(homeOf(argv));
      offline = e.code;
      warn(
        `the KDC is not reachable (${e.code}): these are this client's own records, which may be stale (revocations and deliveries since its last session are not in them)`,
      );
    }
    const lines = keys.map((k) => {
      // The KDC's answer: every field terminal-safe before it is shown.
      const other = k.owner === argv.name ? `-> ${safe(k.peer)}` : `<- ${safe(k.owner)}`;
      const why = k.reason === undefined ? '' : ` (${safe(k.reason)})`;
      return `${safe(k.serial)}  ${other.padEnd(12)} ${safe(k.mode).padEnd(4)} ${`${safe(k.state)}${why}`.padEnd(28)} local ${safe(k.local).padEnd(10)} created ${iso(k.createdAt)}  expires ${iso(k.expiresAt)}`;
    });
    emit(
      argv,
      offline === undefined ? { keys } : { keys, stale: true, source: 'local', reason: offline },
      keys.length === 0 ? ['no keys'] : lines,
    );
  }),
};
