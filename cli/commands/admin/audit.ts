// `kds admin audit [--since --type --name --json]`: the audit trail of a data directory, oldest first.
// `kds admin audit verify`: walk its hash chain and check the KDC's signed heads; exit 0 when intact,
// 4 naming the first bad entry otherwise. Both read the store directly (server/audit/read-audit.ts
// says why verification does not ask the running KDC), so they need the data directory, no passphrase.
// `kds admin audit hash [--value V]`: the HMAC the trail holds instead of a sensitive value (an
// enrollment token), and the entries that carry it; it needs the CA passphrase (shared/audit/hmac.ts).
import type { CommandModule } from 'yargs';
import { MIN_ANCHOR_HEX, type AuditAnchor } from '../../../shared/audit/chain.js';
import { InputError } from '../../../shared/errors.js';
import { run, type OutputOptions } from '../../output.js';
import { dataDirOption, storeOption } from '../../options.js';
import { integerValue, nameValue, pathValue } from '../../option-values.js';

interface AuditArgs extends OutputOptions {
  'data-dir': string;
  store?: string;
  since?: number;
  type?: string;
  name?: string;
  limit?: number;
}

/** `--since`: an ISO 8601 time, or a duration ago (`90s`, `15m`, `2h`, `7d`). */
function sinceValue(v: unknown): number {
  const text = String(v).trim();
  const ago = /^([0-9]{1,9})(s|m|h|d)$/.exec(text);
  if (ago !== null) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[ago[2] as 's' | 'm' | 'h' | 'd'];
    return Date.now() - Number(ago[1]) * unit;
  }
  const at = /^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(at)) {
    throw new InputError(
      'bad_request',
      `--since: expected an ISO time (2026-12-06T04:00:00Z) or a duration ago (15m, 2h, 7d), got ${JSON.stringify(text)}`,
    );
  }
  return at;
}

function typeValue(v: unknown): string {
  const text = String(v);
  if (!/^[a-z][a-z0-9.]{0,63}$/.test(text)) {
    throw new InputError(
      'bad_request',
      `--type: an action such as cert.revoke or key.create, got ${JSON.stringify(text)}`,
    );
  }
  return text;
}

/** `--head #N:HASH` (or `N:HASH`): an anchor kept outside the store; HASH its first 16-64 hex digits. */
function anchorValue(v: unknown): AuditAnchor {
  const text = String(v).trim();
  const m = /^#?([1-9][0-9]{0,14}):([0-9a-fA-F]+)$/.exec(text);
  if (m === null || m[2]!.length < MIN_ANCHOR_HEX || m[2]!.length > 64) {
    throw new InputError(
      'bad_request',
      `--head: an entry and its hash as a signed head gives them (#1234:3f9a0c...; at least ${MIN_ANCHOR_HEX} hex digits), got ${JSON.stringify(text)}`,
    );
  }
  return { entryId: Number(m[1]), hash: m[2]!.toLowerCase() };
}

interface VerifyArgs extends OutputOptions {
  'data-dir': string;
  store?: string;
  head?: AuditAnchor[];
}

const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify',
  describe: 'check the audit hash chain and the KDC-signed heads; name the first bad entry',
  builder: (y) =>
    y
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .option('head', {
        type: 'string',
        array: true,
        describe:
          'a head kept outside the store (#ENTRY:HASH, from the log\'s "audit head signed" lines or an earlier report): the chain must still hold it; repeatable',
        coerce: (values: unknown[]) => values.map(anchorValue),
      })
      .example('$0 admin audit verify', 'exit 0 when intact, 4 with the first edited, deleted or moved entry')
      .example(
        '$0 admin audit verify --head "#1234:3f9a0c51d2e8b7a4"',
        'also fail unless entry 1234 still has the hash a head copied off the host gave it',
      ) as never,
  handler: run(async (argv: VerifyArgs) => {
    const { verifyAudit } = await import('../../../server/audit/read-audit.js');
    const { emit } = await import('../../output.js');
    const { EXIT } = await import('../../../shared/errors.js');
    const report = await verifyAudit(argv['data-dir'], argv.store, argv.head ?? []);
    const span =
      report.entries === 0
        ? 'no entries'
        : `${report.entries} entries (#${report.firstEntry}-#${report.lastEntry})`;
    const lines = report.ok
      ? [
          `audit trail intact: ${span}, ${report.heads} signed head${report.heads === 1 ? '' : 's'}, signed through #${report.signedThrough}`,
          ...(report.unsigned > 0
            ? [`${report.unsigned} entries after the last signed head are protected by their hash links only`]
            : []),
          ...(report.anchors > 0
            ? [
                `${report.anchors} head${report.anchors === 1 ? '' : 's'} kept outside the store found in the chain`,
              ]
            : []),
          `heads checked against the root CA ${report.caFingerprint}`,
          ...(report.lastHead === undefined
            ? []
            : [
                `keep outside the store, for the next verification: --head "#${report.lastHead.entryId}:${report.lastHead.hash}"`,
              ]),
        ]
      : [
          `audit trail BROKEN at entry #${report.finding!.entryId} (${report.finding!.problem}): ${report.finding!.detail}`,
          `${span}; heads checked against the root CA ${report.caFingerprint}`,
        ];
    emit(argv, report, lines);
    return report.ok ? EXIT.ok : EXIT.invalid;
  }),
};

