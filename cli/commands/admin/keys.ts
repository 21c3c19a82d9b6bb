// `kds admin keys [--revoked]`: every symmetric key the KDC knows, or (like the seed's revoked key
// list) only the revoked ones with serial, time and reason.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { adminSessionOptions, withAdminOptions, type AdminArgs } from './common.js';

interface KeysArgs extends AdminArgs {
  revoked: boolean;
}

export const keysCommand: CommandModule<object, KeysArgs> = {
  command: 'keys',
  describe: 'list symmetric keys at the KDC (--revoked: the revoked-key list)',
  builder: (y) =>
    withAdminOptions(y)
      .option('revoked', {
        type: 'boolean',
        default: false,
        describe: 'only revoked keys (serial, time, reason)',
      })
      .example('$0 admin keys', 'every key')
      .example('$0 admin keys --revoked --json', 'the revoked-key list as JSON') as never,
  handler: run(async (argv: KeysArgs) => {
    const { openAdminSession } = await import('../../../client/admin.js');
    const { emit, terminalSafe: safe } = await import('../../output.js');
    const session = await openAdminSession(adminSessionOptions(argv));
    try {
      const out = await session.request('admin.keys', argv.revoked ? { revoked: true } : {});
      const iso = (v: number | undefined): string => (v === undefined ? '-' : new Date(v).toISOString());
      const lines = out.keys.map((k) =>
        argv.revoked
          ? `${safe(k.serial)}  revoked ${iso(k.revokedAt)}  ${safe(k.reason ?? 'unspecified')}  (${safe(k.owner)} -> ${safe(k.peer)})`
          : `${safe(k.serial)}  ${safe(k.owner)} -> ${safe(k.peer)}  ${safe(k.mode)}  ${safe(k.state)}  expires ${iso(k.expiresAt)}`,
      );
      emit(argv, out, lines.length === 0 ? [argv.revoked ? 'no revoked keys' : 'no keys'] : lines);
    } finally {
      await session.close();
    }
  }),
};
