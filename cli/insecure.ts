// The insecure control mode of the MITM lab (docs/attacks.md): `--insecure-dh` switches a server or a client
// to unauthenticated Diffie-Hellman (the naive design: no certificates, no signatures). It takes two
// keys: the flag AND KDS_ALLOW_INSECURE=1 in the environment; either alone is refused with
// `insecure_refused`. Every start in this mode prints a loud warning (docs/attacks.md).
import { AuthError, EXIT } from '../shared/errors.js';
import { style } from './output.js';

export const ALLOW_INSECURE_ENV = 'KDS_ALLOW_INSECURE';

export function insecureAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[ALLOW_INSECURE_ENV] === '1';
}

/** Throws insecure_refused unless the environment also allows it. */
export function assertInsecureAllowed(env: NodeJS.ProcessEnv = process.env): void {
  if (!insecureAllowed(env)) {
    throw new AuthError(
      'insecure_refused',
      `--insecure-dh disables authentication (MITM lab only): it also needs ${ALLOW_INSECURE_ENV}=1 in the environment`,
    );
  }
}

/** The warning printed on every start in insecure mode (stderr, also with --json). */
export function insecureWarning(role: 'server' | 'client'): string {
  const rule = '#'.repeat(78);
  const body =
    role === 'server'
      ? [
          'INSECURE MODE (--insecure-dh): this KDC ACCEPTS UNAUTHENTICATED SESSIONS alongside secure ones.',
          'An insecure session only CLAIMS a name and may act as that client: anyone can be anyone, and',
          'anyone on the path can read and change those sessions. Enrollment stays authenticated.',
          'MITM lab control group only: never run this where it matters.',
        ]
      : [
          'INSECURE MODE (--insecure-dh): this client uses UNAUTHENTICATED Diffie-Hellman to the KDC.',
          'No KDC certificate, no signature is checked: anyone on the path can read and change this',
          'session, including KDC-generated keys. End-to-end keys keep their own signature checks.',
          'MITM lab control group only.',
        ];
  return [rule, ...body, rule].map((l) => `${style.warn('WARNING')} ${l}`).join('\n');
}

/** The client commands that honour --insecure-dh (their channel to the KDC goes unauthenticated). */
export const KEY_COMMANDS: readonly string[] = [
  'send-key',
  'keys',
  'verify-key',
  'send',
  'revoke-key',
  'rotate-key',
  'listen',
];
/** Certificate operations always use an authenticated session. */
const CERTIFICATE_COMMANDS: readonly string[] = ['enroll', 'status', 'revoke-cert', 'cert-status'];

/**
 * yargs middleware for the client commands: `--insecure-dh` is checked (two keys) and announced before
 * any handler runs. Refusals exit here with the error's exit code, like every other CLI error.
 */
export function insecureClientMiddleware(argv: Record<string, unknown>): void {
  if (argv['insecure-dh'] !== true) return;
  const command = Array.isArray(argv._) ? String(argv._[1] ?? '') : '';
  // Other client commands (e.g. the menu) decide for themselves.
  if (!KEY_COMMANDS.includes(command) && !CERTIFICATE_COMMANDS.includes(command)) return;
  let refusal: AuthError | undefined;
  if (CERTIFICATE_COMMANDS.includes(command)) {
    refusal = new AuthError(
      'insecure_refused',
      `--insecure-dh does not apply to \`kds client ${command}\`: certificate operations always use an authenticated session`,
    );
  } else if (!insecureAllowed()) {
    try {
      assertInsecureAllowed();
    } catch (err) {
      refusal = err as AuthError;
    }
  }
  if (refusal !== undefined) {
    if (argv.json === true) process.stdout.write(`${JSON.stringify({ error: refusal.toJSON() }, null, 2)}\n`);
    else process.stderr.write(`error [${refusal.code}]: ${refusal.message}\n`);
    process.exit(refusal.exitCode ?? EXIT.auth);
  }
  process.stderr.write(`${insecureWarning('client')}\n`);
}
