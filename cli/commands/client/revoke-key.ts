// `kds client revoke-key`: revoke a key this client shares (either party may). Durable at the KDC
// before it answers; both parties get a key.revoked notice and delete the key material.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { keyReasonChoices, keySerialOption } from '../../options.js';
import { withClientOptions, type ClientArgs } from './common.js';
import { withKeyClient } from './key-common.js';

interface RevokeKeyArgs extends ClientArgs {
  serial: string;
  reason: (typeof keyReasonChoices)[number];
}

export const revokeKeyCommand: CommandModule<object, RevokeKeyArgs> = {
  command: 'revoke-key',
  describe: 'revoke a symmetric key (notifies both parties; the material is deleted)',
  builder: (y) =>
    withClientOptions(y)
      .option('serial', keySerialOption)
      .option('reason', {
        choices: keyReasonChoices,
        default: 'unspecified' as const,
        describe: 'RFC 5280 reason name (those that apply to a key)',
      })
      .example(
        '$0 client revoke-key --name alice --serial 3f... --reason keyCompromise',
        'the key leaked',
      ) as never,
  handler: run(async (argv: RevokeKeyArgs) => {
    const { emit, terminalSafe: safe } = await import('../../output.js');
    const serial = argv.serial.toLowerCase();
    const out = await withKeyClient(argv, (c) => c.revokeKey(serial, argv.reason));
    emit(
      argv,
      out,
      out.status === 'already_revoked'
        ? `already revoked: ${serial} (${safe(out.reason)})`
        : `revoked ${serial} (${safe(out.reason)})`,
    );
  }),
};
