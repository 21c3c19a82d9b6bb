// The "Certificates" sub-menu: enroll (generate a key pair, get a certificate), verify a
// certificate, revoke my certificate, check a certificate's status, show the CA and CRL, show my
// certificate, renew it. The same library calls as `kds client enroll | revoke-cert | cert-status |
// renew`.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { EnvironmentError, KdsError, StateError, toKdsError } from '../../shared/errors.js';
import { parseCrl } from '../../shared/pki/crl.js';
import { isValidName } from '../../shared/pki/names.js';
import { verifyCertificate } from '../../shared/pki/verify.js';
import { terminalSafe as safe } from '../../shared/text/terminal-safe.js';
import { parseCertificate, type ParsedCertificate } from '../../shared/pki/x509.js';
import { describeStatus, revocationIn } from '../cert-status.js';
import { enroll, fetchRootCa } from '../enroll.js';
import { readClientCertificates } from '../home.js';
import { renewClient } from '../renew.js';
import { withFailover } from '../failover.js';
import { httpGetText } from '../../io/http-get.js';
import { MAX_PEM_FILE_BYTES, readUserFile } from '../../io/user-files.js';
import { httpUrlOf } from '../session.js';
import {
  REASON_MENU,
  parseCertSerial,
  parseFingerprint,
  parseReason,
  parseToken,
  parseYesNo,
  type Parsed,
} from './answers.js';
import { ask, iso, type MenuContext, type MenuItem } from './context.js';

const FETCH_TIMEOUT_MS = 10_000;

function certSummary(cert: ParsedCertificate, indent = '  '): string[] {
  return [
    `${indent}subject      CN=${safe(cert.subjectCN)}${cert.subjectOU === undefined ? '' : `, OU=${safe(cert.subjectOU)}`}`,
    `${indent}issuer       CN=${safe(cert.issuerCN)}`,
    `${indent}serial       ${safe(cert.serialHex)}`,
    `${indent}valid        ${iso(cert.notBefore)} -> ${iso(cert.notAfter)}`,
    `${indent}key          ${cert.keyType.toUpperCase()}-${cert.keyBits}`,
    `${indent}fingerprint  ${cert.fingerprint256}`,
  ];
}

/** The home's certificate and pinned CA, or a clear "enroll first". */
function ownCertificates(ctx: MenuContext): { cert: ParsedCertificate; ca: ParsedCertificate } {
  if (!ctx.conn.enrolled)
    throw new StateError('not_found', `${ctx.name} is not enrolled yet: choose Enroll first`);
  const files = readClientCertificates(ctx.home);
  return { cert: parseCertificate(files.certPem), ca: parseCertificate(files.caPem) };
}

/**
 * What the KDC thinks of this client's own certificate: `revoked` or `expired` (the name may enroll
 * again with a new token), `good` (it can be renewed; a new enrollment is refused, already_active),
 * or `unknown` (the KDC could not be asked).
 */
async function ownStanding(
  ctx: MenuContext,
  cert: ParsedCertificate,
): Promise<'good' | 'revoked' | 'expired' | 'unknown'> {
  try {
    const { session } = await ctx.conn.get();
    const out = await session.request('cert.status', { serial: cert.serialHex });
    if (out.status === 'revoked') return 'revoked';
    return cert.notAfter <= Date.now() ? 'expired' : out.status === 'good' ? 'good' : 'unknown';
  } catch (err) {
    const code = toKdsError(err).code;
    if (code === 'cert_revoked') return 'revoked';
    if (code === 'cert_expired') return 'expired';
    return 'unknown';
  }
}

