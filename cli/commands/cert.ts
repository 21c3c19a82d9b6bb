// `kds cert ...`: offline certificate operations on the CA's data directory: issue from a CSR,
// show, verify (chain, validity, usage, revocation), revoke, list. Only yargs and cli/ helpers are
// imported at the top; the CA and PKI modules load inside each handler so `kds --help` stays fast.
import type { Argv, CommandModule } from 'yargs';
import { run, type OutputOptions } from '../output.js';
import { certSerialOption, dataDirOption, reasonChoices, storeOption } from '../options.js';
import { integerValue, nameValue, pathValue } from '../option-values.js';
import { InputError, type KdsError } from '../../shared/errors.js';
import { terminalSafe as safe } from '../../shared/text/terminal-safe.js';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import type { CertificateRecord } from '../../server/store/store.js';

interface DataDirArgs extends OutputOptions {
  'data-dir': string;
  store?: string;
}

interface SigningArgs extends DataDirArgs {
  'passphrase-file'?: string;
}

const passphraseFileOption = {
  type: 'string',
  describe: 'file holding the CA passphrase (else KDS_CA_PASSPHRASE, else <data-dir>/ca/passphrase)',
  coerce: pathValue('--passphrase-file'),
} as const;

async function openCa(argv: SigningArgs, readOnly: boolean) {
  const { CertificateAuthority } = await import('../../server/ca/authority.js');
  const { warn } = await import('../output.js');
  const ca = await CertificateAuthority.open(argv['data-dir'], {
    readOnly,
    storeUrl: argv.store,
    ...(argv['passphrase-file'] !== undefined ? { passphraseFile: argv['passphrase-file'] } : {}),
  });
  for (const line of ca.crlFileWarnings()) warn(line);
  return ca;
}

// ---------------------------------------------------------------------------------------------------
// kds cert issue

interface IssueArgs extends SigningArgs {
  csr: string;
  name: string;
  out?: string;
  days?: number;
  renew: boolean;
  role: 'client' | 'admin' | 'server';
}

