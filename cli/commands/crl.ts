// `kds crl ...`: the CA's certificate revocation list (RFC 5280 section 5) and its delta CRL (5.2.4) in
// human-readable form.
// Heavy modules load inside the handler so `kds --help` stays fast.
import type { Argv, CommandModule } from 'yargs';
import { run, type OutputOptions } from '../output.js';
import { dataDirOption, storeOption } from '../options.js';
import { pathValue } from '../option-values.js';
import { EXIT } from '../../shared/errors.js';
import { terminalSafe as safe } from '../../shared/text/terminal-safe.js';

interface ShowArgs extends OutputOptions {
  'data-dir': string;
  store?: string;
  file?: string;
  delta: boolean;
}

const showCommand: CommandModule<object, ShowArgs> = {
  command: 'show [file]',
  describe:
    "print the current CRL and its delta CRL (the store's, which root_crl.pem and root_delta_crl.pem mirror) or a CRL file",
  builder: (y) =>
    y
      .positional('file', {
        type: 'string',
        describe: 'a CRL file to show instead of the current CRL',
        coerce: pathValue('<file>'),
      })
      .option('delta', {
        type: 'boolean',
        default: false,
        describe: 'show only the current delta CRL (RFC 5280 5.2.4)',
      })
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .example(
        '$0 crl show',
        'CRL number, dates and every revoked serial with its reason, then the delta CRL',
      )
      .example('$0 crl show --json', 'the same as a JSON object (the delta under "delta")')
      .example('$0 crl show --delta', 'only the delta CRL: what was revoked since the complete CRL')
      .example(
        '$0 crl show downloaded.crl.pem',
        'inspect a CRL file, checking it against this CA if there is one',
      ) as never,
  handler: run(async (argv: ShowArgs) => {
    const { parseCrl } = await import('../../shared/pki/crl.js');
    const { emit, warn } = await import('../output.js');
    const { CertificateAuthority } = await import('../../server/ca/authority.js');
    const { EnvironmentError, InputError } = await import('../../shared/errors.js');
    let pem: string | undefined;
    let deltaPem: string | undefined;
    let caCertPem: string | undefined;
    let source: string;
    let deltaSource = '';
    if (argv.file === undefined) {
      const ca = await CertificateAuthority.open(argv['data-dir'], { readOnly: true, storeUrl: argv.store });
      try {
        for (const line of ca.crlFileWarnings(true)) warn(line);
        pem = ca.currentCrlPem();
        deltaPem = ca.currentDeltaCrlPem();
        caCertPem = ca.caCertPem;
        source = ca.paths.rootCrl;
        deltaSource = ca.paths.deltaCrl;
      } finally {
        await ca.close();
      }
      if (argv.delta) {
        if (deltaPem === undefined) {
          throw new EnvironmentError(
            'ca_missing',
            'no delta CRL was issued yet: start the KDC (or revoke) with the CA key once',
          );
        }
        pem = deltaPem;
        source = deltaSource;
        deltaPem = undefined;
      }
    } else {
      if (argv.delta)
        throw new InputError('bad_request', '--delta shows the current delta CRL: give no file');
      const { readFileSync } = await import('node:fs');
      const { readUserFile, MAX_CRL_FILE_BYTES } = await import('../../io/user-files.js');
      pem = readUserFile(argv.file, 'the CRL file', MAX_CRL_FILE_BYTES).toString('utf8');
      source = argv.file;
      const { caPaths } = await import('../../io/ca-files.js');
      try {
        caCertPem = readFileSync(caPaths(argv['data-dir']).rootCa, 'utf8');
      } catch {
        caCertPem = undefined; // no CA here: show the CRL without judging its signature
      }
    }
    const now = Date.now();
    const describe = (text: string, from: string) => {
      const crl = parseCrl(text);
      const signature =
        caCertPem === undefined ? 'unchecked' : crl.signatureValid(caCertPem) ? 'valid' : 'INVALID';
      const json = {
        source: from,
        crlNumber: crl.crlNumber.toString(),
        ...(crl.baseCrlNumber !== undefined ? { baseCrlNumber: crl.baseCrlNumber.toString() } : {}),
        ...(crl.freshestCrlUrls.length > 0 ? { freshestCrl: crl.freshestCrlUrls } : {}),
        issuer: crl.issuerCN,
        thisUpdate: crl.thisUpdate,
        nextUpdate: crl.nextUpdate,
        expired: now > crl.nextUpdate,
        signature,
        entries: crl.entries,
      };
      const width = Math.max(6, ...crl.entries.map((e) => e.serialHex.length)) + 2;
      const lines = [
        `${crl.baseCrlNumber !== undefined ? 'delta CRL' : 'CRL'} ${from}`,
        `  number       ${crl.crlNumber}`,
        ...(crl.baseCrlNumber !== undefined
          ? [`  base CRL     ${crl.baseCrlNumber} (delta CRL indicator)`]
          : []),
        ...(crl.freshestCrlUrls.length > 0 ? [`  delta at     ${safe(crl.freshestCrlUrls.join(', '))}`] : []),
        `  issuer       CN=${safe(crl.issuerCN)}`,
        `  this update  ${iso(crl.thisUpdate)}`,
        `  next update  ${iso(crl.nextUpdate)}${json.expired ? '  (EXPIRED)' : ''}`,
        `  signature    ${signature}`,
        `  entries      ${crl.entries.length}`,
        ...(crl.entries.length > 0 ? [`    ${'SERIAL'.padEnd(width)}${'REVOKED AT'.padEnd(26)}REASON`] : []),
        ...crl.entries.map(
          (e) => `    ${safe(e.serialHex).padEnd(width)}${iso(e.revokedAt).padEnd(26)}${safe(e.reason)}`,
        ),
      ];
      return { json, lines, signature };
    };
    const main = describe(pem, source);
    const delta = deltaPem === undefined ? undefined : describe(deltaPem, deltaSource);
    emit(
      argv,
      delta === undefined ? main.json : { ...main.json, delta: delta.json },
      delta === undefined ? main.lines : [...main.lines, '', ...delta.lines],
    );
    return main.signature === 'INVALID' || delta?.signature === 'INVALID' ? EXIT.invalid : EXIT.ok;
  }),
};

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** `kds crl` (its name and description are in cli/commands/index.ts, which loads this lazily). */
export function builder(c: Argv): Argv {
  return c
    .command(showCommand)
    .demandCommand(1, 'name a crl command; see kds crl --help')
    .example('$0 crl show', 'the current CRL');
}
