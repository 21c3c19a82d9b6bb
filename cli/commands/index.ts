// Every command area of `kds`, in the order --help lists them, and how each is registered lazily.
//
// Only an area's name and one-line description live here. Its module (subcommands, options, examples,
// handlers) is imported by the builder yargs calls when that area is the command being run (yargs 17
// awaits a builder that returns a promise), so `kds --help` loads none of them, and `kds server start`
// loads the server area only. Loading an ES module costs ~2 ms of CPU on Node 20 on our machines and
// the command areas are ~40 modules (docs/performance.md, startup); test/cli/lazy-load.test.ts fails
// if a heavy module is loaded by `kds --help`.
import type { ArgumentsCamelCase, Argv } from 'yargs';

/** What an area module exports: the builder of `kds <area>` (its subcommands, options, examples). */
export interface AreaModule {
  builder(y: Argv): Argv;
}

/**
 * A leaf area (`kds mitm`, `kds demo`) has no subcommands: its module also exports the handler, typed
 * with that command's own arguments (which yargs has parsed and validated by its builder's options).
 */
export interface LeafAreaModule extends AreaModule {
  handler(argv: never): Promise<void>;
}

export type CommandArea =
  | { command: string; describe: string; leaf?: false; load: () => Promise<AreaModule> }
  | { command: string; describe: string; leaf: true; load: () => Promise<LeafAreaModule> };

export const areas: readonly CommandArea[] = [
  {
    command: 'server',
    describe: 'set up and run the KDC/CA',
    load: () => import('./server.js'),
  },
  {
    command: 'cert',
    describe: 'issue, show, verify, revoke and list certificates (on the CA host)',
    load: () => import('./cert.js'),
  },
  {
    command: 'crl',
    describe: 'show the certificate revocation list',
    load: () => import('./crl.js'),
  },
  {
    command: 'admin',
    describe: 'operator commands over the network (enrollment tokens, revocation)',
    load: () => import('./admin.js'),
  },
  {
    command: 'client',
    describe: 'client identity: enroll, open sessions, certificate status and revocation',
    load: () => import('./client.js'),
  },
  {
    command: 'mitm',
    describe: 'Mallory: a proxy that attacks the protocol live (kds mitm --list for the attacks)',
    leaf: true,
    load: () => import('./mitm.js'),
  },
  {
    command: 'demo',
    describe:
      'run the narrated end-to-end demo (CA, KDC, Alice, Bob, key exchange, revocation, Mallory) in a temp dir',
    leaf: true,
    load: () => import('./demo.js'),
  },
];

/** Register one area on a parser: its module loads only if yargs runs its builder. */
export function registerArea(y: Argv, area: CommandArea): void {
  const builder = async (sub: Argv): Promise<Argv> => (await area.load()).builder(sub);
  if (area.leaf === true) {
    const { load } = area;
    // yargs runs a command's handler after its builder: the module is loaded by then (and cached).
    y.command(area.command, area.describe, builder, async (argv: ArgumentsCamelCase) =>
      (await load()).handler(argv as never),
    );
  } else {
    y.command(area.command, area.describe, builder);
  }
}

export const commands: ((y: Argv) => void)[] = areas.map((area) => (y: Argv) => registerArea(y, area));
