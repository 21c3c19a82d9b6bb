// KDS_* environment variables as configuration (yargs `.env('KDS')`), made safe to combine with
// `.strict()`. yargs turns EVERY KDS_<NAME> variable into an argument of whatever command runs, so with
// strict mode `export KDS_SERVER=ws://...` (meant for the client commands) made `kds crl show` fail
// with "Unknown argument: server", and KDS_DEBUG=1 broke every command. This before-validation
// middleware drops the values that came from the environment for options the running command does not
// have. Flags typed on the command line are never dropped, so an unknown FLAG is still an error.

export const ENV_PREFIX = 'KDS_';

/** KDS_DATA_DIR -> ['data-dir', 'dataDir'] (the two spellings yargs puts in argv). */
export function envKeys(variable: string): [string, string] {
  const kebab = variable.slice(ENV_PREFIX.length).toLowerCase().replace(/_/g, '-');
  return [kebab, kebab.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase())];
}

/** Whether `args` (the command line) sets option `kebab` itself (--x, --x=v, --no-x). */
function givenAsFlag(args: readonly string[], kebab: string): boolean {
  return args.some((a) => a === `--${kebab}` || a.startsWith(`--${kebab}=`) || a === `--no-${kebab}`);
}

export function dropForeignEnvironment(args: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  // yargs calls middleware with (argv, yargs); its types declare only the first parameter.
  return (argv: { [key: string]: unknown }, ...rest: unknown[]): void => {
    const y = rest[0] as { getOptions(): { key: Record<string, unknown> } };
    const known = new Set(Object.keys(y.getOptions().key));
    for (const variable of Object.keys(env)) {
      if (!variable.startsWith(ENV_PREFIX)) continue;
      const [kebab, camel] = envKeys(variable);
      if (known.has(kebab) || known.has(camel) || givenAsFlag(args, kebab)) continue;
      delete argv[kebab];
      delete argv[camel];
    }
  };
}
