// `kds admin cert-status`: the KDC's verdict on a certificate serial, asked with the admin credential.
// Exit 0 good, 3 revoked, 6 unknown.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { certSerialOption } from '../../options.js';
import { adminSessionOptions, withAdminOptions, type AdminArgs } from './common.js';

interface CertStatusArgs extends AdminArgs {
  serial: string;
}

export const certStatusCommand: CommandModule<object, CertStatusArgs> = {
  command: 'cert-status',
  describe: 'status of a certificate serial (good / revoked / unknown)',
  builder: (y) =>
    withAdminOptions(y)
      .option('serial', { ...certSerialOption, demandOption: true })
      .example('$0 admin cert-status --serial 3a9f...', 'good, revoked (reason, time) or unknown') as never,
  handler: run(async (argv: CertStatusArgs) => {
    const { openAdminSession } = await import('../../../client/admin.js');
    const { normalizeSerial, describeStatus, statusExitCode } = await import(
      '../../../client/cert-status.js'
    );
    const { emit } = await import('../../output.js');
    const serial = normalizeSerial(argv.serial);
    const session = await openAdminSession(adminSessionOptions(argv));
    try {
      const out = await session.request('cert.status', { serial });
      emit(argv, { serialHex: serial, ...out }, describeStatus(serial, out));
      return statusExitCode(out);
    } finally {
      await session.close();
    }
  }),
};
