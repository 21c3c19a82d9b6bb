// Where the CA passphrase comes from. It encrypts the root key (PKCS#8, root_private_key.pem) and the
// KDC and admin keys. Precedence, most explicit first: a passphrase passed in code (tests, embedding),
// `--passphrase-file`, the `KDS_CA_PASSPHRASE` environment variable, and last the file that
// `kds server init` generates at `<dataDir>/ca/passphrase` when it was given none of those (with a loud
// warning: a passphrase stored next to the key it protects only protects against copying the key
// file alone). A command-line flag beats the environment, as everywhere in kds.
import { entryKind } from './fs-errors.js';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { EnvironmentError, InputError } from '../shared/errors.js';
import { ensurePrivateDir, PRIVATE_FILE_MODE, writeFileAtomic } from './fs-atomic.js';
import { caPaths } from './ca-files.js';
import { MAX_PASSPHRASE_FILE_BYTES, readUserFile } from './user-files.js';

const PASSPHRASE_ENV = 'KDS_CA_PASSPHRASE';
/** 32 random bytes, base64url: 256 bits, well above anything PBKDF2 stretching needs. */
const GENERATED_BYTES = 32;
const MAX_PASSPHRASE_CHARS = 1024;

export type PassphraseSource = 'option' | 'file' | 'env' | 'stored' | 'generated';

export interface PassphraseOptions {
  passphrase?: string;
  passphraseFile?: string;
  env?: Record<string, string | undefined>;
}

export interface ResolvedPassphrase {
  passphrase: string;
  source: PassphraseSource;
  /** The file it was read from or generated into (never the passphrase itself). */
  path?: string;
  /** Non-fatal observations for the CLI to print (e.g. a group-readable passphrase file). */
  warnings: string[];
}

/** The passphrase of an existing CA. Throws `config` when there is none anywhere. */
export function resolveCaPassphrase(dataDir: string, opts: PassphraseOptions = {}): ResolvedPassphrase {
  const supplied = suppliedPassphrase(opts);
  if (supplied !== undefined) return supplied;
  const stored = caPaths(dataDir).passphrase;
  if (entryKind(stored) !== 'missing') return readPassphraseFile(stored, 'stored');
  throw new EnvironmentError(
    'config',
    `no CA passphrase: set ${PASSPHRASE_ENV} or pass --passphrase-file (or keep ${stored} from init)`,
  );
}

/**
 * The passphrase for a new CA: the supplied one, or a freshly generated one written to
 * `<dataDir>/ca/passphrase` (0600, in a 0700 directory). `source: 'generated'` tells the caller to warn.
 */
export function createCaPassphrase(dataDir: string, opts: PassphraseOptions = {}): ResolvedPassphrase {
  const supplied = suppliedPassphrase(opts);
  if (supplied !== undefined) return supplied;
  const paths = caPaths(dataDir);
  ensurePrivateDir(paths.caDir);
  const passphrase = randomBytes(GENERATED_BYTES).toString('base64url');
  writeFileAtomic(paths.passphrase, `${passphrase}\n`, PRIVATE_FILE_MODE);
  return {
    passphrase,
    source: 'generated',
    path: paths.passphrase,
    warnings: [
      `no ${PASSPHRASE_ENV} or --passphrase-file given: generated a random CA passphrase into ${paths.passphrase}. ` +
        'Anyone who can read that file can use the CA key; move it somewhere safer and pass it with ' +
        `${PASSPHRASE_ENV} or --passphrase-file.`,
    ],
  };
}

const NEW_PASSPHRASE_ENV = 'KDS_NEW_CA_PASSPHRASE';

/**
 * The new passphrase of `kds server passphrase`: `--new-passphrase-file`, else `KDS_NEW_CA_PASSPHRASE`
 * (never a command-line value: it would show in `ps` and the shell history). undefined when neither is
 * given (the caller generates one, or refuses).
 */
export function resolveNewCaPassphrase(
  opts: { passphraseFile?: string; env?: Record<string, string | undefined> } = {},
): (ResolvedPassphrase & { source: 'file' | 'env' }) | undefined {
  if (opts.passphraseFile !== undefined) {
    return { ...readPassphraseFile(opts.passphraseFile, 'file'), source: 'file' };
  }
  const env = (opts.env ?? process.env)[NEW_PASSPHRASE_ENV];
  if (env !== undefined && env !== '') {
    return { passphrase: checked(env, NEW_PASSPHRASE_ENV), source: 'env', warnings: [] };
  }
  return undefined;
}

function suppliedPassphrase(opts: PassphraseOptions): ResolvedPassphrase | undefined {
  if (opts.passphrase !== undefined)
    return { passphrase: checked(opts.passphrase, 'the passphrase'), source: 'option', warnings: [] };
  if (opts.passphraseFile !== undefined) return readPassphraseFile(opts.passphraseFile, 'file');
  const env = (opts.env ?? process.env)[PASSPHRASE_ENV];
  if (env !== undefined && env !== '')
    return { passphrase: checked(env, PASSPHRASE_ENV), source: 'env', warnings: [] };
  return undefined;
}

function readPassphraseFile(path: string, source: 'file' | 'stored'): ResolvedPassphrase {
  let text: string;
  try {
    text = readUserFile(path, 'the passphrase file', MAX_PASSPHRASE_FILE_BYTES).toString('utf8');
  } catch (err) {
    // A --passphrase-file that names a directory, a device or a FIFO is the person's typo (exit 2);
    // the data directory's own file being one is a broken CA setup, like any other read failure.
    if (err instanceof InputError && source === 'file') throw err;
    throw new EnvironmentError('config', (err as Error).message, { path }, { cause: err });
  }
  const warnings: string[] = [];
  if ((statSync(path).mode & 0o077) !== 0) {
    warnings.push(`passphrase file ${path} is readable by group or others; chmod 600 it`);
  }
  // One trailing newline is what editors and `echo` add; it is not part of the passphrase.
  const passphrase = text.replace(/\r?\n$/, '');
  return { passphrase: checked(passphrase, `passphrase file ${path}`), source, path, warnings };
}

function checked(passphrase: string, what: string): string {
  if (passphrase.length === 0) throw new EnvironmentError('config', `${what} is empty`);
  if (passphrase.length > MAX_PASSPHRASE_CHARS) {
    throw new EnvironmentError('config', `${what} is longer than ${MAX_PASSPHRASE_CHARS} characters`);
  }
  return passphrase;
}
