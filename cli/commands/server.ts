// `kds server ...`: set up (init) and run (start) the KDC/CA. Only yargs and cli/ helpers are imported
// here; the CA code (node-forge, better-sqlite3) loads inside the handler so `kds --help` stays fast.
import type { Argv, CommandModule } from 'yargs';
import { run, type OutputOptions } from '../output.js';
import { dataDirOption, storeOption } from '../options.js';
import { integerValue, pathValue, portValue } from '../option-values.js';
import { startCommand } from './server-start.js';

interface InitArgs extends OutputOptions {
  'data-dir': string;
  store?: string;
  'ca-key-bits': number;
  host: string[];
  port: number;
  'passphrase-file'?: string;
  'public-url'?: string;
  force: boolean;
}

export const initCommand: CommandModule<object, InitArgs> = {
  command: 'init',
  describe: 'create the root CA, the KDC and admin credentials, the store and the first CRL',
  builder: (y) =>
    y
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .option('ca-key-bits', {
        type: 'string',
        coerce: integerValue('--ca-key-bits', 2048, 4096),
        choices: [2048, 3072, 4096],
        default: 3072,
        describe: 'RSA modulus size of the root CA key',
      })
      .option('host', {
        type: 'string',
        array: true,
        default: [] as string[],
        describe:
          'extra DNS name or IP of the KDC (repeatable): added to its certificate; the first is the CRL URL host',
      })
      .option('port', {
        type: 'string',
        default: '8443',
        describe: 'KDC port, used in the CRL distribution point URL',
        coerce: portValue('--port'),
      })
      .option('public-url', {
        type: 'string',
        describe:
          'public base URL of the KDC, put in issued certificates (CRL distribution point) and CRLs (env KDS_PUBLIC_URL; default http://<first --host>:<port>, else the address `server start` listens on)',
      })
      .option('passphrase-file', {
        type: 'string',
        describe:
          'file holding the CA passphrase (else KDS_CA_PASSPHRASE; else one is generated into <data-dir>/ca/passphrase)',
        coerce: pathValue('--passphrase-file'),
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'replace an existing CA (its files are moved to <data-dir>/replaced-<time>/, not deleted)',
      })
      .example('$0 server init', 'new CA in ./certs (RSA-3072 root, RSA-2048 KDC and admin keys)')
      .example(
        'KDS_CA_PASSPHRASE=... $0 server init --host kdc.example.org --port 9443',
        'CA for a KDC reachable as kdc.example.org:9443',
      )
      .example(
        '$0 server init --data-dir /tmp/lab --ca-key-bits 2048 --json',
        'quick lab CA, JSON summary',
      ) as never,
  handler: run(async (argv: InitArgs) => {
    const { initCa } = await import('../../server/ca/init.js');
    const { cliActor } = await import('../../server/ca/authority.js');
    const { emit, warn, withProgress } = await import('../output.js');
    const result = await withProgress(argv, 'generating RSA keys and certificates', () =>
      initCa({
        dataDir: argv['data-dir'],
        caKeyBits: argv['ca-key-bits'],
        hosts: argv.host.map(String),
        port: argv.port,
        ...(argv['public-url'] === undefined ? {} : { publicUrl: argv['public-url'] }),
        force: argv.force,
        storeUrl: argv.store,
        actor: cliActor(),
        ...(argv['passphrase-file'] !== undefined ? { passphraseFile: argv['passphrase-file'] } : {}),
      }),
    );
    for (const w of result.warnings) warn(w);
    const sans = [
      ...result.serverSans.dns.map((d) => `DNS:${d}`),
      ...result.serverSans.ip.map((i) => `IP:${i}`),
    ];
    emit(argv, result, [
      `initialised a CA in ${result.dataDir}`,
      `  root CA          RSA-${result.caKeyBits}, serial ${result.caSerialHex}, valid until ${iso(result.caNotAfter)}`,
      `  fingerprint      ${result.caFingerprint256}`,
      `  KDC certificate  server/cert.pem (${sans.join(', ')})`,
      `  admin            admin/cert.pem (CN=admin, OU=kds-admin)`,
      `  CRL              root_crl.pem (number ${result.crlNumber}), distribution point ${result.crlUrl ?? 'set by `kds server start`: the address it listens on (or --public-url)'}`,
      `  passphrase       ${passphraseNote(result.passphraseSource, result.passphrasePath)}`,
      // The port the CRL distribution point names is the one to listen on: a start on the default
      // port would publish URLs nobody answers.
      `next: kds server start --data-dir ${result.dataDir}${argv.port === 8443 ? '' : ` --port ${argv.port}`}`,
    ]);
  }),
};

interface RenewArgs extends OutputOptions {
  'data-dir': string;
  store?: string;
  'passphrase-file'?: string;
  days?: number;
}

