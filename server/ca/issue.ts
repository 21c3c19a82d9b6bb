// Issuing one certificate: draw a fresh serial, have shared/pki build the TBSCertificate
// and node:crypto sign it, then, in ONE store transaction, record it under its serial and make it the
// name's active certificate. The CSR checks happen before this (authority.ts); everything here runs for
// init's own credentials too.
//
// RFC 5280 4.1.2.2: "the serial number ... MUST be unique for each certificate issued by a given CA".
// A certificate is issued when it leaves this function, and it leaves only after the transaction that
// inserted its serial (UNIQUE constraint) committed: two issued certificates can never share a serial,
// even across processes or after a crash. A certificate signed under a serial that turns out to be taken
// (126 random bits: not in practice) is thrown away, never returned; a crash before the commit leaves
// nothing behind. Reserving the serial in a transaction of its own before signing
// would be a second WAL sync per certificate, which bench/issue.ts measured as the largest cost left.
import type { KeyObject } from 'node:crypto';
import type { ParsedCertificate, Profile, Signer } from '../../shared/pki/x509.js';
import { buildParsedCertificate } from '../../shared/pki/x509.js';
import { newSerialHex } from '../../shared/pki/serial.js';
import { AuthError, EnvironmentError, InputError, PolicyError } from '../../shared/errors.js';
import type { AuditEntry, CertificateRole } from '../store/store.js';
import type { AsyncStore, AsyncStoreTx } from '../store/async-store.js';
import { DAY_MS, type CaSettings } from '../../io/ca-files.js';
// notBefore is backdated (clients measure their clock's skew from it: shared/pki/clock-skew.ts).
import { BACKDATE_MS } from '../../shared/pki/clock-skew.js';

export interface IssueContext {
  store: AsyncStore;
  /** undefined when issuing the self-signed root itself. */
  caCert: ParsedCertificate | undefined;
  sign: Signer;
  settings: CaSettings;
  crlUrl: string | undefined;
  now: number;
}

export interface IssueRequest {
  name: string;
  role: CertificateRole;
  profile: Profile;
  subjectCN: string;
  subjectOU?: string;
  publicKeyPem: string;
  /** publicKeyPem already imported (ParsedCsr.publicKey); see CertificateSpec.publicKey. */
  publicKey?: KeyObject;
  sans?: { dns?: string[]; ip?: string[] };
  /** Validity in days from now (default settings.defaultDays), capped by settings.maxDays and the CA. */
  days?: number;
  /** Exact validity window (tests and tools); still capped like `days`. */
  validity?: { notBefore: number; notAfter: number };
  /** Replace the name's active certificate (which becomes `superseded`) instead of refusing. */
  renew?: boolean;
  /**
   * Replace the name's active certificate only if it has expired (re-enrollment after expiry): an
   * unexpired one is still refused `already_active`.
   */
  replaceExpired?: boolean;
  /**
   * A client's renewal of this serial (server/ca/renewal.ts): the new certificate is recorded `pending`
   * and nothing is superseded until its holder installs it. Refused unless `renewalOf` is still the
   * name's active certificate when the transaction runs.
   */
  renewalOf?: string;
  /** The root's own lifetime is not capped by maxDays. */
  uncapped?: boolean;
  actor: string;
  /**
   * Runs inside the issuance's one transaction (after signing), after the active-name re-check and
   * before the serial and certificate are recorded; a throw refuses the issuance with nothing written
   * (enrollment consumes its token here, so a token is spent exactly when a certificate is issued for
   * it, and a failed signature no longer burns it). What it returns is appended to the audit log before
   * the issuance's own entry, with the certificate (one statement on PostgreSQL). `serialHex` is the
   * serial of the certificate about to be recorded (the token remembers it).
   */
  beforeReserve?: (tx: AsyncStoreTx, serialHex: string) => Promise<AuditEntry | void>;
}

export interface IssueResult {
  cert: ParsedCertificate;
  /** Serial of the certificate this one superseded (renewal). */
  supersededSerialHex?: string;
  /** true when the requested lifetime was shortened by maxDays or the CA's own expiry. */
  capped: boolean;
}

/** The validity window the CA will sign for a request. */
function validityFor(
  req: Pick<IssueRequest, 'days' | 'validity' | 'uncapped'>,
  ctx: Pick<IssueContext, 'settings' | 'caCert' | 'now'>,
): { notBefore: number; notAfter: number; capped: boolean } {
  let notBefore: number;
  let wanted: number;
  if (req.validity !== undefined) {
    ({ notBefore } = req.validity);
    wanted = req.validity.notAfter;
  } else {
    const days = req.days ?? ctx.settings.defaultDays;
    if (typeof days !== 'number' || !Number.isFinite(days) || days <= 0) {
      throw new InputError('bad_request', `validity must be a positive number of days, got ${String(days)}`);
    }
    notBefore = ctx.now - BACKDATE_MS;
    wanted = ctx.now + days * DAY_MS;
  }
  if (!Number.isFinite(notBefore) || !Number.isFinite(wanted)) {
    throw new InputError('bad_request', 'validity must be two times in epoch milliseconds');
  }
  let notAfter = wanted;
  // The maximum lifetime counts from issuance (the backdated notBefore does not eat into it).
  const capFrom = req.validity !== undefined ? notBefore : ctx.now;
  if (!req.uncapped) notAfter = Math.min(notAfter, capFrom + ctx.settings.maxDays * DAY_MS);
  // RFC 5280 6.1.3 checks every certificate of the path for validity: a leaf outliving its CA would be
  // unusable after the CA expires anyway, so never sign one.
  if (ctx.caCert !== undefined) notAfter = Math.min(notAfter, ctx.caCert.notAfter);
  // X.509 times have one-second resolution (RFC 5280 4.1.2.5): store exactly what the certificate says.
  const second = (ms: number): number => Math.floor(ms / 1000) * 1000;
  notBefore = second(notBefore);
  notAfter = second(notAfter);
  if (notAfter <= notBefore) {
    throw new EnvironmentError(
      'config',
      'cannot issue: the CA certificate has expired (or the validity is empty)',
    );
  }
  return { notBefore, notAfter, capped: notAfter < second(wanted) };
}

