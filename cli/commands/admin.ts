// `kds admin ...`: operator commands, authenticated to the running KDC with the admin credential that
// `kds server init` created under <data-dir>/admin/. Each subcommand lives in cli/commands/admin/<name>.ts
// and is listed in cli/commands/admin/index.ts.
import type { Argv } from 'yargs';
import { adminCommands } from './admin/index.js';

/** `kds admin` (its name and description are in cli/commands/index.ts, which loads this lazily). */
export function builder(a: Argv): Argv {
  for (const command of adminCommands) a.command(command);
  return a
    .demandCommand(1, 'name an admin command; see kds admin --help')
    .example('$0 admin token --name alice', 'one-time enrollment token')
    .example(
      '$0 admin revoke-cert --name alice --reason keyCompromise',
      "end alice's certificate and sessions",
    );
}
