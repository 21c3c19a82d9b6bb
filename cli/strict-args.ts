// Two ways yargs reads a command line that kds refuses instead (usage errors, before any command runs):
//
// - An option given twice. yargs keeps both values as an array, which a single-valued option's code
//   does not expect: `--data-dir d --data-dir d` crashed (`internal`), `--mode e2e --mode kdc` was
//   printed as "(e2e,kdc)", two `--reason`s were sent to the KDC and refused as a malformed message.
//   Only the options declared `array: true` (`--host`, `--head`) take several values.
// - A boolean given a value other than `true` or `false`. yargs reads any other word as false:
//   `--json=maybe` and `--revoked=yes` silently meant "no".
//
// Also here: whether a usage error is to be printed as JSON, decided from the command line itself,
// since yargs has not (or not successfully) parsed it when it reports the error.
import { InputError } from '../shared/errors.js';

interface ParserOptions {
  key: Record<string, unknown>;
  boolean: string[];
  array: string[];
  alias: Record<string, string[]>;
}

const camel = (kebab: string): string => kebab.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The command-line words yargs reads as options: everything before a `--`. */
function optionWords(args: readonly string[]): readonly string[] {
  const end = args.indexOf('--');
  return end === -1 ? args : args.slice(0, end);
}

/** The boolean option that `name` (as typed after `--`, camel case or not) spells, if any. */
function booleanNamed(options: ParserOptions, name: string): string | undefined {
  return options.boolean.find((b) => b === name || b === kebab(name) || camel(b) === name);
}

/**
 * A before-validation middleware (runs before every option's coerce): throws InputError `bad_request`
 * for an option given more than once, or a boolean flag given a value other than true or false.
 */
export function refuseLooseArguments(args: readonly string[]) {
  // yargs calls middleware with (argv, yargs); its types declare only the first parameter.
  return (argv: { [key: string]: unknown }, ...rest: unknown[]): void => {
    const options = (rest[0] as { getOptions(): ParserOptions }).getOptions();
    const words = optionWords(args);
    for (const word of words) {
      const m = /^--([^=]+)=([\s\S]*)$/.exec(word);
      if (m === null) continue;
      const name = booleanNamed(options, m[1]!);
      if (name !== undefined && m[2] !== 'true' && m[2] !== 'false')
        throw new InputError('bad_request', `--${name} takes true or false, got ${JSON.stringify(m[2])}`);
    }
    // yargs folds a repeated boolean into one value: counted on the command line instead.
    for (const name of options.boolean) {
      const spellings = new Set([name, camel(name), ...(options.alias[name] ?? [])]);
      const given = words.filter((w) => {
        const m = /^--?(?:no-)?([^=]+)/.exec(w);
        return m !== null && spellings.has(m[1]!);
      });
      if (given.length > 1) throw new InputError('bad_request', `--${name} given more than once`);
    }
    // Any other repeated option is an array in argv (under every spelling: data-dir and dataDir).
    for (const name of Object.keys(options.key)) {
      if (!Array.isArray(argv[name])) continue;
      const spellings = [name, camel(name), ...(options.alias[name] ?? [])];
      if (!spellings.some((s) => options.array.includes(s)))
        throw new InputError('bad_request', `--${name} given more than once`);
    }
  };
}

/**
 * Whether the command line (or KDS_JSON) asks for JSON output, read as yargs would read it: the last
 * `--json`, `--json=true|false`, `--json true|false` or `--no-json` wins, else KDS_JSON=true.
 */
export function jsonRequested(args: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  const words = optionWords(args);
  let json: boolean | undefined;
  words.forEach((w, i) => {
    if (w === '--json') json = words[i + 1] !== 'false';
    else if (w === '--json=true') json = true;
    else if (w === '--json=false' || w === '--no-json') json = false;
  });
  return json ?? env.KDS_JSON === 'true';
}
