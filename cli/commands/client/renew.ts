// `kds client renew`: renew this client's certificate with a new key pair, over a session its current
// certificate authenticates (client/renew.ts). The old certificate stays valid until the KDC has seen
// the new one (this command's last step), then it is superseded and listed on the CRL.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { integerValue } from '../../option-values.js';
import { homeOf, withClientOptions, type ClientArgs } from './common.js';

interface RenewArgs extends ClientArgs {
  'key-bits': number;
}

export const renewCommand: CommandModule<object, RenewArgs> = {
  command: 'renew',
  describe: 'renew this client certificate with a new key pair (the old one is superseded)',
  builder: (y) =>
    withClientOptions(y)
      .option('key-bits', {
        type: 'string',
        coerce: integerValue('--key-bits', 2048, 4096),
        choices: [2048, 3072, 4096],
        default: 2048,
        describe: 'RSA modulus size of the new key',
      })
      .example('$0 client renew --name alice', "renew alice's certificate")
      .example('$0 client renew --name alice --json', 'JSON summary') as never,
  handler: run(async (argv: RenewArgs) => {
    const { renewClient } = await import('../../../client/renew.js');
    const { emit, warn, withProgress, terminalSafe: safe } = await import('../../output.js');
    const result = await withProgress(argv, 'generating a new RSA key and renewing', () =>
      renewClient({ ...homeOf(argv), server: argv.server, dh: argv.dh, keyBits: argv['key-bits'] }),
    );
    const { CLOCK_SKEW_WARN_MS, clockSkewOf, describeSkew } = await import(
      '../../../shared/pki/clock-skew.js'
    );
    // The new certificate's notBefore is the CA's clock at issuance (less its backdate): measured a moment
    // after it arrived, a gap of a minute or more is this machine's clock, not the network.
    const skewMs = clockSkewOf(result, Date.now());
    if (Math.abs(skewMs) >= CLOCK_SKEW_WARN_MS) {
      warn(
        `this machine's clock is ${describeSkew(skewMs)} (measured from the new certificate): certificate and key dates are read on it, so correct it (NTP)`,
      );
    }
    if (result.installError !== undefined) {
      warn(
        `renewed, but the KDC could not be told yet (${result.installError.code}): the next session with it installs the new certificate`,
      );
    }
    emit(argv, result, [
      `renewed ${safe(result.name)}: serial ${result.serialHex}, valid until ${new Date(result.notAfter).toISOString()}`,
      result.installed
        ? `  replaces ${result.previousSerialHex} (now superseded, listed on the CRL)`
        : `  replaces ${result.previousSerialHex} (superseded once the KDC sees the new certificate)`,
      `  home: ${safe(result.home)}`,
    ]);
  }),
};
