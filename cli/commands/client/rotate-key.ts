// `kds client rotate-key`: replace a key with a fresh one for the same peer and mode; the old serial
// becomes superseded (both parties are told and delete it).
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { keySerialOption } from '../../options.js';
import { keyTtlValue } from '../../option-values.js';
import { withClientOptions, type ClientArgs } from './common.js';
import { iso, ttlOf, withKeyClient } from './key-common.js';

interface RotateArgs extends ClientArgs {
  serial: string;
  ttl?: string;
}

export const rotateKeyCommand: CommandModule<object, RotateArgs> = {
  command: 'rotate-key',
  describe: 'replace a key with a new serial (same peer and mode); the old one is superseded',
  builder: (y) =>
    withClientOptions(y)
      .option('serial', { ...keySerialOption, describe: 'the key to replace (32 hex digits)' })
      .option('ttl', {
        type: 'string',
        describe: 'lifetime of the new key, 1s to 90d (default 24h)',
        coerce: keyTtlValue,
      })
      .example('$0 client rotate-key --name alice --serial 3f...', 'new key, old one superseded') as never,
  handler: run(async (argv: RotateArgs) => {
    const { emit, terminalSafe: safe } = await import('../../output.js');
    const ttlMs = await ttlOf(argv.ttl);
    const out = await withKeyClient(argv, (c) => c.rotateKey(argv.serial.toLowerCase(), ttlMs));
    emit(argv, out, [
      `rotated ${safe(out.replaces ?? argv.serial)} -> ${safe(out.serial)} (${safe(out.mode)}, peer ${safe(out.peer)})`,
      `  fingerprint: ${safe(out.fingerprint)}`,
      `  expires:     ${iso(out.expiresAt)}`,
    ]);
  }),
};
