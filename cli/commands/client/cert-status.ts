// `kds client cert-status`: ask the KDC (inside an authenticated session, like OCSP) whether a
// certificate serial is good, revoked (with reason and time) or unknown. Exit 0 good, 3 revoked,
// 6 unknown.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { certSerialOption } from '../../options.js';
import { homeOf, withClientOptions, type ClientArgs } from './common.js';

interface CertStatusArgs extends ClientArgs {
  serial: string;
}

export const certStatusCommand: CommandModule<object, CertStatusArgs> = {
  command: 'cert-status',
  describe: 'ask the KDC for the status of a certificate serial (good / revoked / unknown)',
  builder: (y) =>
    withClientOptions(y)
      .option('serial', { ...certSerialOption, demandOption: true })
      .example(
        '$0 client cert-status --name alice --serial 3a9f...',
        "is bob's certificate still good?",
      ) as never,
  handler: run(async (argv: CertStatusArgs) => {
    const { openHomeSession } = await import('../../../client/session.js');
    const { normalizeSerial, describeStatus, statusExitCode } = await import(
      '../../../client/cert-status.js'
    );
    const { emit } = await import('../../output.js');
    const serial = normalizeSerial(argv.serial);
    const session = await openHomeSession({ ...homeOf(argv), server: argv.server, dh: argv.dh });
    try {
      const out = await session.request('cert.status', { serial });
      emit(argv, { serialHex: serial, ...out }, describeStatus(serial, out));
      return statusExitCode(out);
    } finally {
      await session.close();
    }
  }),
};