const issueCommand: CommandModule<object, IssueArgs> = {
  command: 'issue',
  describe: 'issue a certificate from a PKCS#10 CSR (offline, on the CA host)',
  builder: (y) =>
    y
      .option('csr', {
        type: 'string',
        demandOption: true,
        describe: 'CSR file (PEM)',
        coerce: pathValue('--csr'),
      })
      .option('name', {
        type: 'string',
        demandOption: true,
        describe: 'identity name; the CSR CN/SAN must be exactly this',
        coerce: nameValue('--name', { reservedOk: true }),
      })
      .option('out', {
        type: 'string',
        describe: 'write the certificate here (else it is printed)',
        coerce: pathValue('--out'),
      })
      .option('days', {
        type: 'string',
        describe: 'validity in days (default 30, at most 365 and the CA lifetime)',
        coerce: integerValue('--days', 1, 3650),
      })
      .option('renew', {
        type: 'boolean',
        default: false,
        describe: "replace the name's active certificate (it becomes superseded)",
      })
      .option('role', {
        choices: ['client', 'admin', 'server'] as const,
        default: 'client' as const,
        describe: 'certificate profile',
      })
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .option('passphrase-file', passphraseFileOption)
      .example('$0 cert issue --csr alice.csr.pem --name alice --out alice.pem', 'certify alice for 30 days')
      .example(
        '$0 cert issue --csr alice.csr.pem --name alice --renew --days 90 --json',
        'renew, JSON summary',
      ) as never,
  handler: run(async (argv: IssueArgs) => {
    const { readUserFile, checkOutputPath, MAX_PEM_FILE_BYTES } = await import('../../io/user-files.js');
    const { emit, info, warn } = await import('../output.js');
    const { EXIT, EnvironmentError, toKdsError } = await import('../../shared/errors.js');
    const csrPem = readUserFile(argv.csr, 'the CSR file', MAX_PEM_FILE_BYTES).toString('utf8');
    // Before anything is issued: a certificate issued into the store but not written would be lost
    // (a retry is refused as already_active).
    if (argv.out !== undefined) checkOutputPath(argv.out, '--out');
    const ca = await openCa(argv, false);
    try {
      const { cliActor } = await import('../../server/ca/authority.js');
      const result = await ca.issue(csrPem, {
        name: argv.name,
        role: argv.role,
        renew: argv.renew,
        actor: cliActor(),
        ...(argv.days !== undefined ? { days: argv.days } : {}),
      });
      const { cert } = result;
      // The certificate is in the store now: a failed write must not lose it (a retry would be refused
      // as already_active), so it is then printed on stdout and the failure said after it.
      let unwritten: KdsError | undefined;
      if (argv.out !== undefined) {
        const { writeFileAtomic, PUBLIC_FILE_MODE } = await import('../../io/fs-atomic.js');
        try {
          writeFileAtomic(argv.out, cert.pem, PUBLIC_FILE_MODE);
        } catch (err) {
          const e = toKdsError(err);
          unwritten = new EnvironmentError(
            'io_error',
            `${e.message}; the certificate was issued (serial ${cert.serialHex}) and printed on stdout instead`,
            { path: argv.out, serialHex: cert.serialHex },
            { cause: err },
          );
        }
      }
      const written = argv.out !== undefined && unwritten === undefined;
      if (result.capped)
        warn(`validity capped to ${new Date(cert.notAfter).toISOString()} (CA maximum or CA expiry)`);
      const json = {
        name: argv.name,
        role: argv.role,
        serialHex: cert.serialHex,
        notBefore: cert.notBefore,
        notAfter: cert.notAfter,
        fingerprint256: cert.fingerprint256,
        ...(result.supersededSerialHex !== undefined
          ? { supersededSerialHex: result.supersededSerialHex }
          : {}),
        ...(written ? { out: argv.out } : {}),
        pem: cert.pem,
        ...(unwritten !== undefined ? { error: unwritten.toJSON() } : {}),
      };
      const summary = [
        `issued ${argv.role} certificate for ${argv.name}`,
        `  serial       ${cert.serialHex}`,
        `  valid        ${iso(cert.notBefore)} -> ${iso(cert.notAfter)}`,
        `  fingerprint  ${cert.fingerprint256}`,
        ...(result.supersededSerialHex !== undefined ? [`  supersedes   ${result.supersededSerialHex}`] : []),
      ];
      if (written) {
        emit(argv, json, [...summary, `  written to   ${argv.out}`]);
      } else {
        // The PEM goes to stdout (pipe it into a file); the summary to stderr.
        for (const line of summary) info(argv, line);
        emit(argv, json, cert.pem.trimEnd());
      }
      if (unwritten !== undefined) {
        // --json: the one JSON object above carries the error; otherwise it is the last line on stderr.
        if (argv.json === true) return unwritten.exitCode;
        throw unwritten;
      }
      return EXIT.ok;
    } finally {
      await ca.close();
    }
  }),
};

// ---------------------------------------------------------------------------------------------------
// kds cert show

interface FileArgs extends DataDirArgs {
  file: string;
}

const showCommand: CommandModule<object, FileArgs> = {
  command: 'show <file>',
  describe: 'print a certificate in human-readable form (like `step certificate inspect`)',
  builder: (y) =>
    y
      .positional('file', {
        type: 'string',
        demandOption: true,
        describe: 'certificate file (PEM or DER)',
        coerce: pathValue('<file>'),
      })
      .option('data-dir', dataDirOption)
      .example('$0 cert show alice.pem', 'subject, issuer, serial, validity, key, extensions, fingerprint')
      .example('$0 cert show certs/root_ca.pem --json', 'the same as a JSON object') as never,
  handler: run(async (argv: FileArgs) => {
    const { parseCertificate } = await import('../../shared/pki/x509.js');
    const { emit } = await import('../output.js');
    const cert = parseCertificate(await readCertificateFile(argv.file));
    emit(argv, certificateJson(cert), describeCertificate(cert));
  }),
};

// ---------------------------------------------------------------------------------------------------
// kds cert verify

interface VerifyArgs extends FileArgs {
  usage: 'clientAuth' | 'serverAuth' | 'any';
  name?: string;
}

