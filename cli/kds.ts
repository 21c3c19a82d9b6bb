// The `kds` command: yargs root. The command areas are listed in cli/commands/index.ts, which loads an
// area's module (cli/commands/<area>.ts) only when that command runs; those modules load their heavy
// modules (node-forge, better-sqlite3, ws) inside the handler. So `kds --help` loads yargs and seven small
// modules of ours (docs/performance.md measures it; test/cli/lazy-load.test.ts keeps it so): import
// nothing else at the top of this file.
import { createRequire } from 'node:module';
import type yargsFactory from 'yargs';
import type * as yargsHelpers from 'yargs/helpers';
import { EXIT, KdsError } from '../shared/errors.js';
import { terminalSafe, terminalSafeJson } from '../shared/text/terminal-safe.js';
import { commands } from './commands/index.js';
import { watchForClosedOutput } from './closed-pipe.js';
import { dropForeignEnvironment } from './env.js';
import { jsonRequested, refuseLooseArguments } from './strict-args.js';
import { tidyUsageMessage } from './usage-message.js';

// yargs is loaded through its CommonJS entry on purpose: the ESM entry bundles cliui's ESM shim, whose
// wrap() cuts help text every N characters, mid-word ("revoked / unkno" + "wn"); the CommonJS entry wraps
// at word boundaries (wrap-ansi). Same API and types, same startup cost (measured by bench/startup.ts).
const require = createRequire(import.meta.url);
const yargs = require('yargs') as typeof yargsFactory;
const { hideBin } = require('yargs/helpers') as typeof yargsHelpers;

/**
 * Ends the process with an error reported as every kds error is (cli/output.ts reportError): with --json
 * (or KDS_JSON=true) `{"error": {...}}` on stdout, otherwise `error [code]: message` on stderr. The
 * message may quote what was typed (an unknown flag, a bad value): escaped, never raw.
 */
function failWith(error: { code: string; message: string }, exitCode: number, hint: boolean): never {
  if (jsonRequested(hideBin(process.argv))) {
    process.stdout.write(`${terminalSafeJson({ error }, 2)}\n`);
  } else {
    const help = hint ? '\n(run with --help for usage)' : '';
    process.stderr.write(`error [${error.code}]: ${terminalSafe(error.message)}${help}\n`);
  }
  process.exit(exitCode);
}

/**
 * A usage error ends the process: exit 2 with `error [bad_request]: ...`. A value refused while parsing
 * (an option's coerce, cli/option-values.ts: yargs wraps the error as a YError, keeping its message) or
 * by a command's .check() or a middleware (a KdsError: its own code and exit code) is one too. Anything
 * else thrown while parsing is a bug: `internal`, exit 1, no stack trace (KDS_DEBUG=1 shows it).
 */
function failUsage(msg: string | null | undefined, err: Error | null | undefined): never {
  if (err !== undefined && err !== null) {
    if (err instanceof KdsError) failWith(err.toJSON(), err.exitCode, true);
    if (err.name !== 'YError') {
      if (process.env.KDS_DEBUG) process.stderr.write(`${String(err.stack)}\n`);
      failWith({ code: 'internal', message: 'internal error' }, EXIT.failure, false);
    }
    failWith({ code: 'bad_request', message: err.message }, EXIT.usage, true);
  }
  failWith(
    { code: 'bad_request', message: tidyUsageMessage(msg ?? '', hideBin(process.argv)) },
    EXIT.usage,
    true,
  );
}

// A reader that stops reading (`| head -1`) ends kds quietly with exit 0 (cli/closed-pipe.ts).
watchForClosedOutput();

const parser = yargs(hideBin(process.argv))
  .scriptName('kds')
  .usage(
    '$0 <command> [options]\n\nkds: a Key Distribution System (CA, authenticated DH sessions, AES-256 key distribution, MITM lab).',
  )
  .env('KDS')
  .option('json', { type: 'boolean', default: false, describe: 'machine-readable JSON output', global: true })
  // Secrets come only from the environment (KDS_CA_PASSPHRASE, KDS_CLIENT_PASSPHRASE), read by the code
  // that needs them. Declared (hidden) so that .env('KDS') + .strict() accept them; as flags they are
  // refused below, since a command line is visible to every user in `ps`.
  .option('ca-passphrase', { type: 'string', hidden: true, global: true })
  .option('client-passphrase', { type: 'string', hidden: true, global: true })
  // KDS_ALLOW_INSECURE=1, the second key of the MITM lab's insecure mode (cli/insecure.ts): declared so
  // that .strict() accepts it from the environment; refused as a flag below (it must be a deliberate
  // environment setting, not one more word on a command line).
  .option('allow-insecure', { type: 'string', hidden: true, global: true })
  .strict()
  // KDS_* variables configure the commands that have the option and are ignored by the others (cli/env.ts).
  .middleware(dropForeignEnvironment(hideBin(process.argv)), true)
  // Added before any command's options, so it runs before their coerce functions (cli/strict-args.ts).
  .middleware(refuseLooseArguments(hideBin(process.argv)), true)
  .demandCommand(1, 'name a command; see kds --help')
  .recommendCommands()
  .epilog(
    'Exit codes: 0 ok, 1 failure, 2 usage, 3 revoked, 4 invalid, 5 expired, 6 not found, 7 authentication, 8 unavailable.\nDocs: docs/cli.md',
  )
  .help()
  .alias('h', 'help')
  // Read only when asked for: `kds --help` loads as few of our modules as it can.
  .version(
    hideBin(process.argv).includes('--version')
      ? (await import('../io/package-version.js')).kdsVersion()
      : 'unknown',
  )
  .wrap(Math.min(110, process.stdout.columns || 100))
  .fail(failUsage);

if (hideBin(process.argv).some((a) => /^--(ca|client)-?passphrase/i.test(a))) {
  failWith(
    {
      code: 'bad_request',
      message: 'pass passphrases in the environment or with --passphrase-file, never as flags',
    },
    EXIT.usage,
    false,
  );
}

if (hideBin(process.argv).some((a) => /^--allow-?insecure/i.test(a))) {
  failWith(
    {
      code: 'bad_request',
      message: 'KDS_ALLOW_INSECURE=1 is set in the environment, never as a flag (see --insecure-dh)',
    },
    EXIT.usage,
    false,
  );
}

for (const register of commands) register(parser);

// A leaf area's options (kds mitm, kds demo) are parsed at the root: a value they refuse rejects here
// instead of reaching .fail().
await parser
  .parseAsync()
  .catch((err: unknown) => failUsage(undefined, err instanceof Error ? err : new Error(String(err))));
