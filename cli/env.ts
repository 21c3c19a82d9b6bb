// KDS_* environment variables as configuration (yargs `.env('KDS')`), made safe to combine with
// `.strict()`. yargs turns EVERY KDS_<NAME> variable into an argument of whatever command runs, so with
// strict mode `export KDS_SERVER=ws://...` (meant for the client commands) made `kds crl show` fail
// with "Unknown argument: server", and KDS_DEBUG=1 broke every command. This before-validation
// middleware drops the values that came from the environment for options the running command does not
// have. Flags typed on the command line are never dropped, so an unknown FLAG is still an error.
//
// Some options are flags only (FLAG_ONLY): the environment never sets them, whatever the command.
// `--insecure-dh` is one: its second key is KDS_ALLOW_INSECURE=1 in the environment, so if
// KDS_INSECURE_DH=true could stand in for the flag, an environment alone would switch a KDC or a client
// to unauthenticated Diffie-Hellman with nothing on the command line to show it.

import { InputError } from '../shared/errors.js';

const ENV_PREFIX = 'KDS_';

/** Options the environment may never set: they must be typed on the command line. */
const FLAG_ONLY: readonly string[] = ['insecure-dh', 'lab-disable'];

/** KDS_DATA_DIR -> ['data-dir', 'dataDir'] (the two spellings yargs puts in argv). */
function envKeys(variable: string): [string, string] {
  const kebab = variable.slice(ENV_PREFIX.length).toLowerCase().replace(/_/g, '-');
  return [kebab, kebab.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase())];
}

/** Whether `args` (the command line) sets option `kebab` itself (--x, --x=v, --no-x). */
function givenAsFlag(args: readonly string[], kebab: string): boolean {
  return args.some((a) => a === `--${kebab}` || a.startsWith(`--${kebab}=`) || a === `--no-${kebab}`);
}

export function dropForeignEnvironment(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  warn: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
) {
  // yargs may run a global middleware more than once in one parse (`kds server start` ran it twice and
  // printed the warning twice): each variable is warned about once.
  const warned = new Set<string>();
  // yargs calls middleware with (argv, yargs); its types declare only the first parameter.
  return (argv: { [key: string]: unknown }, ...rest: unknown[]): void => {
    const y = rest[0] as {
      getOptions(): { key: Record<string, unknown>; default: Record<string, unknown>; boolean: string[] };
    };
    const options = y.getOptions();
    const known = new Set(Object.keys(options.key));
    for (const variable of Object.keys(env)) {
      if (!variable.startsWith(ENV_PREFIX)) continue;
      const [kebab, camel] = envKeys(variable);
      if (givenAsFlag(args, kebab)) continue;
      if (FLAG_ONLY.includes(kebab)) {
        if (known.has(kebab)) {
          if (!warned.has(variable))
            warn(`warning: ${variable} is ignored: --${kebab} is a command-line flag only`);
          warned.add(variable);
          // Back to the option's default (off), as if the variable were not set.
          argv[kebab] = argv[camel] = options.default[kebab];
        } else {
          delete argv[kebab];
          delete argv[camel];
        }
        continue;
      }
      if (known.has(kebab) || known.has(camel)) {
        // yargs reads any word but `true` as false: KDS_JSON=1 would silently give human output.
        const value = env[variable];
        if (options.boolean.includes(kebab) && value !== 'true' && value !== 'false')
          throw new InputError(
            'bad_request',
            `${variable} takes true or false, got ${JSON.stringify(value)}`,
          );
        continue;
      }
      delete argv[kebab];
      delete argv[camel];
    }
    // yargs's prefix match has no separator: any variable that merely starts with KDS is read too.
    // `KDS` itself (a natural name for an alias of the command) becomes an option named "", `KDSBIN`
    // one named `bin`, `KDS__X` (`__` nests) "" again; strict mode then refused every command. None
    // of them is kds configuration: what they set is undone, back to the option's default.
    for (const variable of Object.keys(env)) {
      if (!variable.startsWith('KDS') || /^KDS_[A-Za-z0-9]/.test(variable)) continue;
      const kebab = variable
        .split('__')[0]!
        .slice('KDS'.length)
        .toLowerCase()
        .replace(/_/g, '-')
        .replace(/^-+/, '');
      const camel = kebab.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
      if (kebab !== '' && givenAsFlag(args, kebab)) continue;
      if (kebab !== '' && (known.has(kebab) || known.has(camel)) && options.default[kebab] !== undefined) {
        argv[kebab] = argv[camel] = options.default[kebab];
      } else {
        delete argv[kebab];
        delete argv[camel];
      }
    }
  };
}
