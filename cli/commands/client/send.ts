// `kds client send`: encrypt a message with the AES key shared with another client (AES-256-GCM; the
// KDC relays the ciphertext and never sees the text). The receiver's `kds client listen` prints it.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { keySerialValue, messageValue, nameValue } from '../../option-values.js';
import { notSelf, withClientOptions, type ClientArgs } from './common.js';
import { withKeyClient } from './key-common.js';

interface SendArgs extends ClientArgs {
  to: string;
  message: string;
  serial?: string;
}

export const sendCommand: CommandModule<object, SendArgs> = {
  command: 'send',
  describe: 'send a message encrypted with the key shared with another client',
  builder: (y) =>
    withClientOptions(y)
      .option('to', {
        type: 'string',
        demandOption: true,
        describe: 'the receiving client',
        coerce: nameValue('--to'),
      })
      .check(notSelf)
      .option('message', {
        type: 'string',
        demandOption: true,
        describe: 'the text to send (at most 32 KiB)',
        coerce: messageValue,
      })
      .option('serial', {
        type: 'string',
        describe: 'key to use (default: the newest active key shared with --to)',
        coerce: keySerialValue,
      })
      .example(
        '$0 client send --name alice --to bob --message "hi"',
        'bob prints it in kds client listen',
      ) as never,
  handler: run(async (argv: SendArgs) => {
    const { emit, terminalSafe: safe } = await import('../../output.js');
    const out = await withKeyClient(argv, (c) =>
      c.sendMessage({
        to: argv.to,
        text: String(argv.message),
        ...(argv.serial === undefined ? {} : { serial: argv.serial.toLowerCase() }),
      }),
    );
    emit(
      argv,
      out,
      `sent to ${argv.to} with key ${safe(out.serial)} (${out.delivered > 0 ? 'delivered' : 'queued until they connect'})`,
    );
  }),
};
