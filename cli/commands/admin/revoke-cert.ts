// `kds admin revoke-cert`: revoke a certificate by name or serial through the running KDC. The
// revocation is durable (row + new CRL) and every live session of the certificate has ended before
// this command prints its result.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { certSerialOption, reasonChoices } from '../../options.js';
import { nameValue } from '../../option-values.js';
import { InputError } from '../../../shared/errors.js';
import { adminSessionOptions, withAdminOptions, type AdminArgs } from './common.js';

interface RevokeArgs extends AdminArgs {
  name?: string;
  serial?: string;
  reason: (typeof reasonChoices)[number];
}

export const revokeCertCommand: CommandModule<object, RevokeArgs> = {
  command: 'revoke-cert',
  describe: 'revoke a certificate (by --name or --serial); its live sessions end at once',
  builder: (y) =>
    withAdminOptions(y)
      .option('name', {
        type: 'string',
        describe: 'revoke the active certificate of this name',
        coerce: nameValue('--name', { reservedOk: true }),
      })
      .option('serial', { ...certSerialOption, describe: 'revoke this certificate serial (hex)' })
      .option('reason', {
        choices: reasonChoices,
        demandOption: true,
        describe: 'RFC 5280 revocation reason',
      })
      .conflicts('name', 'serial')
      .check((a) => {
        if (a.name === undefined && a.serial === undefined)
          throw new InputError('bad_request', 'give --name or --serial');
        return true;
      })
      .example(
        '$0 admin revoke-cert --name alice --reason keyCompromise',
        "end alice's certificate",
      ) as never,
  handler: run(async (argv: RevokeArgs) => {
    const { openAdminSession } = await import('../../../client/admin.js');
    const { normalizeSerial } = await import('../../../client/cert-status.js');
    const { emit, terminalSafe: safe } = await import('../../output.js');
    const body =
      argv.serial !== undefined
        ? { reason: argv.reason, serial: normalizeSerial(argv.serial) }
        : { reason: argv.reason, ...(argv.name === undefined ? {} : { name: argv.name }) };
    const session = await openAdminSession(adminSessionOptions(argv));
    try {
      const out = await session.request('cert.revoke', body);
      emit(
        argv,
        out,
        out.status === 'already_revoked'
          ? `already revoked: ${safe(out.serial)}`
          : `revoked ${safe(out.serial)} (${argv.reason}); CRL number ${safe(out.crlNumber)}; its live sessions are closed`,
      );
    } finally {
      await session.close();
    }
  }),
};
