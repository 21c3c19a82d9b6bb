// `kds client verify-key`: ask the KDC whether our copy of a key matches its record and whether the
// key is still valid. Verdict and exit code: valid 0, revoked 3, mismatch 4, expired 5, not_found 6.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { keySerialOption } from '../../options.js';
import { withClientOptions, type ClientArgs } from './common.js';
import { withKeyClient } from './key-common.js';

interface VerifyArgs extends ClientArgs {
  serial: string;
}

export const verifyKeyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify-key',
  describe: 'verify a key with the KDC (valid / mismatch / revoked / expired / not_found)',
  builder: (y) =>
    withClientOptions(y)
      .option('serial', keySerialOption)
      .example('$0 client verify-key --name bob --serial 3f...', "check bob's copy of a key")
      .example('$0 client verify-key --name bob --serial 3f... --json', '{"verdict": ...}') as never,
  handler: run(async (argv: VerifyArgs) => {
    const { emit, style, terminalSafe: safe } = await import('../../output.js');
    const { verdictExitCode } = await import('../../../shared/keys/verdict.js');
    const serial = argv.serial.toLowerCase();
    const out = await withKeyClient(argv, (c) => c.verifyKey(serial));
    const good = out.verdict === 'valid';
    emit(argv, out, [
      `${good ? style.ok(out.verdict) : style.bad(safe(out.verdict))}: key ${serial}${out.reason === undefined ? '' : ` (${safe(out.reason)})`}`,
      `  local state: ${safe(out.state)}; receiver verified: ${out.peerVerified ? 'yes' : 'no'}`,
    ]);
    return verdictExitCode(out.verdict);
  }),
};