const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify <file>',
  describe: 'check a certificate against this CA: chain, validity, key usage, revocation',
  builder: (y) =>
    y
      .positional('file', {
        type: 'string',
        demandOption: true,
        describe: 'certificate file (PEM or DER)',
        coerce: pathValue('<file>'),
      })
      .option('usage', {
        choices: ['clientAuth', 'serverAuth', 'any'] as const,
        default: 'any' as const,
        describe: 'extended key usage the certificate must allow',
      })
      .option('name', {
        type: 'string',
        describe: 'the certificate must name exactly this identity',
        coerce: nameValue('--name', { reservedOk: true }),
      })
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .example(
        '$0 cert verify alice.pem',
        'prints "ok" (exit 0) or the verdict: revoked 3, expired 5, invalid 4',
      )
      .example('$0 cert verify certs/server/cert.pem --usage serverAuth --json', 'verdict as JSON') as never,
  handler: run(async (argv: VerifyArgs) => {
    const { verdictToError } = await import('../../shared/pki/verify.js');
    const { emit } = await import('../output.js');
    const bytes = await readCertificateFile(argv.file);
    const ca = await openCa(argv, true);
    try {
      const verdict = ca.verifyCertificateFile(bytes, {
        usage: argv.usage,
        ...(argv.name !== undefined ? { expectName: argv.name } : {}),
      });
      const record =
        verdict.serialHex !== undefined ? await ca.certificateRecord(verdict.serialHex) : undefined;
      const storeStatus = record === undefined ? 'unknown' : record.status;
      // The published CRLs as a relying party reads them: the complete CRL and the delta CRL completing
      // it (RFC 5280 5.2.4). They are built from the same revocation rows as the verdict above; a listing
      // there that the store lacks still counts (fail closed).
      const { publishedCrlStatus } = await import('../crl-status.js');
      const { EXIT } = await import('../../shared/errors.js');
      const crl = publishedCrlStatus(ca, verdict.serialHex);
      emit(argv, { ...verdict, storeStatus, crl: crl.json }, [
        `${verdict.code}: ${safe(verdict.detail)}`,
        ...(verdict.serialHex !== undefined ? [`  serial ${verdict.serialHex} (store: ${storeStatus})`] : []),
        `  CRLs: complete ${crl.json.crlNumber}${crl.json.deltaCrlNumber !== undefined ? `, delta ${crl.json.deltaCrlNumber}` : ''}${crl.listed !== undefined ? ` (listed in the ${crl.listed === 'delta' ? 'delta CRL' : 'complete CRL'})` : ''}`,
      ]);
      if (!crl.signaturesValid) return EXIT.invalid;
      if (verdict.code === 'ok' && crl.listed !== undefined) return EXIT.revoked;
      return verdict.code === 'ok' ? 0 : verdictToError(verdict).exitCode;
    } finally {
      await ca.close();
    }
  }),
};

// ---------------------------------------------------------------------------------------------------
// kds cert revoke

interface RevokeArgs extends SigningArgs {
  name?: string;
  serial?: string;
  reason: (typeof reasonChoices)[number];
}

const revokeCommand: CommandModule<object, RevokeArgs> = {
  command: 'revoke',
  describe: 'revoke a certificate and publish the new CRL (durable before this returns)',
  builder: (y) =>
    y
      .option('name', {
        type: 'string',
        describe: "revoke this name's active certificate",
        coerce: nameValue('--name', { reservedOk: true }),
      })
      .option('serial', {
        ...certSerialOption,
        describe: 'revoke the certificate with this serial (hex, colons allowed)',
      })
      .option('reason', {
        choices: reasonChoices,
        demandOption: true,
        describe: 'RFC 5280 revocation reason',
      })
      .conflicts('name', 'serial')
      .check((a) => {
        if (a.name === undefined && a.serial === undefined)
          throw new InputError('bad_request', 'give --name or --serial');
        return true;
      })
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .option('passphrase-file', passphraseFileOption)
      .example('$0 cert revoke --name alice --reason keyCompromise', "revoke alice's certificate")
      .example(
        '$0 cert revoke --serial 5f1c...e2 --reason superseded --json',
        'by serial, JSON result',
      ) as never,
  handler: run(async (argv: RevokeArgs) => {
    const { emit, warn } = await import('../output.js');
    const { cliActor } = await import('../../server/ca/authority.js');
    const ca = await openCa(argv, false);
    try {
      const by = argv.serial !== undefined ? { serialHex: argv.serial } : { name: argv.name! };
      const outcome = await ca.revoke(by, argv.reason, cliActor());
      const what = outcome.status === 'revoked' ? 'revoked' : 'already revoked';
      emit(argv, outcome, [
        what,
        `  ${outcome.name} serial ${outcome.serialHex}: ${outcome.reason} at ${iso(outcome.revokedAt)}, CRL number ${outcome.crlNumber}${outcome.published === 'delta' ? ' (delta CRL)' : ''}`,
      ]);
      // Committed all the same (this process runs no listeners: only the files can be behind).
      if (outcome.followUpPending === true) {
        warn(
          'the published CRL files were not rewritten: a running KDC rewrites them at its next revocation sync, any KDC at its start',
        );
      }
    } finally {
      await ca.close();
    }
  }),
};