const enrollItem: MenuItem = {
  label: 'Enroll: generate a key pair and get a certificate',
  async run(ctx) {
    if (ctx.conn.enrolled) {
      // Offer only what can work: the KDC enrolls a name again only once its certificate is revoked
      // or expired.
      const { cert } = ownCertificates(ctx);
      const standing = await ownStanding(ctx, cert);
      if (standing !== 'revoked' && standing !== 'expired') {
        const said = standing === 'good' ? ', and it is good' : '; the KDC could not be asked about it';
        ctx.io.print(
          `  ${ctx.name} already has a certificate (serial ${cert.serialHex}, expires ${iso(cert.notAfter)})${said}`,
          `  for a new key and certificate, renew it (${RENEW_ITEM_NUMBER} in this menu); the KDC enrolls a name again only once its certificate is revoked or expired:`,
          '  to replace it by enrolling, revoke it first (3 in this menu), then enroll with a new token from kds admin token',
        );
        return;
      }
      ctx.io.print(`  certificate ${cert.serialHex} is ${standing}: enroll again with a new token`);
    }
    const token = await ask(ctx, 'enrollment token (from kds admin token): ', parseToken);
    ctx.io.print(
      '  the root CA fingerprint lets this client check it talks to the real KDC (type "none" to trust on first use)',
    );
    const pin = await ask(
      ctx,
      'root CA fingerprint: ',
      (t): Parsed<string | null> =>
        t.trim().toLowerCase() === 'none' ? { ok: true, value: null } : parseFingerprint(t),
    );
    await ctx.conn.close();
    const result = await ctx.progress(`generating an RSA-2048 key pair and enrolling ${ctx.name}`, () =>
      enroll({
        server: ctx.server,
        name: ctx.name,
        token,
        caFingerprint: pin ?? undefined,
        home: ctx.home,
        ...(ctx.dh === undefined ? {} : { dh: ctx.dh }),
        onWarning: (text) => ctx.io.print(`  ${ctx.style.bad('warning')}: ${text}`),
        onLostAnswer: (err) =>
          ctx.io.print(
            `  ${ctx.style.bad('warning')}: the answer was lost (${err.code}); sending the same request again`,
          ),
        onResume: () =>
          ctx.io.print(
            `  an earlier attempt with this token got no answer: sending its key and request again`,
          ),
        onTrustOnFirstUse: (fp) =>
          ctx.io.print(
            `  ${ctx.style.bad('warning')}: trusting the root CA the server sent: ${fp}`,
            '  compare it with the one kds server start printed; if they differ, someone is in the middle',
          ),
      }),
    );
    ctx.io.print(
      `  ${ctx.style.ok('enrolled')} ${result.name}: certificate ${result.serialHex}, expires ${iso(result.notAfter)}`,
      `  home ${result.home} (the private key never left it)`,
      `  root CA ${result.caFingerprint}${result.pinned ? ' (pinned)' : ' (trusted on first use)'}`,
    );
  },
};

/** "bob" (ask the KDC for bob's certificate) or a PEM file path. */
type CertSource = { kind: 'name'; name: string } | { kind: 'file'; path: string };

function parseCertSource(text: string): Parsed<CertSource> {
  const t = text.trim();
  if (existsSync(t)) return { ok: true, value: { kind: 'file', path: resolve(t) } };
  if (isValidName(t)) return { ok: true, value: { kind: 'name', name: t } };
  return { ok: false, message: `"${text.trim().slice(0, 60)}" is neither a file nor a client name` };
}

function readPemFile(path: string): string {
  // Not readFileSync: the path may name a FIFO (which would wait for a writer forever) or /dev/zero.
  return readUserFile(path, 'the certificate file', MAX_PEM_FILE_BYTES).toString('utf8');
}

