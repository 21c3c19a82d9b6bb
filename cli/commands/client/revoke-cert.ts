// `kds client revoke-cert`: the owner revokes its own certificate over its own session (for instance
// after a key compromise). Every live session of that certificate ends before this command returns.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { reasonChoices } from '../../options.js';
import { homeOf, withClientOptions, type ClientArgs } from './common.js';

interface RevokeArgs extends ClientArgs {
  reason: (typeof reasonChoices)[number];
}

export const revokeCertCommand: CommandModule<object, RevokeArgs> = {
  command: 'revoke-cert',
  describe: "revoke this client's own certificate (its live sessions end at once)",
  builder: (y) =>
    withClientOptions(y)
      .option('reason', {
        choices: reasonChoices,
        demandOption: true,
        describe: 'RFC 5280 revocation reason',
      })
      .example('$0 client revoke-cert --name alice --reason keyCompromise', "alice's key leaked") as never,
  handler: run(async (argv: RevokeArgs) => {
    const { openHomeSession } = await import('../../../client/session.js');
    const { emit } = await import('../../output.js');
    const session = await openHomeSession({ ...homeOf(argv), server: argv.server, dh: argv.dh });
    try {
      const serial = session.facts.identity.serialHex;
      const out = await session.request('cert.revoke', { serial, reason: argv.reason });
      emit(
        argv,
        out,
        out.status === 'already_revoked'
          ? `already revoked: ${serial}`
          : `revoked ${serial} (${argv.reason})`,
      );
    } finally {
      await session.close();
    }
  }),
};
