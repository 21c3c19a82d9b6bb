// Options every `kds client ...` command takes: --name, --home, --server, --data-dir (where the default
// home lives: <data-dir>/clients/<name>/) and --dh. Builders call `withClientOptions(y)` first.
import type { Argv } from 'yargs';
import type { OutputOptions } from '../../output.js';
import { dataDirOption, homeOption, nameOption, serverOption } from '../../options.js';
import { insecureClientMiddleware } from '../../insecure.js';
import { LAB_DISABLE_OPTION, labClientMiddleware } from '../../lab-switches.js';
import { InputError } from '../../../shared/errors.js';

export interface ClientArgs extends OutputOptions {
  name: string;
  home?: string;
  server: string;
  'data-dir': string;
  dh: 'x25519' | 'ffdhe2048';
  /** MITM lab control mode (cli/insecure.ts): unauthenticated DH to the KDC; needs KDS_ALLOW_INSECURE=1. */
  'insecure-dh'?: boolean;
  /** MITM lab ablation switches (cli/lab-switches.ts); needs KDS_ALLOW_INSECURE=1. */
  'lab-disable'?: string[];
}

export function withClientOptions<T>(y: Argv<T>): Argv<T & ClientArgs> {
  return y
    .option('name', nameOption)
    .option('home', homeOption)
    .option('server', serverOption)
    .option('data-dir', {
      ...dataDirOption,
      describe: 'directory under which the default home clients/<name>/ lives',
    })
    .option('dh', {
      choices: ['x25519', 'ffdhe2048'] as const,
      default: 'x25519' as const,
      describe: 'Diffie-Hellman group to offer first',
    })
    .option('insecure-dh', {
      type: 'boolean',
      default: false,
      describe: 'MITM lab only: unauthenticated DH to the KDC (key commands; needs KDS_ALLOW_INSECURE=1)',
    })
    .option('lab-disable', LAB_DISABLE_OPTION)
    .middleware(insecureClientMiddleware)
    .middleware(labClientMiddleware) as unknown as Argv<T & ClientArgs>;
}

/** `.check()` of the commands with `--to`: a key or a message needs two different parties. */
export function notSelf(argv: { name?: unknown; to?: unknown }): true {
  if (argv.to !== undefined && argv.to === argv.name)
    throw new InputError(
      'bad_request',
      `--to: that is --name itself (${String(argv.name)}); name the other party`,
    );
  return true;
}

/** The home location fields, for client/home.ts resolveHome. */
export function homeOf(argv: ClientArgs): { name: string; home: string | undefined; dataDir: string } {
  return { name: argv.name, home: argv.home, dataDir: argv['data-dir'] };
}