const verifyItem: MenuItem = {
  label: 'Verify a certificate',
  async run(ctx) {
    const { cert: mine, ca } = ownCertificates(ctx);
    const { session } = await ctx.conn.get();
    let cert: ParsedCertificate | undefined;
    let source: CertSource;
    do {
      source = await ask(ctx, 'client name or certificate file: ', parseCertSource);
      if (source.kind === 'file') {
        try {
          cert = parseCertificate(readPemFile(source.path));
        } catch (err) {
          if (!(err instanceof KdsError)) throw err;
          ctx.io.print(`  ${safe(err.message)}; try another file or a client name (0 goes back)`);
        }
      } else if (source.name === ctx.name) {
        cert = mine;
      } else {
        try {
          const peer = await session.request('key.peer', { name: source.name });
          cert = parseCertificate(peer.cert);
        } catch (err) {
          if (!(err instanceof KdsError)) throw err;
          // The KDC hands out only good certificates: a revoked one is the verdict, not a failure.
          if (err.code === 'peer_revoked') {
            ctx.io.print(
              `  ${ctx.style.bad('revoked')}: ${safe(err.message)} (the KDC no longer hands it out)`,
            );
            return;
          }
          if (err.code !== 'peer_unavailable' && err.code !== 'bad_request') throw err;
          ctx.io.print(`  ${safe(err.message)}; try another name or a file (0 goes back)`);
        }
      }
    } while (cert === undefined);
    // The KDC is the revocation authority (like OCSP); the chain, dates and usage are checked here,
    // against the root CA this client pinned when it enrolled.
    const status = await session.request('cert.status', { serial: cert.serialHex });
    const revocation = revocationIn(status);
    const verdict = verifyCertificate(cert, ca, {
      usage: 'any',
      ...(source.kind === 'name' ? { expectName: source.name } : {}),
      revocation: () => revocation,
    });
    const head = verdict.code === 'ok' ? ctx.style.ok('valid') : ctx.style.bad(verdict.code);
    ctx.io.print(
      `  ${head}: ${safe(verdict.detail)}`,
      ...certSummary(cert),
      `  KDC status   ${describeStatus(cert.serialHex, status)}`,
    );
  },
};

const revokeMineItem: MenuItem = {
  label: 'Revoke my certificate',
  async run(ctx) {
    const { cert } = ownCertificates(ctx);
    ctx.io.print(
      `  this ends certificate ${cert.serialHex}: its sessions close and every key shared with ${ctx.name} is revoked`,
      '  reason:',
      ...REASON_MENU.map((r) => `  ${r}`),
    );
    const reason = await ask(ctx, 'reason [1-9]: ', parseReason);
    if (!(await ask(ctx, `revoke ${ctx.name}'s certificate for ${reason}? [yes/no]: `, parseYesNo))) {
      ctx.io.print('  (not revoked)');
      return;
    }
    const { session } = await ctx.conn.get();
    const out = await session.request('cert.revoke', { serial: cert.serialHex, reason });
    ctx.io.print(
      out.status === 'already_revoked'
        ? `  already revoked: ${cert.serialHex}`
        : `  ${ctx.style.ok('revoked')} ${cert.serialHex} (${reason}); enroll again with a new token to get a new one`,
    );
  },
};

const statusItem: MenuItem = {
  label: "Check a certificate's status",
  async run(ctx) {
    const { cert } = ownCertificates(ctx);
    const serial = await ask(ctx, `certificate serial (hex; yours is ${cert.serialHex}): `, parseCertSerial);
    const { session } = await ctx.conn.get();
    const out = await session.request('cert.status', { serial });
    const line = describeStatus(serial, out);
    ctx.io.print(`  ${out.status === 'good' ? ctx.style.ok(line) : ctx.style.bad(line)}`);
  },
};

async function fetchText(url: string): Promise<string>;
async function fetchText(url: string, opts: { optional: true }): Promise<string | undefined>;
async function fetchText(url: string, opts: { optional?: boolean } = {}): Promise<string | undefined> {
  const res = await httpGetText(url, FETCH_TIMEOUT_MS, 8 * 1024 * 1024);
  if (res.status === 404 && opts.optional === true) return undefined;
  if (res.status !== 200) throw new EnvironmentError('unavailable', `GET ${url}: HTTP ${res.status}`);
  return res.text;
}

