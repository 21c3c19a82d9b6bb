// `--lab-disable <defence>`: the MITM lab's ablation switches (shared/lab-switches.ts) on the command
// line of `kds server start` and the key commands of `kds client`. Gated exactly like --insecure-dh
// (cli/insecure.ts): the flag typed on the command line AND KDS_ALLOW_INSECURE=1 in the environment;
// the environment alone never switches a defence off (KDS_LAB_DISABLE is a FLAG_ONLY option,
// cli/env.ts), a peer never can (the set is fixed when the process starts and only passed down), and
// certificate operations (enrollment above all) refuse the flag. Every start with a switch prints a
// loud warning naming each defence that is off.
import { AuthError, InputError } from '../shared/errors.js';
import {
  ALL_DEFENCES_ON,
  LAB_SWITCHES,
  LAB_SWITCH_EFFECT,
  defencesWithout,
  isLabSwitch,
  type Defences,
  type LabSwitch,
} from '../shared/lab-switches.js';
import { ALLOW_INSECURE_ENV, KEY_COMMANDS, insecureAllowed } from './insecure.js';
import { style } from './output.js';

export const LAB_DISABLE_OPTION = {
  type: 'string',
  array: true,
  requiresArg: true,
  describe: `MITM lab only: switch one defence off (repeatable; needs ${ALLOW_INSECURE_ENV}=1): ${LAB_SWITCHES.join(', ')}`,
} as const;

/** The switch names given (`--lab-disable a --lab-disable b` or `--lab-disable a,b`), checked. */
function parseLabDisable(value: unknown): LabSwitch[] {
  if (value === undefined) return [];
  const raw = (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(','));
  const out: LabSwitch[] = [];
  for (const name of raw.map((n) => n.trim()).filter((n) => n !== '')) {
    if (!isLabSwitch(name)) {
      throw new InputError(
        'bad_request',
        `--lab-disable: unknown defence ${JSON.stringify(name.slice(0, 64))}; one of ${LAB_SWITCHES.join(', ')}`,
      );
    }
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/** Throws insecure_refused unless KDS_ALLOW_INSECURE=1 too. */
function assertLabAllowed(off: readonly LabSwitch[], env: NodeJS.ProcessEnv = process.env): void {
  if (off.length > 0 && !insecureAllowed(env)) {
    throw new AuthError(
      'insecure_refused',
      `--lab-disable switches defences off (MITM lab only): it also needs ${ALLOW_INSECURE_ENV}=1 in the environment`,
    );
  }
}

/** The warning printed on every start with a switch (stderr, also with --json). */
function labWarning(role: 'server' | 'client', off: readonly LabSwitch[]): string {
  const rule = '#'.repeat(78);
  const who = role === 'server' ? 'this KDC' : 'this client';
  const body = [
    `LAB MODE (--lab-disable): ${who} runs with ${off.length} DEFENCE${off.length === 1 ? '' : 'S'} SWITCHED OFF:`,
    ...off.map((s) => `  - ${s}: ${LAB_SWITCH_EFFECT[s]}`),
    role === 'server'
      ? 'Enrollment stays fully checked. MITM lab only: never run this where it matters.'
      : 'MITM lab only: never use this where it matters.',
  ];
  return [rule, ...body, rule].map((l) => `${style.warn('WARNING')} ${l}`).join('\n');
}

/**
 * The defences of a `kds server start`: `--lab-disable` plus `--insecure-dh` (the same thing as
 * `--lab-disable authentication`). Refuses and warns as described above.
 */
export function serverDefences(argv: { 'lab-disable'?: unknown; 'insecure-dh'?: boolean }): {
  defences: Defences;
  off: LabSwitch[];
} {
  const off = parseLabDisable(argv['lab-disable']);
  if (argv['insecure-dh'] === true && !off.includes('authentication')) off.unshift('authentication');
  if (off.length === 0) return { defences: ALL_DEFENCES_ON, off };
  assertLabAllowed(off);
  // --insecure-dh alone keeps its own warning (cli/insecure.ts); any other switch gets this one.
  if (off.some((s) => s !== 'authentication')) process.stderr.write(`${labWarning('server', off)}\n`);
  return { defences: defencesWithout(off), off };
}

/** The defences of a key command, already checked by labClientMiddleware. */
export function clientDefences(argv: { 'lab-disable'?: unknown }): Defences {
  const off = parseLabDisable(argv['lab-disable']);
  return off.length === 0 ? ALL_DEFENCES_ON : defencesWithout(off);
}

/**
 * yargs middleware for the client commands: `--lab-disable` is checked (known names, two keys, key
 * commands only) and announced before any handler runs; refusals exit with the error's code.
 */
export function labClientMiddleware(argv: Record<string, unknown>): void {
  const given = argv['lab-disable'];
  if (given === undefined || (Array.isArray(given) && given.length === 0)) return;
  const command = Array.isArray(argv._) ? String(argv._[1] ?? '') : '';
  let off: LabSwitch[] = [];
  let refusal: AuthError | InputError | undefined;
  try {
    off = parseLabDisable(given);
    if (!KEY_COMMANDS.includes(command)) {
      throw new AuthError(
        'insecure_refused',
        `--lab-disable does not apply to \`kds client ${command}\`: only the key commands (${KEY_COMMANDS.join(', ')}) take it`,
      );
    }
    assertLabAllowed(off);
  } catch (err) {
    refusal = err as AuthError | InputError;
  }
  if (refusal !== undefined) {
    if (argv.json === true) process.stdout.write(`${JSON.stringify({ error: refusal.toJSON() }, null, 2)}\n`);
    else process.stderr.write(`error [${refusal.code}]: ${refusal.message}\n`);
    process.exit(refusal.exitCode);
  }
  if (off.length > 0) process.stderr.write(`${labWarning('client', off)}\n`);
}
