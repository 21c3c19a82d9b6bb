// `kds admin token`: mint a one-time enrollment token bound to one name (default lifetime 15 minutes).
// The KDC stores only its hash; the token itself is printed once, here.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { nameOption } from '../../options.js';
import { tokenTtlValue } from '../../option-values.js';
import { adminSessionOptions, withAdminOptions, type AdminArgs } from './common.js';

interface TokenArgs extends AdminArgs {
  name: string;
  ttl: string;
}

export const tokenCommand: CommandModule<object, TokenArgs> = {
  command: 'token',
  describe: 'create a one-time enrollment token for --name',
  builder: (y) =>
    withAdminOptions(y)
      .option('name', { ...nameOption, describe: 'the only name this token can enroll' })
      .option('ttl', {
        type: 'string',
        default: '15m',
        describe: 'lifetime, 1s to 7d: 90s, 15m, 1h, 1d',
        coerce: tokenTtlValue,
      })
      .example('$0 admin token --name alice', 'token for alice, valid 15 minutes')
      .example(
        '$0 admin token --name bob --ttl 1h --json',
        'prints {"token": ..., "expiresAt": ...}',
      ) as never,
  handler: run(async (argv: TokenArgs) => {
    const { parseDuration } = await import('../../duration.js');
    const { MAX_TOKEN_TTL_MS } = await import('../../../server/ca/tokens.js');
    const { openAdminSession } = await import('../../../client/admin.js');
    const { emit, terminalSafe: safe } = await import('../../output.js');
    const ttlMs = parseDuration(argv.ttl, '--ttl', { maxMs: MAX_TOKEN_TTL_MS });
    const session = await openAdminSession(adminSessionOptions(argv));
    try {
      const out = await session.request('admin.token', { name: argv.name, ttl: ttlMs });
      const { expiresAt } = out;
      emit(argv, { token: out.token, name: argv.name, expiresAt }, [
        safe(out.token),
        `(one-time token for ${argv.name}, expires ${new Date(expiresAt).toISOString()})`,
      ]);
    } finally {
      await session.close();
    }
  }),
};