const showCaCrlItem: MenuItem = {
  label: 'Show the CA and CRL',
  async run(ctx) {
    let ca: ParsedCertificate;
    if (ctx.conn.enrolled) {
      ca = ownCertificates(ctx).ca;
      ctx.io.print('  root CA (pinned at enrollment)', ...certSummary(ca, '    '));
    } else {
      ca = await fetchRootCa(ctx.server);
      ctx.io.print(
        '  root CA as the server sent it (NOT pinned: compare the fingerprint out of band)',
        ...certSummary(ca, '    '),
      );
    }
    // From the first node that answers (several may be given); the delta CRL from the same node.
    const { node, url, text } = await withFailover(ctx.server, async (node) => {
      const url = `${httpUrlOf(node)}/crl.pem`;
      return { node, url, text: await fetchText(url) };
    });
    const crl = parseCrl(text);
    const signature = crl.signatureValid(ca)
      ? ctx.style.ok('valid (signed by the root CA)')
      : ctx.style.bad('INVALID: not signed by this root CA');
    ctx.io.print(
      `  CRL ${url}`,
      `    number       ${crl.crlNumber}`,
      `    this update  ${iso(crl.thisUpdate)}`,
      `    next update  ${iso(crl.nextUpdate)}${Date.now() > crl.nextUpdate ? ' (EXPIRED)' : ''}`,
      `    signature    ${signature}`,
      `    revoked      ${crl.entries.length === 0 ? 'none' : ''}`,
      ...crl.entries.map((e) => `      ${safe(e.serialHex)}  ${iso(e.revokedAt)}  ${safe(e.reason)}`),
    );
    // A large CA publishes each revocation first in a delta CRL (RFC 5280 5.2.4) and folds it into
    // the complete CRL on a schedule: without the delta this screen would miss recent revocations.
    const deltaUrl = `${httpUrlOf(node)}/delta-crl.pem`;
    const deltaPem = await fetchText(deltaUrl, { optional: true });
    if (deltaPem === undefined) {
      ctx.io.print(`  delta CRL ${deltaUrl}: none published`);
      return;
    }
    const delta = parseCrl(deltaPem);
    const deltaSignature = delta.signatureValid(ca)
      ? ctx.style.ok('valid (signed by the root CA)')
      : ctx.style.bad('INVALID: not signed by this root CA');
    ctx.io.print(
      `  delta CRL ${deltaUrl}`,
      `    number       ${delta.crlNumber} (completes CRL ${delta.baseCrlNumber ?? '?'})`,
      `    this update  ${iso(delta.thisUpdate)}`,
      `    signature    ${deltaSignature}`,
      `    revoked      ${delta.entries.length === 0 ? 'none since the complete CRL' : ''}`,
      ...delta.entries.map((e) => `      ${safe(e.serialHex)}  ${iso(e.revokedAt)}  ${safe(e.reason)}`),
    );
  },
};

const showMineItem: MenuItem = {
  label: 'Show my certificate',
  async run(ctx) {
    const { cert } = ownCertificates(ctx);
    ctx.io.print(`  ${ctx.name}'s certificate (${ctx.home})`, ...certSummary(cert));
  },
};

const renewItem: MenuItem = {
  label: 'Renew my certificate (a new key pair; the old certificate is superseded)',
  async run(ctx) {
    const { cert } = ownCertificates(ctx);
    if (
      !(await ask(
        ctx,
        `renew ${ctx.name}'s certificate (serial ${cert.serialHex}, expires ${iso(cert.notAfter)}) with a new key pair? [yes/no]: `,
        parseYesNo,
      ))
    ) {
      ctx.io.print('  (not renewed)');
      return;
    }
    // The KDC ends the sessions of the old certificate once the new one is installed.
    await ctx.conn.close();
    const result = await ctx.progress(`generating a new RSA-2048 key pair and renewing ${ctx.name}`, () =>
      renewClient({
        server: ctx.server,
        name: ctx.name,
        home: ctx.home,
        ...(ctx.dh === undefined ? {} : { dh: ctx.dh }),
      }),
    );
    ctx.io.print(
      `  renewed ${ctx.name}: serial ${result.serialHex}, valid until ${iso(result.notAfter)}`,
      result.installed
        ? `  replaces ${result.previousSerialHex} (now superseded, listed on the CRL)`
        : `  replaces ${result.previousSerialHex} (superseded once the KDC sees the new certificate)`,
      '  keys and messages waiting for you carry over',
    );
  },
};

export const CERT_ITEMS: readonly MenuItem[] = [
  enrollItem,
  verifyItem,
  revokeMineItem,
  statusItem,
  showCaCrlItem,
  showMineItem,
  renewItem,
];
/** Its number in the sub-menu (the Enroll item points to it). */
const RENEW_ITEM_NUMBER = 7;