// ---------------------------------------------------------------------------------------------------
// kds cert list

interface ListArgs extends DataDirArgs {
  name?: string;
  status?: CertificateRecord['status'];
}

const listCommand: CommandModule<object, ListArgs> = {
  command: 'list',
  describe: 'list the certificates this CA issued, with their status',
  builder: (y) =>
    y
      .option('name', {
        type: 'string',
        describe: 'only this name',
        coerce: nameValue('--name', { reservedOk: true }),
      })
      .option('status', {
        choices: ['active', 'revoked', 'superseded', 'pending'] as const,
        describe: 'only this status',
      })
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .example('$0 cert list', 'every certificate')
      .example('$0 cert list --status revoked --json', 'revoked ones as JSON') as never,
  handler: run(async (argv: ListArgs) => {
    const { emit } = await import('../output.js');
    const ca = await openCa(argv, true);
    try {
      const rows = await ca.store.listCertificates({
        ...(argv.name !== undefined ? { name: argv.name } : {}),
        ...(argv.status !== undefined ? { status: argv.status } : {}),
      });
      const json = rows.map((r) => ({
        serialHex: r.serialHex,
        name: r.name,
        role: r.role,
        status: r.status,
        notBefore: r.notBefore,
        notAfter: r.notAfter,
        issuedAt: r.issuedAt,
        fingerprint256: r.fingerprint256,
      }));
      const lines = rows.map(
        (r) =>
          `${r.serialHex.padEnd(34)}${r.name.padEnd(20)}${r.role.padEnd(8)}${r.status.padEnd(12)}${iso(r.notAfter)}`,
      );
      emit(argv, json, [
        `${'SERIAL'.padEnd(34)}${'NAME'.padEnd(20)}${'ROLE'.padEnd(8)}${'STATUS'.padEnd(12)}NOT AFTER`,
        ...lines,
      ]);
    } finally {
      await ca.close();
    }
  }),
};

/** `kds cert` (its name and description are in cli/commands/index.ts, which loads this lazily). */
export function builder(c: Argv): Argv {
  return c
    .command(issueCommand)
    .command(showCommand)
    .command(verifyCommand)
    .command(revokeCommand)
    .command(listCommand)
    .demandCommand(1, 'name a cert command; see kds cert --help')
    .example('$0 cert issue --csr alice.csr.pem --name alice --out alice.pem', 'offline issuance')
    .example('$0 cert verify alice.pem', 'exit 0 ok, 3 revoked, 4 invalid, 5 expired');
}

// ---------------------------------------------------------------------------------------------------
// helpers (no heavy imports: types only)

async function readCertificateFile(path: string): Promise<string | Buffer> {
  const { readUserFile, MAX_PEM_FILE_BYTES } = await import('../../io/user-files.js');
  const bytes = readUserFile(path, 'the certificate file', MAX_PEM_FILE_BYTES);
  // PEM is text; anything without a PEM header is handed over as DER bytes.
  const text = bytes.toString('latin1');
  return text.includes('-----BEGIN ') ? bytes.toString('utf8') : bytes;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function relative(ms: number, now: number): string {
  const days = Math.round((ms - now) / 86_400_000);
  if (ms >= now) return days === 0 ? 'today' : `in ${days} day${days === 1 ? '' : 's'}`;
  return days === 0 ? 'today' : `${-days} day${days === -1 ? '' : 's'} ago`;
}

function colons(hex: string): string {
  return (hex.match(/../g) ?? []).join(':');
}

const SIGNATURE_ALGORITHMS: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
  '1.2.840.113549.1.1.12': 'sha384WithRSAEncryption',
  '1.2.840.113549.1.1.13': 'sha512WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
};

