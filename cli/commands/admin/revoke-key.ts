// `kds admin revoke-key`: revoke any symmetric key. Durable before the KDC answers; both parties get a
// key.revoked notice (now if connected, otherwise when they next connect).
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { keyReasonChoices, keySerialOption } from '../../options.js';
import { adminSessionOptions, withAdminOptions, type AdminArgs } from './common.js';

interface RevokeKeyArgs extends AdminArgs {
  serial: string;
  reason: (typeof keyReasonChoices)[number];
}

export const revokeKeyCommand: CommandModule<object, RevokeKeyArgs> = {
  command: 'revoke-key',
  describe: 'revoke a symmetric key by serial (both parties are notified)',
  builder: (y) =>
    withAdminOptions(y)
      .option('serial', keySerialOption)
      .option('reason', {
        choices: keyReasonChoices,
        default: 'unspecified' as const,
        describe: 'RFC 5280 reason name (those that apply to a key)',
      })
      .example('$0 admin revoke-key --serial 3f... --reason keyCompromise', 'revoke a leaked key') as never,
  handler: run(async (argv: RevokeKeyArgs) => {
    const { openAdminSession } = await import('../../../client/admin.js');
    const { emit } = await import('../../output.js');
    const serial = argv.serial.toLowerCase();
    const session = await openAdminSession(adminSessionOptions(argv));
    try {
      const out = await session.request('admin.key.revoke', { serial, reason: argv.reason });
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
