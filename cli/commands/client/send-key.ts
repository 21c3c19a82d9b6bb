// `kds client send-key`: give a fresh AES-256 key to another client, end-to-end (default: an
// authenticated X25519 exchange relayed by the KDC, which never sees the key) or KDC-generated
// (`--mode kdc`: the classic key distribution centre). Prints the key's serial and fingerprint.
// `--mode kdc --count N`: N keys in one key.create.batch, all or nothing (docs/keys.md "Batches").
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { integerValue, keyTtlValue, nameValue } from '../../option-values.js';
import { InputError } from '../../../shared/errors.js';
import { notSelf, withClientOptions, type ClientArgs } from './common.js';
import { iso, ttlOf, withKeyClient } from './key-common.js';

interface SendKeyArgs extends ClientArgs {
  to: string;
  mode: 'e2e' | 'kdc';
  ttl?: string;
  count?: number;
}

/** `--count` asks the KDC to make the keys: an end-to-end key is one exchange with the peer per key. */
function countNeedsKdcMode(argv: { count?: unknown; mode?: unknown }): true {
  if (argv.count !== undefined && argv.mode !== 'kdc') {
    throw new InputError(
      'bad_request',
      '--count: only with --mode kdc (the KDC makes the keys; an end-to-end key is one exchange per key)',
    );
  }
  return true;
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
      .option('count', {
        type: 'string',
        // The bound (MAX_KEYS_PER_BATCH) is checked in the handler, before anything is sent: the module
        // that names it is not loaded for --help (test/cli/lazy-load.test.ts).
        describe: 'with --mode kdc: this many keys (1 to 32) in one request, all or none',
        coerce: integerValue('--count', 1),
      })
      .check(countNeedsKdcMode)
      .example('$0 client send-key --name alice --to bob', 'end-to-end key for alice and bob')
      .example('$0 client send-key --name alice --to bob --mode kdc --ttl 1h --json', 'KDC-generated, 1 hour')
      .example(
        '$0 client send-key --name alice --to bob --mode kdc --count 32',
        '32 KDC-generated keys at once',
      ) as never,
  handler: run(async (argv: SendKeyArgs) => {
    const { emit, terminalSafe: safe } = await import('../../output.js');
    const ttlMs = await ttlOf(argv.ttl);
    const count = argv.count;
    if (count !== undefined) {
      const { MAX_KEYS_PER_BATCH } = await import('../../../shared/protocol/messages-keys.js');
      if (count > MAX_KEYS_PER_BATCH) {
        throw new InputError(
          'bad_request',
          `--count: expected a whole number from 1 to ${MAX_KEYS_PER_BATCH} in decimal digits, got ${count}`,
        );
      }
      const keys = await withKeyClient(argv, (c) =>
        c.sendKdcKeys({ to: argv.to, count, ...(ttlMs === undefined ? {} : { ttlMs }) }),
      );
      emit(argv, { peer: argv.to, mode: 'kdc', keys }, [
        `sent ${keys.length} keys to ${safe(argv.to)} (kdc), expiring ${iso(keys[0]!.expiresAt)}, ${safe(keys[0]!.state)}${keys[0]!.state === 'pending' ? ` (usable once ${safe(argv.to)} has verified them)` : ''}:`,
        ...keys.map((k) => `  ${safe(k.serial)}  fingerprint ${safe(k.fingerprint)}`),
      ]);
      return;
    }
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