function certificateJson(cert: ParsedCertificate): Record<string, unknown> {
  return {
    subject: cert.subject,
    subjectCN: cert.subjectCN,
    ...(cert.subjectOU !== undefined ? { subjectOU: cert.subjectOU } : {}),
    issuer: cert.issuer,
    issuerCN: cert.issuerCN,
    serialHex: cert.serialHex,
    version: cert.version,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    key: { type: cert.keyType, bits: cert.keyBits },
    signatureAlgorithm: SIGNATURE_ALGORITHMS[cert.signatureAlgorithm] ?? cert.signatureAlgorithm,
    isCA: cert.isCA,
    ...(cert.pathLen !== undefined ? { pathLen: cert.pathLen } : {}),
    keyUsage: cert.keyUsage,
    extKeyUsage: cert.extKeyUsage,
    sans: cert.sans,
    ...(cert.skiHex !== undefined ? { skiHex: cert.skiHex } : {}),
    ...(cert.akiHex !== undefined ? { akiHex: cert.akiHex } : {}),
    crlUrls: cert.crlUrls,
    extensions: cert.extensions,
    fingerprint256: cert.fingerprint256,
  };
}

function describeCertificate(cert: ParsedCertificate, now: number = Date.now()): string[] {
  const critical = (name: string): string =>
    cert.extensions.find((e) => e.name === name)?.critical ? ' (critical)' : '';
  const has = (name: string): boolean => cert.extensions.some((e) => e.name === name);
  const lines = [
    'Certificate:',
    `    Subject:       ${safe(cert.subject)}`,
    `    Issuer:        ${safe(cert.issuer)}`,
    `    Serial:        ${cert.serialHex} (${colons(cert.serialHex)})`,
    `    Version:       ${cert.version}`,
    '    Validity:',
    `        Not Before: ${iso(cert.notBefore)} (${relative(cert.notBefore, now)})`,
    `        Not After:  ${iso(cert.notAfter)} (${now > cert.notAfter ? 'EXPIRED ' : ''}${relative(cert.notAfter, now)})`,
    `    Public Key:    ${cert.keyType.toUpperCase()} ${cert.keyBits} bits`,
    `    Signature:     ${SIGNATURE_ALGORITHMS[cert.signatureAlgorithm] ?? safe(cert.signatureAlgorithm)}`,
    '    Extensions:',
  ];
  if (has('basicConstraints')) {
    const path = cert.pathLen !== undefined ? `, pathlen:${cert.pathLen}` : '';
    lines.push(
      `        Basic Constraints${critical('basicConstraints')}: CA:${cert.isCA ? 'TRUE' : 'FALSE'}${path}`,
    );
  }
  if (has('keyUsage'))
    lines.push(`        Key Usage${critical('keyUsage')}: ${safe(cert.keyUsage.join(', '))}`);
  if (has('extKeyUsage'))
    lines.push(`        Extended Key Usage${critical('extKeyUsage')}: ${safe(cert.extKeyUsage.join(', '))}`);
  if (has('subjectAltName')) {
    const names = [
      ...cert.sans.dns.map((d) => `DNS:${d}`),
      ...cert.sans.ip.map((i) => `IP:${i}`),
      ...cert.otherSans,
    ];
    lines.push(`        Subject Alternative Name${critical('subjectAltName')}: ${safe(names.join(', '))}`);
  }
  if (cert.skiHex !== undefined) lines.push(`        Subject Key Identifier: ${colons(cert.skiHex)}`);
  if (cert.akiHex !== undefined) lines.push(`        Authority Key Identifier: ${colons(cert.akiHex)}`);
  if (cert.crlUrls.length > 0)
    lines.push(`        CRL Distribution Points: ${safe(cert.crlUrls.join(', '))}`);
  const known = new Set([
    'basicConstraints',
    'keyUsage',
    'extKeyUsage',
    'subjectAltName',
    'subjectKeyIdentifier',
    'authorityKeyIdentifier',
    'cRLDistributionPoints',
  ]);
  for (const e of cert.extensions) {
    if (!known.has(e.name)) lines.push(`        ${safe(e.name)}${e.critical ? ' (critical)' : ''}`);
  }
  lines.push(`    SHA-256 Fingerprint: ${colons(cert.fingerprint256)}`);
  return lines;
}