interface HashArgs extends OutputOptions {
  'data-dir': string;
  store?: string;
  value?: string;
  'passphrase-file'?: string;
}

/** The value to hash: --value, else the first line of stdin (kept out of `ps` and the shell history). */
async function valueToHash(argv: HashArgs): Promise<string> {
  if (argv.value !== undefined) return argv.value;
  if (process.stdin.isTTY === true) {
    throw new InputError('bad_request', '--value: give the value, or pipe it on stdin');
  }
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.length > 4096) throw new InputError('bad_request', 'the value on stdin is over 4096 bytes');
  }
  const line = text.split(/\r?\n/, 1)[0] ?? '';
  if (line === '') throw new InputError('bad_request', 'no value on stdin');
  return line;
}

const hashCommand: CommandModule<object, HashArgs> = {
  command: 'hash',
  describe:
    'the HMAC the audit trail keeps instead of a sensitive value (an enrollment token), and its entries',
  builder: (y) =>
    y
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .option('value', {
        type: 'string',
        describe: 'the value (else the first line of stdin, which keeps it out of ps and the shell history)',
      })
      .option('passphrase-file', {
        type: 'string',
        describe: 'file holding the CA passphrase (else KDS_CA_PASSPHRASE, else <data-dir>/ca/passphrase)',
        coerce: pathValue('--passphrase-file'),
      })
      .example('$0 admin audit hash < token.txt', 'which entries are about this enrollment token') as never,
  handler: run(async (argv: HashArgs) => {
    const { auditHashOf } = await import('../../../server/audit/read-audit.js');
    const { emit } = await import('../../output.js');
    const { terminalSafe } = await import('../../../shared/text/terminal-safe.js');
    const value = await valueToHash(argv);
    const report = await auditHashOf(
      argv['data-dir'],
      value,
      argv['passphrase-file'] === undefined ? {} : { passphraseFile: argv['passphrase-file'] },
      argv.store,
    );
    const lines = [
      report.hmac,
      ...(report.entries.length === 0
        ? ['no audit entry holds it']
        : report.entries.map(
            (r) =>
              `#${r.id}  ${new Date(r.at).toISOString()}  ${terminalSafe(r.action).padEnd(18)} ${terminalSafe(r.subject ?? '-').padEnd(12)} by ${terminalSafe(r.actor)}`,
          )),
    ];
    emit(argv, report, lines);
  }),
};

export const auditCommand: CommandModule<object, AuditArgs> = {
  command: 'audit',
  describe: 'read the audit trail (oldest first); `audit verify` checks its hash chain and signed heads',
  builder: (y) =>
    y
      .command(verifyCommand)
      .command(hashCommand)
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .option('since', {
        type: 'string',
        describe: 'entries at or after this time: ISO 8601, or a duration ago (15m, 2h, 7d)',
        coerce: sinceValue,
      })
      .option('type', {
        type: 'string',
        describe: 'only this action (cert.revoke, key.create, token.create, ...)',
        coerce: typeValue,
      })
      .option('name', {
        type: 'string',
        describe: 'only entries about this party (subject, actor or a party of the key)',
        coerce: nameValue('--name', { reservedOk: true }),
      })
      .option('limit', {
        type: 'string',
        describe: 'only the newest N matching entries',
        coerce: integerValue('--limit', 1),
      })
      .example('$0 admin audit --since 1h', 'what happened in the last hour')
      .example('$0 admin audit --name mallory --json', 'everything about mallory, as JSON') as never,
  handler: run(async (argv: AuditArgs) => {
    const { readAudit } = await import('../../../server/audit/read-audit.js');
    const { emit } = await import('../../output.js');
    const { terminalSafe } = await import('../../../shared/text/terminal-safe.js');
    const rows = await readAudit(
      argv['data-dir'],
      {
        ...(argv.since === undefined ? {} : { since: argv.since }),
        ...(argv.type === undefined ? {} : { type: argv.type }),
        ...(argv.name === undefined ? {} : { name: argv.name }),
        ...(argv.limit === undefined ? {} : { limit: argv.limit }),
      },
      argv.store,
    );
    const lines = rows.map(
      (r) =>
        `#${r.id}  ${new Date(r.at).toISOString()}  ${terminalSafe(r.action).padEnd(18)} ${terminalSafe(r.subject ?? '-').padEnd(12)} by ${terminalSafe(r.actor)}  ${terminalSafe(JSON.stringify(r.detail))}`,
    );
    emit(argv, rows, rows.length === 0 ? ['no audit entries match'] : lines);
  }),
};
