// `kds crl ...`: the CA's certificate revocation list (RFC 5280 section 5) in human-readable form.
// Heavy modules load inside the handler so `kds --help` stays fast.
import type { Argv, CommandModule } from 'yargs';
import { run, type OutputOptions } from '../output.js';
import { dataDirOption } from '../options.js';
import { EXIT } from '../../shared/errors.js';

interface ShowArgs extends OutputOptions {
  'data-dir': string;
  file?: string;
}

const showCommand: CommandModule<object, ShowArgs> = {
  command: 'show [file]',
  describe: "print the current CRL (the store's, which root_crl.pem mirrors) or a CRL file",
  builder: (y) =>
    y
      .positional('file', { type: 'string', describe: 'a CRL file to show instead of the current CRL' })
      .option('data-dir', dataDirOption)
      .example('$0 crl show', 'CRL number, dates and every revoked serial with its reason')
      .example('$0 crl show --json', 'the same as a JSON object')
      .example(
        '$0 crl show downloaded.crl.pem',
        'inspect a CRL file, checking it against this CA if there is one',
      ) as never,
  handler: run(async (argv: ShowArgs) => {
    const { parseCrl } = await import('../../shared/pki/crl.js');
    const { emit, warn } = await import('../output.js');
    const { CertificateAuthority } = await import('../../server/ca/authority.js');
    let pem: string;
    let caCertPem: string | undefined;
    let source: string;
    if (argv.file === undefined) {
      const ca = await CertificateAuthority.open(argv['data-dir'], { readOnly: true });
      try {
        if (ca.crlFileRepair !== 'ok') warn(`root_crl.pem was ${ca.crlFileRepair}: rewritten from the store`);
        pem = ca.currentCrlPem();
        caCertPem = ca.caCertPem;
        source = ca.paths.rootCrl;
      } finally {
        ca.close();
      }
    } else {
      const { readFileSync } = await import('node:fs');
      const { EnvironmentError } = await import('../../shared/errors.js');
      try {
        pem = readFileSync(argv.file, 'utf8');
      } catch (err) {
        throw new EnvironmentError(
          'io_error',
          `cannot read ${argv.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
        );
      }
      source = argv.file;
      const { caPaths } = await import('../../server/ca/files.js');
      try {
        caCertPem = readFileSync(caPaths(argv['data-dir']).rootCa, 'utf8');
      } catch {
        caCertPem = undefined; // no CA here: show the CRL without judging its signature
      }
    }
    const crl = parseCrl(pem);
    const signature =
      caCertPem === undefined ? 'unchecked' : crl.signatureValid(caCertPem) ? 'valid' : 'INVALID';
    const now = Date.now();
    const json = {
      source,
      crlNumber: crl.crlNumber.toString(),
      issuer: crl.issuerCN,
      thisUpdate: crl.thisUpdate,
      nextUpdate: crl.nextUpdate,
      expired: now > crl.nextUpdate,
      signature,
      entries: crl.entries,
    };
    const width = Math.max(6, ...crl.entries.map((e) => e.serialHex.length)) + 2;
    emit(argv, json, [
      `CRL ${source}`,
      `  number       ${crl.crlNumber}`,
      `  issuer       CN=${crl.issuerCN}`,
      `  this update  ${iso(crl.thisUpdate)}`,
      `  next update  ${iso(crl.nextUpdate)}${json.expired ? '  (EXPIRED)' : ''}`,
      `  signature    ${signature}`,
      `  entries      ${crl.entries.length}`,
      ...(crl.entries.length > 0 ? [`    ${'SERIAL'.padEnd(width)}${'REVOKED AT'.padEnd(26)}REASON`] : []),
      ...crl.entries.map((e) => `    ${e.serialHex.padEnd(width)}${iso(e.revokedAt).padEnd(26)}${e.reason}`),
    ]);
    return signature === 'INVALID' ? EXIT.invalid : EXIT.ok;
  }),
};

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function register(y: Argv): void {
  y.command('crl', 'show the certificate revocation list', (c) =>
    c
      .command(showCommand)
      .demandCommand(1, 'name a crl command; see kds crl --help')
      .example('$0 crl show', 'the current CRL'),
  );
}
