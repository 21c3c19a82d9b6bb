// `kds client enroll`: generate an RSA key locally, authenticate the KDC by the pinned root CA
// fingerprint (or trust on first use, loudly), redeem a one-time token for a certificate, and store
// key.pem / cert.pem / ca.pem in the client's home. Only the CSR leaves this machine. A lost answer is
// retried once with the same CSR, and a run whose answer never came is resumed by the next run with the
// same token, each said so (client/enroll.ts).
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { fingerprintValue, integerValue, tokenValue } from '../../option-values.js';
import { homeOf, withClientOptions, type ClientArgs } from './common.js';

interface EnrollArgs extends ClientArgs {
  token: string;
  'ca-fingerprint'?: string;
  'key-bits': number;
}

export const enrollCommand: CommandModule<object, EnrollArgs> = {
  command: 'enroll',
  describe: 'get a certificate for --name with a one-time token (the private key stays here)',
  builder: (y) =>
    withClientOptions(y)
      .option('token', {
        type: 'string',
        demandOption: true,
        describe: 'one-time enrollment token (kds admin token)',
        coerce: tokenValue,
      })
      .option('ca-fingerprint', {
        type: 'string',
        describe:
          'SHA-256 of the root CA certificate (hex, colons and case ignored); without it: trust on first use',
        coerce: fingerprintValue,
      })
      .option('key-bits', {
        type: 'string',
        coerce: integerValue('--key-bits', 2048, 4096),
        default: 2048,
        choices: [2048, 3072, 4096],
        describe: 'RSA key size',
      })
      .example(
        '$0 client enroll --name alice --token T --ca-fingerprint 3f:a1:...',
        'enroll alice, pinning the root CA',
      )
      .example('$0 client enroll --name bob --token T --home ./bob', "keep bob's files in ./bob") as never,
  handler: run(async (argv: EnrollArgs) => {
    const { enroll } = await import('../../../client/enroll.js');
    const { resolveHome } = await import('../../../client/home.js');
    const { emit, warn, withProgress } = await import('../../output.js');
    const { terminalSafe } = await import('../../../shared/text/terminal-safe.js');
    const home = resolveHome(homeOf(argv));
    const result = await withProgress(argv, `enrolling ${argv.name}`, () =>
      enroll({
        server: argv.server,
        name: argv.name,
        token: argv.token,
        caFingerprint: argv['ca-fingerprint'],
        keyBits: argv['key-bits'],
        home,
        dh: argv.dh,
        onWarning: warn,
        onLostAnswer: (err) =>
          warn(
            // The message may be the KDC's (a close reason): escaped before it reaches the terminal.
            `the answer to the enrollment was lost (${err.code}: ${terminalSafe(err.message)}); sending the same request again ` +
              `(same key, same token: the KDC answers a repeat with the certificate it already issued)`,
          ),
        onResume: () =>
          warn(
            `an earlier run with this token did not get its answer: sending its key and request again ` +
              `(kept in ${home}/enrollment until the certificate is saved)`,
          ),
        onTrustOnFirstUse: (fingerprint) =>
          warn(
            `NO --ca-fingerprint GIVEN: trusting the root CA the server sent (trust on first use).\n` +
              `  root CA fingerprint: ${fingerprint}\n` +
              `  Compare it with the one \`kds server start\` printed; if they differ, someone is in the middle.`,
          ),
      }),
    );
    emit(argv, result, [
      `enrolled ${result.name}`,
      `  serial:   ${result.serialHex}`,
      `  expires:  ${new Date(result.notAfter).toISOString()}`,
      `  home:     ${result.home}`,
      `  root CA:  ${result.caFingerprint}${result.pinned ? ' (pinned)' : ' (trusted on first use)'}`,
      ...(result.resumed === true
        ? [
            '  recovered: the request of an earlier run with this token was sent again and got this certificate',
          ]
        : []),
      ...(result.lostAnswer === undefined
        ? []
        : [
            `  recovered: the first answer was lost (${result.lostAnswer}); the repeated request got this certificate`,
          ]),
    ]);
  }),
};
