// `kds client send-key`: give a fresh AES-256 key to another client, end-to-end (default: an
// authenticated X25519 exchange relayed by the KDC, which never sees the key) or KDC-generated
// (`--mode kdc`: the classic key distribution centre). Prints the key's serial and fingerprint.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { keyTtlValue, nameValue } from '../../option-values.js';
import { notSelf, withClientOptions, type ClientArgs } from './common.js';
import { iso, ttlOf, withKeyClient } from './key-common.js';

interface SendKeyArgs extends ClientArgs {
  to: string;
  mode: 'e2e' | 'kdc';
  ttl?: string;
}

export const sendKeyCommand: CommandModule<object, SendKeyArgs> = {
  command: 'send-key',
  describe: 'create an AES-256 key shared with another client (end-to-end or KDC-generated)',
  builder: (y) =>
    withClientOptions(y)
      .option('to', {
        type: 'string',
        demandOption: true,
        describe: 'the receiving client',
        coerce: nameValue('--to'),
      })
      .check(notSelf)
      .option('mode', {
        choices: ['e2e', 'kdc'] as const,
        default: 'e2e' as const,
        describe: 'e2e: the KDC never sees the key; kdc: the KDC generates it',
      })
      .option('ttl', {
        type: 'string',
        describe: 'key lifetime, 1s to 90d (e.g. 90s, 15m, 24h, 7d; default 24h)',
        coerce: keyTtlValue,
      })
      .example('$0 client send-key --name alice --to bob', 'end-to-end key for alice and bob')
      .example(
        '$0 client send-key --name alice --to bob --mode kdc --ttl 1h --json',
        'KDC-generated, 1 hour',
      ) as never,
  handler: run(async (argv: SendKeyArgs) => {
    const { emit, terminalSafe: safe } = await import('../../output.js');
    const ttlMs = await ttlOf(argv.ttl);
    const out = await withKeyClient(argv, (c) =>
      c.sendKey({ to: argv.to, mode: argv.mode, ...(ttlMs === undefined ? {} : { ttlMs }) }),
    );
    emit(argv, out, [
      `sent key ${safe(out.serial)} to ${safe(out.peer)} (${safe(out.mode)})`,
      `  fingerprint: ${safe(out.fingerprint)}`,
      `  expires:     ${iso(out.expiresAt)}`,
      `  state:       ${safe(out.state)}${out.state === 'pending' ? ` (usable once ${safe(out.peer)} has verified it)` : ''}`,
    ]);
  }),
};
