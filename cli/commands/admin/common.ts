// Options every `kds admin ...` command takes: --data-dir (where the admin credential lives:
// <data-dir>/admin/, decrypted with the CA passphrase), --server and --passphrase-file.
import type { Argv } from 'yargs';
import type { OutputOptions } from '../../output.js';
import { dataDirOption, serverOption } from '../../options.js';
import { pathValue } from '../../option-values.js';

export interface AdminArgs extends OutputOptions {
  'data-dir': string;
  server: string;
  'passphrase-file'?: string;
}

export function withAdminOptions<T>(y: Argv<T>): Argv<T & AdminArgs> {
  return y
    .option('data-dir', dataDirOption)
    .option('server', serverOption)
    .option('passphrase-file', {
      type: 'string',
      describe: 'file holding the CA passphrase that protects the admin key (else KDS_CA_PASSPHRASE)',
      coerce: pathValue('--passphrase-file'),
    }) as unknown as Argv<T & AdminArgs>;
}

/** Options for client/admin.ts openAdminSession. */
export function adminSessionOptions(argv: AdminArgs): {
  dataDir: string;
  server: string;
  passphraseFile?: string;
} {
  return argv['passphrase-file'] === undefined
    ? { dataDir: argv['data-dir'], server: argv.server }
    : { dataDir: argv['data-dir'], server: argv.server, passphraseFile: argv['passphrase-file'] };
}