export async function issueCertificate(ctx: IssueContext, req: IssueRequest): Promise<IssueResult> {
  const { store } = ctx;
  const { notBefore, notAfter, capped } = validityFor(req, ctx);
  const serialHex = newSerialHex();

  // 1. Fail early, before the slow signature, if the name is taken (decided again under the write lock).
  const replaceable = (current: { notAfter: number } | undefined): boolean =>
    req.renew === true ||
    req.renewalOf !== undefined ||
    (req.replaceExpired === true && current !== undefined && current.notAfter < ctx.now);
  const seen = await store.activeCertificate(req.name);
  if (!replaceable(seen)) refuseIfActive(seen, req.name);
  // Under the write lock the name is re-read only when what replaces what depends on it (a renewal, or an
  // active certificate seen here). Otherwise a certificate issued for the name meanwhile (another request,
  // another node) makes the INSERT fail on the one-active-per-name index, `already_active` as well, with
  // nothing written: the re-read would only repeat that check at the cost of a round trip under the lock.
  const recheck = seen !== undefined || req.renew === true || req.renewalOf !== undefined;

  // 2. Build and sign (async: the RSA private-key operation runs on the thread pool).
  const cert = await buildParsedCertificate(
    {
      serialHex,
      subjectCN: req.subjectCN,
      ...(req.subjectOU !== undefined ? { subjectOU: req.subjectOU } : {}),
      issuer: ctx.caCert === undefined ? 'self' : { certPem: ctx.caCert.pem },
      publicKeyPem: req.publicKeyPem,
      ...(req.publicKey !== undefined ? { publicKey: req.publicKey } : {}),
      notBefore,
      notAfter,
      profile: req.profile,
      ...(req.sans !== undefined ? { sans: req.sans } : {}),
      ...(ctx.crlUrl !== undefined ? { crlUrl: ctx.crlUrl } : {}),
    },
    ctx.sign,
  );

  // 3. One transaction, through the store's group commit (AsyncStore.batch: concurrent
  // issuances share one WAL sync, and each resolves only after its own rows committed, i.e. the
  // certificate is durable before anyone sees it): re-check the name if needed, run beforeReserve (enrollment
  // consumes its token here), supersede the previous one when renewing, record the serial and the
  // certificate in one INSERT (its UNIQUE serial and one-active-per-name index decide races), audit. A throw anywhere rolls back all of it, and the signed certificate is dropped.
  let supersededSerialHex: string | undefined;
  // The row recorded, as a renewal (pending until installed) or as the name's certificate.
  const issued = {
    serialHex,
    name: req.name,
    role: req.role,
    notBefore,
    notAfter,
    issuedAt: ctx.now,
    pem: cert.pem,
    fingerprint256: cert.fingerprint256,
  };
  // What every audit entry of this certificate says about it (non-secret facts only).
  const certDetail = { serialHex, role: req.role, notAfter, fingerprint256: cert.fingerprint256 };
  await store.batch(async (tx) => {
    const current = recheck ? await tx.activeCertificate(req.name) : undefined;
    // Another request (or process) may have issued for this name since step 1.
    if (current !== undefined && !replaceable(current)) refuseIfActive(current, req.name);
    const before = await req.beforeReserve?.(tx, serialHex);
    const beforeEntries = before ? [before] : [];
    if (req.renewalOf !== undefined) {
      // Re-checked under the write lock: the renewed certificate must still be the active one.
      if (current?.serialHex !== req.renewalOf) {
        throw new AuthError('cert_revoked', 'certificate superseded', { serialHex: req.renewalOf });
      }
      await tx.insertRenewal(issued, req.renewalOf, ctx.now);
      for (const e of beforeEntries) await tx.appendAudit(e);
      await tx.appendAudit({
        at: ctx.now,
        actor: req.actor,
        action: 'cert.renew.request',
        subject: req.name,
        detail: { ...certDetail, renews: req.renewalOf },
      });
      return;
    }
    if (current !== undefined) {
      await tx.setCertificateStatus(current.serialHex, 'superseded');
      supersededSerialHex = current.serialHex;
    }
    // The certificate and the audit entries in one call: one statement, one round trip under the write
    // lock, on PostgreSQL (Store.insertIssuedCertificate).
    await tx.insertIssuedCertificate(issued, [
      ...beforeEntries,
      {
        at: ctx.now,
        actor: req.actor,
        action: supersededSerialHex === undefined ? 'cert.issue' : 'cert.renew',
        subject: req.name,
        detail: {
          ...certDetail,
          ...(supersededSerialHex !== undefined ? { supersedes: supersededSerialHex } : {}),
        },
      },
    ]);
  });
  return { cert, capped, ...(supersededSerialHex !== undefined ? { supersededSerialHex } : {}) };
}

function refuseIfActive(active: { serialHex: string } | undefined, name: string): void {
  if (active !== undefined) {
    throw new PolicyError(
      'already_active',
      `"${name}" already has an active certificate (serial ${active.serialHex}); revoke it or renew`,
      { name, serialHex: active.serialHex },
    );
  }
}
