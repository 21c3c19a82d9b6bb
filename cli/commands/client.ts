// `kds client ...`: a client identity's commands (enroll, status, certificate revocation and status;
// key distribution adds more). Each subcommand lives in cli/commands/client/<name>.ts and is listed in
// cli/commands/client/index.ts.
import type { Argv } from 'yargs';
import { clientCommands } from './client/index.js';

/** `kds client` (its name and description are in cli/commands/index.ts, which loads this lazily). */
export function builder(c: Argv): Argv {
  for (const command of clientCommands) c.command(command);
  return c
    .demandCommand(1, 'name a client command; see kds client --help')
    .example('$0 client enroll --name alice --token T --ca-fingerprint F', 'get a certificate for alice')
    .example('$0 client status --name alice', 'open a session and print its facts');
}