export const renewCommand: CommandModule<object, RenewArgs> = {
  command: 'renew',
  describe: "renew the KDC's own certificate with a new key (offline, with the CA passphrase)",
  builder: (y) =>
    y
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .option('passphrase-file', {
        type: 'string',
        describe: 'file holding the CA passphrase (else KDS_CA_PASSPHRASE, else <data-dir>/ca/passphrase)',
        coerce: pathValue('--passphrase-file'),
      })
      .option('days', {
        type: 'string',
        describe: 'validity in days (default: the CA maximum, as at init)',
        coerce: integerValue('--days', 1, 3650),
      })
      .example('$0 server renew', 'new KDC key and certificate in ./certs/server/')
      .example('$0 server renew --data-dir /srv/kds --json', 'JSON summary') as never,
  handler: run(async (argv: RenewArgs) => {
    const { CertificateAuthority, cliActor } = await import('../../server/ca/authority.js');
    const { resolveCaPassphrase } = await import('../../io/ca-passphrase.js');
    const { renewServerCredential } = await import('../../server/ca/server-renewal.js');
    const { emit, warn } = await import('../output.js');
    const passphraseOptions =
      argv['passphrase-file'] === undefined ? {} : { passphraseFile: argv['passphrase-file'] };
    const ca = await CertificateAuthority.open(argv['data-dir'], {
      ...passphraseOptions,
      storeUrl: argv.store,
    });
    try {
      for (const line of ca.crlFileWarnings()) warn(line);
      const { passphrase } = resolveCaPassphrase(argv['data-dir'], passphraseOptions);
      const result = await renewServerCredential(ca, {
        passphrase,
        actor: cliActor(),
        ...(argv.days === undefined ? {} : { days: argv.days }),
      });
      if (result.capped) warn(`validity capped to ${iso(result.notAfter)} (CA maximum or CA expiry)`);
      emit(argv, result, [
        `renewed the KDC certificate: serial ${result.serialHex}, valid until ${iso(result.notAfter)}`,
        `  replaces ${result.previousSerialHex} (superseded, listed on the CRL)`,
        '  a running KDC uses the new certificate after a restart',
      ]);
    } finally {
      await ca.close();
    }
  }),
};

interface PassphraseArgs extends OutputOptions {
  'data-dir': string;
  store?: string;
  'passphrase-file'?: string;
  'new-passphrase-file'?: string;
}

export const passphraseCommand: CommandModule<object, PassphraseArgs> = {
  command: 'passphrase',
  describe: 'change the CA passphrase: re-encrypt the CA, KDC and admin keys and the KEKs (offline)',
  builder: (y) =>
    y
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .option('passphrase-file', {
        type: 'string',
        describe:
          'file holding the current CA passphrase (else KDS_CA_PASSPHRASE, else <data-dir>/ca/passphrase)',
        coerce: pathValue('--passphrase-file'),
      })
      .option('new-passphrase-file', {
        type: 'string',
        describe:
          'file holding the new CA passphrase (else KDS_NEW_CA_PASSPHRASE; else, when the current one is <data-dir>/ca/passphrase, a new one is generated there)',
        coerce: pathValue('--new-passphrase-file'),
      })
      .example(
        '$0 server passphrase --new-passphrase-file /run/secrets/kds-ca-new',
        'change it, then restart the KDC',
      )
      .example(
        '$0 server passphrase',
        'replace a generated <data-dir>/ca/passphrase with a new random one',
      ) as never,
  handler: run(async (argv: PassphraseArgs) => {
    const { changeCaPassphrase } = await import('../../server/ca/passphrase-change.js');
    const { resolveNewCaPassphrase } = await import('../../io/ca-passphrase.js');
    const { cliActor } = await import('../../server/ca/authority.js');
    const { emit, warn } = await import('../output.js');
    const next = resolveNewCaPassphrase(
      argv['new-passphrase-file'] === undefined ? {} : { passphraseFile: argv['new-passphrase-file'] },
    );
    const result = await changeCaPassphrase({
      dataDir: argv['data-dir'],
      storeUrl: argv.store,
      current: argv['passphrase-file'] === undefined ? {} : { passphraseFile: argv['passphrase-file'] },
      ...(next === undefined ? {} : { next: { passphrase: next.passphrase, source: next.source } }),
      actor: cliActor(),
    });
    for (const w of [...(next?.warnings ?? []), ...result.warnings]) warn(w);
    emit(argv, result, [
      `${result.resumed ? 'finished an interrupted change of' : 'changed'} the CA passphrase of ${result.dataDir}`,
      `  re-encrypted     ${result.files.join(', ')}`,
      ...(result.storeCopy ? ['  store copy       ca.credentials updated'] : []),
      ...(result.newPassphraseSource === 'generated'
        ? [`  new passphrase   GENERATED into ${result.passphraseFile ?? 'ca/passphrase'}`]
        : result.passphraseFile === undefined
          ? []
          : [`  new passphrase   also written to ${result.passphraseFile}`]),
      'next: (re)start the KDC with the new passphrase; on a shared store, see docs/deployment.md for the other nodes',
    ]);
  }),
};

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function passphraseNote(source: string, path: string | undefined): string {
  if (source === 'generated') return `GENERATED into ${path ?? 'ca/passphrase'} (see the warning above)`;
  if (source === 'env') return 'from KDS_CA_PASSPHRASE';
  return 'from --passphrase-file';
}

/** `kds server` (its name and description are in cli/commands/index.ts, which loads this lazily). */
export function builder(s: Argv): Argv {
  s.command(initCommand);
  // `kds server start` lives in cli/commands/server-start.ts: it loads the KDC, which init does not need.
  s.command(startCommand);
  s.command(renewCommand);
  s.command(passphraseCommand);
  return s
    .demandCommand(1, 'name a server command; see kds server --help')
    .example('$0 server init', 'create the CA in ./certs');
}
