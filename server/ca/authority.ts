// The certificate authority of a data directory: opens the root key with the CA passphrase and the store,
// issues certificates from CSRs, revokes them and publishes the CRL, answers
// "is this serial revoked?" in O(1) for the KDC, verifies certificate files and handles
// enrollment tokens. One instance per process; several processes may share a data directory.
import { userInfo } from 'node:os';
import { readFileSync } from 'node:fs';
import { entryKind } from '../../io/fs-errors.js';
import type { KeyObject } from 'node:crypto';
import { AuthError, EnvironmentError, InputError, KdsError, PolicyError } from '../../shared/errors.js';
import { decodeCsr, verifyCsr } from '../../shared/pki/csr.js';
import { checkCsrPolicy } from '../../shared/pki/policy.js';
import { isReservedName } from '../../shared/pki/names.js';
import { normalizeSerialHex } from '../../shared/pki/serial.js';
import { parseReason, type RevocationReason } from '../../shared/revocation-reasons.js';
import { auditHmac, deriveAuditHmacKey } from '../../shared/audit/hmac.js';
import { verifyCertificate, type Verdict, type VerifyOptions } from '../../shared/pki/verify.js';
import { parseCertificate, type ParsedCertificate, type Profile } from '../../shared/pki/x509.js';
import type { CertificateRecord, CrlState, RenewalInstall, RenewalRecord } from '../store/store.js';
import { ClockSkewWatch } from '../store/clock-skew.js';
import type { AsyncStore, AsyncStoreData, AsyncStoreTx } from '../store/async-store.js';
import { openAsyncStore } from '../store/open-store.js';
import { checkRenewable, checkRenewalRate, installableRenewal, refuseSameKey } from './renewal.js';
import { decryptPrivateKey, keyMatchesCertificate, readText } from './credentials.js';
import { materializeCredentials } from './shared-credentials.js';
import { Revocations } from './revocations.js';
import type { RevocationInfo } from './revocation-index.js';
import type { RevokedListener, RevokeOutcome } from './revoke.js';
import type { DeltaCrlState } from './crl-sign.js';
import type { CrlFileRepair } from './crl-files.js';
import { rollbackPendingWarning, rollbackRecoveryWarnings, type RollbackRecovery } from './crl-rollback.js';
import {
  ADMIN_OU,
  CA_SETTINGS_KEY,
  caPaths,
  crlUrlOf,
  deltaCrlUrlOf,
  publicUrlOf,
  DEFAULT_CA_SETTINGS,
  KDC_NAME,
  ROOT_CA_NAME,
  type CaPaths,
  type CaSettings,
} from '../../io/ca-files.js';
import { PUBLIC_FILE_MODE, writeFileAtomic } from '../../io/fs-atomic.js';
import { issueCertificate, type IssueContext, type IssueResult } from './issue.js';
import { resolveCaPassphrase, type PassphraseOptions } from '../../io/ca-passphrase.js';
import { asyncSigner, syncSigner } from './signer.js';
import {
  consumeEnrollmentToken,
  createEnrollmentToken,
  lookupEnrollmentToken,
  TOKEN_INVALID_MESSAGE,
  type CreatedToken,
  type TokenLookup,
} from './tokens.js';
import { replayCsrKey, replayEnrollment } from './enroll-replay.js';

export type { RevocationInfo } from './revocation-index.js';
export type { RevokeOutcome, RevokedListener } from './revoke.js';
export type { CrlFileRepair } from './crl-files.js';
export type { RollbackRecovery } from './crl-rollback.js';
export type { DeltaCrlState } from './crl-sign.js';
export type { IssueResult } from './issue.js';

export interface OpenOptions extends PassphraseOptions {
  /**
   * Open without the CA private key (no passphrase needed): lookups, verification, `crl show`, `cert
   * list`. issue/revoke/refreshCrl/tokens then throw `config`.
   */
  readOnly?: boolean;
  /** Clock for tests (epoch ms). */
  clock?: () => number;
  /**
   * On a PostgreSQL store, how far this clock may be from the database server's (default
   * CLOCK_SKEW_REFUSE_MS): beyond it a CA opened with its key is refused (`clock_skew`) before anything
   * is written. Tests that move every handle's clock to stand for time passing raise it.
   */
  maxClockSkewMs?: number;
  /** Override the stored CRL schedule settings for this process (tests, benchmarks). */
  crlSchedule?: Partial<Pick<CaSettings, 'crlSyncFullMax' | 'crlDeltaMaxEntries' | 'crlFullIntervalMs'>>;
  /** The store's URL (postgres://...); undefined: the data directory's SQLite file. */
  storeUrl?: string | undefined;
}

export interface IssueOptions {
  name: string;
  /** Validity in days (default 30, capped by the configured maximum (365) and the CA's notAfter). */
  days?: number;
  /** Exact window (tests: e.g. an already expired certificate); capped the same way. */
  validity?: { notBefore: number; notAfter: number };
  role?: 'client' | 'admin' | 'server';
  renew?: boolean;
  actor: string;
}

const PROFILE_OF: Record<'client' | 'admin' | 'server', Profile> = {
  client: 'client',
  admin: 'admin',
  server: 'server',
};

/** A default actor name for audit rows written by local CLI commands: `cli:<user>`. */
export function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

export class CertificateAuthority {
  readonly dataDir: string;
  readonly paths: CaPaths;
  readonly caCert: ParsedCertificate;
  readonly caCertPem: string;
  readonly store: AsyncStore;
  /** Changed only by usePublicUrl. */
  settings: CaSettings;
  /** The CRL distribution point of the certificates this CA issues (`<public URL>/crl.pem`). */
  crlUrl: string;
  readonly readOnly: boolean;
  /** What open found about root_crl.pem (anything but 'ok' means it was rewritten from the store). */
  readonly crlFileRepair: CrlFileRepair;
  /** The same for root_delta_crl.pem. */
  readonly deltaCrlFileRepair: CrlFileRepair;
  /**
   * What open put back from published CRLs newer than the store (the store was restored from an older
   * backup: crl-rollback.ts); undefined when it found none, and always without the CA key.
   */
  readonly rollbackRecovery: RollbackRecovery | undefined;
  /** What open found about root_ca.pem (anything but 'ok' means it was rewritten from the store). */
  readonly caFileRepair: CaFileRepair;
  /**
   * This clock against the database server's (a PostgreSQL store opened with the CA key; else
   * undefined). While it is out of sync the scheduled CRL issue waits (maintainCrl, publishFullCrlIfStale).
   */
  readonly clockSkew: ClockSkewWatch | undefined;
  /** The warning open's clock measurement gave (off by more than CLOCK_SKEW_WARN_MS), for the log. */
  readonly clockSkewWarning: string | undefined;
  readonly #caKey: KeyObject | undefined;
  /** The audit trail's HMAC key (shared/audit/hmac.ts), derived from the CA key when it is open. */
  readonly #auditKey: Buffer | undefined;
  readonly #revocations: Revocations;
  readonly #clock: () => number;
  /** A complete CRL re-issue scheduled after a revocation (off its acknowledgement path). */
  #fullCrlTimer: NodeJS.Immediate | undefined;
  #closed = false;
  /** The last failure of a scheduled complete-CRL re-issue (the KDC's timer retries and logs). */
  crlMaintenanceError: Error | undefined;

  private constructor(init: {
    dataDir: string;
    caCert: ParsedCertificate;
    store: AsyncStore;
    settings: CaSettings;
    caKey: KeyObject | undefined;
    revocations: Revocations;
    crlFileRepair: CrlFileRepair;
    deltaCrlFileRepair: CrlFileRepair;
    rollbackRecovery: RollbackRecovery | undefined;
    caFileRepair: CaFileRepair;
    clock: () => number;
    clockSkew: ClockSkewWatch | undefined;
    clockSkewWarning: string | undefined;
  }) {
    this.dataDir = init.dataDir;
    this.paths = caPaths(init.dataDir);
    this.caCert = init.caCert;
    this.caCertPem = init.caCert.pem;
    this.store = init.store;
    this.settings = init.settings;
    this.crlUrl = crlUrlOf(init.settings);
    this.#caKey = init.caKey;
    this.#auditKey = init.caKey === undefined ? undefined : deriveAuditHmacKey(init.caKey);
    this.readOnly = init.caKey === undefined;
    this.#revocations = init.revocations;
    this.crlFileRepair = init.crlFileRepair;
    this.deltaCrlFileRepair = init.deltaCrlFileRepair;
    this.rollbackRecovery = init.rollbackRecovery;
    this.caFileRepair = init.caFileRepair;
    this.#clock = init.clock;
    this.clockSkew = init.clockSkew;
    this.clockSkewWarning = init.clockSkewWarning;
  }

  /**
   * Open the CA of `dataDir`. `ca_missing` if it was never initialised; `bad_passphrase` if the
   * passphrase does not decrypt root_private_key.pem. Rebuilds root_crl.pem from the store when it is
   * missing, corrupt or stale, and re-signs the CRL when it is past half its lifetime. Rebuilds
   * root_ca.pem from the store's CA record when it is missing, unreadable or another certificate, once
   * the CA key has proven that record is ours (loadCaCertificate).
   */
  static async open(dataDir: string, opts: OpenOptions = {}): Promise<CertificateAuthority> {
    const paths = caPaths(dataDir);
    const missing = (): EnvironmentError =>
      new EnvironmentError('ca_missing', `no CA in ${dataDir}: run \`kds server init\` first`, { dataDir });
    // entryKind, not existsSync: a CA that is there but out of reach (permission denied, a file in the
    // way) must not be reported as missing, with the advice to run `kds server init` over it.
    const absent = (path: string): boolean => entryKind(path) === 'missing';
    const url = opts.storeUrl === '' ? undefined : opts.storeUrl;
    if (url === undefined && absent(paths.store)) throw missing();
    // Read-only: nothing is migrated (a command that only reads must not upgrade a store an older KDC
    // still runs on) and a read-only copy of the data directory can be read (sqlite-store.ts).
    const store = await openAsyncStore({ dataDir, url, readOnly: opts.readOnly === true });
    const clock = opts.clock ?? Date.now;
    let clockSkew: ClockSkewWatch | undefined;
    let clockSkewWarning: string | undefined;
    try {
      // First, before this process writes anything stamped with its clock into the store every node
      // shares (the CRL refresh below signs with it): docs/deployment.md "Clocks".
      if (store.engine === 'postgres' && opts.readOnly !== true) {
        clockSkew = new ClockSkewWatch(store, clock, opts.maxClockSkewMs);
        clockSkewWarning = await clockSkew.assertInSync();
      }
      if (url !== undefined) await materializeCredentials(store, paths);
    } catch (err) {
      await store.close();
      throw err;
    }
    if (absent(paths.rootCa) && (opts.readOnly || absent(paths.rootKey))) {
      await store.close();
      throw missing();
    }
    try {
      let caKey: KeyObject | undefined;
      if (!opts.readOnly) {
        const { passphrase } = resolveCaPassphrase(dataDir, opts);
        caKey = decryptPrivateKey(readText(paths.rootKey), passphrase);
      }
      const { caCert, repair: caFileRepair } = loadCaCertificate(
        paths,
        await store.activeCertificate(ROOT_CA_NAME),
        caKey,
      );
      if (caKey !== undefined && !keyMatchesCertificate(caKey, caCert)) {
        throw new EnvironmentError('config', `${paths.rootKey} is not the key of ${paths.rootCa}`);
      }
      const settings: CaSettings = {
        ...DEFAULT_CA_SETTINGS,
        ...((await store.getSetting<CaSettings>(CA_SETTINGS_KEY)) ?? {}),
        ...(opts.crlSchedule ?? {}),
      };
      const revocations = await Revocations.load({ store, paths, caCert, settings });
      // First of all, before anything is signed: a store older than the published CRLs gets their
      // revocations back and numbers above them (crl-rollback.ts). Without the key nothing is written:
      // repairFile below leaves the newer files as they are.
      let rollbackRecovery: RollbackRecovery | undefined;
      if (caKey !== undefined)
        rollbackRecovery = await revocations.recoverRollback(syncSigner(caKey), clock());
      // Keep the published CRL fresh (RFC 5280 5.1.2.5 nextUpdate) whenever we can sign, and list the
      // certificates renewals superseded that are not on it yet (a crash between the two commits).
      if (caKey !== undefined) {
        await revocations.refresh(syncSigner(caKey), clock());
        for (const serialHex of await revocations.listSupersededGaps()) {
          await revocations.supersede(serialHex, 'kds', syncSigner(caKey), clock());
        }
      }
      const crlFileRepair = await revocations.repairFile();
      const deltaCrlFileRepair = await revocations.repairDeltaFile();
      return new CertificateAuthority({
        dataDir,
        caCert,
        store,
        settings,
        caKey,
        revocations,
        crlFileRepair,
        deltaCrlFileRepair,
        rollbackRecovery,
        caFileRepair,
        clock,
        clockSkew,
        clockSkewWarning,
      });
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /**
   * The warnings about the published CRL files open found (the KDC logs them, the CLI prints them): a
   * rollback recovered or pending first, then each file rewritten from the store (root_delta_crl.pem's
   * only with `delta`).
   */
  crlFileWarnings(delta = false): string[] {
    const lines = this.rollbackRecovery === undefined ? [] : rollbackRecoveryWarnings(this.rollbackRecovery);
    if (this.crlFileRepair === 'newer' || this.deltaCrlFileRepair === 'newer')
      lines.push(rollbackPendingWarning());
    const rewritten = (file: string, repair: CrlFileRepair): void => {
      if (repair !== 'ok' && repair !== 'newer')
        lines.push(`${file} was ${repair}: rewritten from the store`);
    };
    rewritten('root_crl.pem', this.crlFileRepair);
    if (delta) rewritten('root_delta_crl.pem', this.deltaCrlFileRepair);
    return lines;
  }

  /** The public base URL this CA puts in what it issues (CaSettings.publicUrl). */
  get publicUrl(): string {
    return publicUrlOf(this.settings);
  }

  /**
   * From now on, issue under the public base URL `url` (normalized, see normalizePublicUrl): it is the
   * CRL distribution point of new certificates and the Freshest CRL of new complete CRLs, and it is
   * stored (so `kds cert issue` and `kds cert revoke` from a shell use it too). `explicit`: given by
   * the operator, so a later start without --public-url keeps it instead of deriving one. When the
   * URL changed and the CA key is at hand, a complete CRL naming the new delta URL is issued at once.
   */
  async usePublicUrl(url: string, explicit: boolean): Promise<void> {
    const stored = (await this.store.getSetting<CaSettings>(CA_SETTINGS_KEY)) ?? DEFAULT_CA_SETTINGS;
    if (stored.publicUrl !== url || (stored.publicUrlExplicit ?? false) !== explicit) {
      await this.store.setSetting(CA_SETTINGS_KEY, {
        ...stored,
        publicUrl: url,
        publicUrlExplicit: explicit,
      });
    }
    this.settings = { ...this.settings, publicUrl: url, publicUrlExplicit: explicit };
    this.crlUrl = crlUrlOf(this.settings);
    if (this.#revocations.setFreshestCrlUrl(deltaCrlUrlOf(this.settings)) && this.#caKey !== undefined) {
      await this.#revocations.refresh(syncSigner(this.#caKey), this.#clock(), 'force');
    }
  }

  async close(): Promise<void> {
    // A scheduled complete-CRL re-issue is dropped: the published pair is consistent without it (the
    // delta lists what the complete CRL lacks), and the next process that can sign catches up.
    if (this.#fullCrlTimer !== undefined) clearImmediate(this.#fullCrlTimer);
    this.#fullCrlTimer = undefined;
    this.#closed = true;
    await this.store.close();
  }

  // -------------------------------------------------------------------------------------------------
  // Issuance

  /** Issue from a PKCS#10 CSR: proof of possession, policy, then issueCertificate. */
  async issueFromCsr(csrPem: string, opts: IssueOptions): Promise<ParsedCertificate> {
    return (await this.issue(csrPem, opts)).cert;
  }

  /** issueFromCsr with the details the CLI reports (superseded serial, capped validity). */
  async issue(csrPem: string, opts: IssueOptions): Promise<IssueResult> {
    const key = this.#requireKey();
    const role = opts.role ?? 'client';
    if (!(role in PROFILE_OF)) throw new InputError('bad_request', `unknown role ${JSON.stringify(role)}`);
    // Everything that can refuse the request runs before the store is touched: a refused CSR leaves
    // no row behind. The CSR's signature is checked on the thread pool (it is input from outside).
    const csr = await verifyCsr(decodeCsr(csrPem));
    checkCsrPolicy(csr, opts.name);
    if (role === 'client' && isReservedName(opts.name)) {
      throw new PolicyError('bad_name', `"${opts.name}" is reserved for the system`);
    }
    const now = this.#clock();
    const result = await issueCertificate(this.#issueContext(key, now), {
      name: opts.name,
      role,
      profile: PROFILE_OF[role],
      subjectCN: opts.name,
      ...(role === 'admin' ? { subjectOU: ADMIN_OU } : {}),
      publicKeyPem: csr.publicKeyPem,
      publicKey: csr.publicKey, // imported once, by verifyCsr
      ...(role === 'server' ? { sans: { dns: [opts.name] } } : {}),
      ...(opts.days !== undefined ? { days: opts.days } : {}),
      ...(opts.validity !== undefined ? { validity: opts.validity } : {}),
      renew: opts.renew ?? false,
      actor: opts.actor,
    });
    return this.#listSuperseded(result, opts.actor, key);
  }

  /**
   * Enrollment: a client proves it holds a single-use token and gets a client certificate, for the name
   * the token is bound to, for the key in its CSR. Nothing expensive happens for a peer without a
   * usable token, and a refused CSR does not burn the token. In order, failing closed:
   *   1. the token: one hash and one indexed lookup (known, unused, unexpired), else `token_invalid`;
   *   2. the CSR's shape and the CN it asks for (no key import, no crypto): a CN that is not the token's
   *      name is a token failure too (`token_invalid`: this token is not for that name);
   *   3. the key (RSA, public exponent 65537 only) and the proof of possession (the CSR's
   *      self-signature, verified on the thread pool), then the issuance policy, the reserved names and
   *      one active certificate per name;
   *   4. the token is consumed in the transaction that reserves the serial, and remembers the serial.
   * Every token failure is `token_invalid` with one fixed message. A token already spent, still within
   * its lifetime, is answered only for a replay of the enrollment that spent it (same name, same key,
   * proven again): the certificate it produced, `replayed`, nothing issued (enroll-replay.ts).
   */
  async enroll(opts: {
    token: string;
    csrPem: string;
    actor?: string;
    days?: number;
  }): Promise<IssueResult & { replayed?: true }> {
    const key = this.#requireKey();
    const lookup = await lookupEnrollmentToken(this.store, { token: opts.token, now: this.#clock() });
    const name = lookup.name;
    const actor = opts.actor ?? `enroll:${name}`;
    if (lookup.kind === 'spent') {
      const publicKey = await replayCsrKey(name, opts.csrPem);
      return this.#replay(lookup, publicKey, opts.token, actor);
    }
    const request = decodeCsr(opts.csrPem);
    if (request.subjectCN !== name) throw new AuthError('token_invalid', TOKEN_INVALID_MESSAGE);
    const csr = await verifyCsr(request);
    checkCsrPolicy(csr, name);
    if (isReservedName(name)) throw new PolicyError('bad_name', `"${name}" is reserved for the system`);
    const now = this.#clock();
    // A certificate past its notAfter is no identity any more: enrolling again with a new token
    // replaces it (it becomes `superseded`); an unexpired one is refused `already_active` before the
    // signature (issueCertificate, replaceExpired). A revoked one is not `active`, so it never blocks.
    let result: IssueResult;
    try {
      result = await issueCertificate(this.#issueContext(key, now), {
        name: name,
        role: 'client',
        profile: 'client',
        subjectCN: name,
        publicKeyPem: csr.publicKeyPem,
        publicKey: csr.publicKey, // imported once, by verifyCsr
        ...(opts.days !== undefined ? { days: opts.days } : {}),
        actor,
        // The token is consumed in the same transaction that reserves the serial (atomic: a token is
        // spent exactly when a certificate is being issued for it), after the active-name re-check.
        beforeReserve: (tx, serialHex) =>
          consumeEnrollmentToken(tx, {
            token: opts.token,
            name: name,
            actor,
            now,
            serialHex,
            auditHash: (v) => this.auditHash(v),
          }),
        replaceExpired: true,
      });
    } catch (err) {
      // A retry that raced its own first attempt (the client gave up waiting and asked again, maybe on
      // another node, while the first was still signing): the first committed while this one signed, so
      // this one finds the token spent (or the name taken by the first's certificate). If it is the
      // same enrollment, it gets the first's certificate; otherwise the refusal stands as it was.
      if (!(err instanceof KdsError) || (err.code !== 'token_invalid' && err.code !== 'already_active')) {
        throw err;
      }
      const again = await lookupEnrollmentToken(this.store, { token: opts.token, now: this.#clock() }).catch(
        () => undefined,
      );
      if (again?.kind !== 'spent') throw err;
      return this.#replay(again, csr.publicKey, opts.token, actor).catch(() => {
        throw err;
      });
    }
    return this.#listSuperseded(result, actor, key);
  }

  async #replay(
    spent: Extract<TokenLookup, { kind: 'spent' }>,
    publicKey: KeyObject,
    token: string,
    actor: string,
  ): Promise<IssueResult & { replayed: true }> {
    const record = await replayEnrollment(this.store, {
      spent,
      publicKey,
      token,
      actor,
      now: this.#clock(),
      auditHash: (v) => this.auditHash(v),
    });
    return { cert: parseCertificate(record.pem!), capped: false, replayed: true };
  }

  // -------------------------------------------------------------------------------------------------
  // Renewal by the certificate's holder (server/ca/renewal.ts)

  /**
   * A client renews its own certificate `serialHex` (the session's) with a CSR for a new key: checked
   * like an enrollment's CSR (proof of possession, policy), then issued `pending`. See renewal.ts.
   */
  async renewClient(opts: {
    name: string;
    serialHex: string;
    csrPem: string;
    actor: string;
  }): Promise<IssueResult> {
    const key = this.#requireKey();
    const now = this.#clock();
    const current = await this.store.getCertificate(opts.serialHex);
    await checkRenewable(this.store, current, opts.name, now);
    const request = decodeCsr(opts.csrPem);
    if (request.subjectCN !== opts.name) {
      throw new PolicyError('name_mismatch', `a renewal keeps the name: the CSR must be for "${opts.name}"`);
    }
    const csr = await verifyCsr(request);
    checkCsrPolicy(csr, opts.name);
    refuseSameKey(current!, csr.publicKey);
    return issueCertificate(this.#issueContext(key, now), {
      name: opts.name,
      role: current!.role === 'admin' ? 'admin' : 'client',
      profile: current!.role === 'admin' ? 'admin' : 'client',
      subjectCN: opts.name,
      ...(current!.role === 'admin' ? { subjectOU: ADMIN_OU } : {}),
      publicKeyPem: csr.publicKeyPem,
      publicKey: csr.publicKey,
      actor: opts.actor,
      renewalOf: opts.serialHex,
      // Counted and refused inside the transaction that records it, so concurrent sessions of one
      // name cannot all slip under the limit.
      beforeReserve: (tx) => checkRenewalRate(tx, opts.name, this.#clock()),
    });
  }

  /**
   * The KDC's own certificate, renewed offline (server/ca/server-renewal.ts): same name and
   * subjectAltNames, a new key; the old one is superseded at once and listed on the CRL.
   */
  async renewServer(opts: {
    publicKeyPem: string;
    sans: { dns: string[]; ip: string[] };
    actor: string;
    days?: number;
  }): Promise<IssueResult> {
    const key = this.#requireKey();
    const result = await issueCertificate(this.#issueContext(key, this.#clock()), {
      name: KDC_NAME,
      role: 'server',
      profile: 'server',
      subjectCN: KDC_NAME,
      publicKeyPem: opts.publicKeyPem,
      sans: opts.sans,
      days: opts.days ?? this.settings.maxDays,
      renew: true,
      actor: opts.actor,
    });
    return this.#listSuperseded(result, opts.actor, key);
  }

  /**
   * Can `serialHex` (a `pending` certificate presented in a handshake) be installed? Only the newest
   * renewal of a certificate that is still the name's active, unrevoked one.
   */
  installableRenewal(serialHex: string, db: AsyncStoreData = this.store): Promise<RenewalRecord | undefined> {
    return installableRenewal(db, serialHex, (s) => this.revocationOf(s) !== undefined);
  }

  /**
   * Install a renewal (its holder has just authenticated with it): in one transaction, re-check it,
   * make it active and supersede what it replaces (and any older, never installed renewal of that
   * certificate); then list those on the CRL with reasonCode superseded. Returns the install.
   */
  async installRenewal(
    serialHex: string,
    actor: string,
  ): Promise<{ install: RenewalInstall; listed: Promise<void> }> {
    const key = this.#requireKey();
    const now = this.#clock();
    const install = await this.store.transaction(async (tx) => {
      const renewal = await this.installableRenewal(serialHex, tx);
      if (renewal === undefined) throw new AuthError('cert_revoked', 'certificate superseded', { serialHex });
      const done = await tx.installRenewal(serialHex, now);
      await tx.appendAudit({
        at: now,
        actor,
        action: 'cert.renew',
        subject: renewal.name,
        detail: {
          serialHex,
          supersedes: done.superseded,
          ...(done.abandoned.length > 0 ? { abandoned: done.abandoned } : {}),
        },
      });
      return done;
    });
    // The status change is committed (the KDC refuses the old certificate from now on); the CRL entries
    // follow, and a crash before they are written is repaired at the next open (listSupersededGaps).
    const listed = (async () => {
      for (const s of [install.superseded, ...install.abandoned]) {
        await this.#revocations.supersede(s, actor, syncSigner(key), this.#clock());
      }
      this.#scheduleFullCrl();
    })();
    return { install, listed };
  }

  createEnrollmentToken(opts: {
    name: string;
    ttlMs?: number;
    actor: string;
    beforeWrite?: (tx: AsyncStoreTx) => Promise<void>;
  }): Promise<CreatedToken> {
    this.#requireKey();
    return createEnrollmentToken(this.store, {
      ...opts,
      now: this.#clock(),
      auditHash: (v) => this.auditHash(v),
    });
  }

  /**
   * The audit trail's HMAC of a sensitive value (`hmac-sha256:<hex>`): what the entries about an
   * enrollment token hold instead of the token, and what `kds admin audit hash` prints to find them.
   */
  auditHash(value: string): string {
    this.#requireKey();
    return auditHmac(this.#auditKey!, value);
  }

  // -------------------------------------------------------------------------------------------------
  // Revocation

  /**
   * Revoke by serial (hex, any case, colons allowed) or by name (its active certificate, else its latest
   * one). Durable before it returns: revocation row + certificate status + new CRL committed together,
   * then root_crl.pem rewritten, then onRevoked listeners awaited. Throws only if nothing was committed:
   * a failure after the commit is `followUpPending`, completed by syncRevocations() (revoke.ts).
   * `already_revoked` changes nothing but completes what an earlier attempt left pending.
   * `opts.beforeWrite` runs first inside that transaction and may throw to refuse (the KDC re-checks the
   * requesting session's own certificate there: server/kdc/caller-status.ts).
   */
  async revoke(
    by: { serialHex: string } | { name: string },
    reason: RevocationReason | string,
    actor: string,
    opts: { beforeWrite?: (tx: AsyncStoreData) => Promise<void> } = {},
  ): Promise<RevokeOutcome> {
    const key = this.#requireKey();
    const target = 'serialHex' in by ? { serialHex: normalizeSerialHex(by.serialHex) } : { name: by.name };
    const parsedReason = parseReason(reason);
    const outcome = await this.#revocations.revoke(
      target,
      parsedReason,
      actor,
      syncSigner(key),
      this.#clock(),
      opts.beforeWrite,
    );
    this.#scheduleFullCrl();
    return outcome;
  }

  /** O(1): revoked or superseded (what the published CRLs list for the serial). */
  crlStatusOf(serialHex: string): RevocationInfo | undefined {
    return this.#revocations.crlStatusOf(serialHex);
  }

  /** O(1), from memory; never stale after a revocation this process acknowledged. Not superseded ones. */
  revocationOf(serialHex: string): RevocationInfo | undefined {
    return this.#revocations.revocationOf(serialHex);
  }

  onRevoked(listener: RevokedListener): void {
    this.#revocations.onRevoked(listener);
  }

  /** A certificate another process's renewal superseded has just been read here (revocations.ts). */
  onSuperseded(listener: (serialHex: string) => void): void {
    this.#revocations.onSuperseded(listener);
  }

  /**
   * Pick up (and announce to listeners) revocations and CRLs other processes or nodes committed; cheap
   * when nothing changed (one look at the store's change counter). Then retry what earlier revocations
   * left pending (listeners that failed, CRL files behind the store): rejects with the first failure of
   * that, which stays pending for the next call.
   */
  async syncRevocations(): Promise<number> {
    return (await this.#revocations.sync()).length;
  }

  /**
   * syncRevocations for a client-certificate check: answers the store's change counter that look read,
   * which the check's store-record lookup then reuses (server/kdc/cert-check.ts): one read of the
   * counter per handshake instead of two (on PostgreSQL, one round trip instead of two).
   */
  async syncRevocationsAt(): Promise<number> {
    return (await this.#revocations.syncAt()).counter;
  }

  currentCrlPem(): string {
    return this.#revocations.currentState().pem;
  }

  currentCrl(): CrlState {
    return this.#revocations.currentState();
  }

  /** The current delta CRL (RFC 5280 5.2.4) completing currentCrl(); undefined only in a CA never opened with its key since. */
  currentDeltaCrl(): DeltaCrlState | undefined {
    return this.#revocations.currentDelta();
  }

  currentDeltaCrlPem(): string | undefined {
    return this.#revocations.currentDelta()?.pem;
  }

  /**
   * Re-sign the complete CRL if it is past half its lifetime or the delta's schedule says so (or always
   * with force); returns the new state.
   */
  refreshCrl(force = false): Promise<CrlState | undefined> {
    return this.#revocations.refresh(syncSigner(this.#requireKey()), this.#clock(), force ? 'force' : 'due');
  }

  /** Is a complete CRL due by the schedule (cheap; no key needed)? */
  fullCrlDue(): boolean {
    return this.#revocations.fullCrlDue(this.#clock());
  }

  /**
   * The schedule, for a KDC timer: re-issue the complete CRL when fullCrlDue(); otherwise nothing (no
   * write lock taken). No-op without the CA key.
   */
  async maintainCrl(): Promise<CrlState | undefined> {
    if (
      this.#caKey === undefined ||
      this.#closed ||
      !this.#clockInSync() ||
      !this.#revocations.fullCrlDue(this.#clock())
    )
      return undefined;
    return this.#revocations.refresh(syncSigner(this.#caKey), this.#clock(), 'due');
  }

  /** At KDC start and stop: re-issue the complete CRL if the delta lists anything (it is "stale"). */
  async publishFullCrlIfStale(): Promise<CrlState | undefined> {
    if (this.#caKey === undefined || this.#closed || !this.#clockInSync()) return undefined;
    return this.#revocations.refresh(syncSigner(this.#caKey), this.#clock(), 'stale');
  }

  /**
   * Whether scheduled CRLs may be signed now: not while this clock is known to be off the database's.
   * Every node serves and writes out the newest CRL, so one with a thisUpdate in the future would be
   * refused by every relying party whose clock is right ("CRL is not yet valid") until the time came.
   */
  #clockInSync(): boolean {
    return this.clockSkew?.inSync !== false;
  }

  /** After a revocation: re-issue the complete CRL on the next turn of the event loop if it is due. */
  #scheduleFullCrl(): void {
    if (this.#fullCrlTimer !== undefined || this.#closed || this.#caKey === undefined) return;
    if (!this.#revocations.fullCrlDue(this.#clock())) return;
    this.#fullCrlTimer = setImmediate(() => {
      this.#fullCrlTimer = undefined;
      this.maintainCrl().then(
        () => (this.crlMaintenanceError = undefined),
        (err: unknown) => (this.crlMaintenanceError = err as Error),
      );
    });
  }

  // -------------------------------------------------------------------------------------------------
  // Lookups and verification

  certificateRecord(serialHex: string): Promise<CertificateRecord | undefined> {
    return this.store.getCertificate(serialHex.toLowerCase());
  }

  /**
   * Chain to this root, validity, usage and revocation (shared/pki/verify.ts), with this CA's
   * revocation state. Never throws for a bad certificate: the verdict says what is wrong.
   */
  verifyCertificateFile(pem: string | Buffer, opts: Omit<VerifyOptions, 'revocation'> = {}): Verdict {
    // What the published CRLs say: revocations and the certificates renewals superseded.
    return verifyCertificate(pem, this.caCert, {
      now: this.#clock(),
      ...opts,
      revocation: (serialHex) => this.crlStatusOf(serialHex),
    });
  }

  /** What issueCertificate needs of this CA, signing with `key` at `now`. */
  #issueContext(key: KeyObject, now: number): IssueContext {
    return {
      store: this.store,
      caCert: this.caCert,
      sign: asyncSigner(key),
      settings: this.settings,
      crlUrl: this.crlUrl,
      now,
    };
  }

  /**
   * An issuance that replaced a certificate puts it on the CRL with reasonCode superseded (RFC 5280
   * 5.3.1) before it is reported, so relying parties that only read the CRL refuse it as the KDC does.
   * No onRevoked listener runs: a renewal revokes no keys and ends no sessions of the new certificate.
   * (A crash between the issuance's commit and this one is repaired at the next open.)
   */
  async #listSuperseded(result: IssueResult, actor: string, key: KeyObject): Promise<IssueResult> {
    if (result.supersededSerialHex !== undefined) {
      await this.#revocations.supersede(result.supersededSerialHex, actor, syncSigner(key), this.#clock());
      this.#scheduleFullCrl();
    }
    return result;
  }

  #requireKey(): KeyObject {
    if (this.#caKey === undefined) {
      throw new EnvironmentError('config', 'the CA was opened read-only (no passphrase): cannot sign');
    }
    return this.#caKey;
  }
}

/** What CertificateAuthority.open found about root_ca.pem. */
export type CaFileRepair = 'ok' | 'missing' | 'unreadable' | 'different';

/**
 * The root certificate: the store's record of the CA is the truth, root_ca.pem a published copy of it
 * (what `GET /ca.pem` and enrolling clients get). A copy that is missing, truncated, corrupt or another
 * certificate is rewritten atomically from the store (a damaged published copy: "the server notices at start and
 * rebuilds"), but only when the CA private key matches the store's certificate: that proves the record
 * is this CA's own and not something planted in the store. Without the key (read-only opens) a
 * damaged copy is an error, as before.
 */
function loadCaCertificate(
  paths: CaPaths,
  record: CertificateRecord | undefined,
  caKey: KeyObject | undefined,
): { caCert: ParsedCertificate; repair: CaFileRepair } {
  let fromFile: ParsedCertificate | undefined;
  let repair: CaFileRepair = 'different';
  try {
    fromFile = parseCertificate(readFileSync(paths.rootCa, 'utf8'));
  } catch (err) {
    repair = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable';
  }
  if (record === undefined || record.pem === null) {
    throw new EnvironmentError('config', `the store of ${paths.dataDir} records no CA certificate`);
  }
  if (fromFile !== undefined && fromFile.fingerprint256 === record.fingerprint256)
    return { caCert: fromFile, repair: 'ok' };
  const fromStore = parseCertificate(record.pem);
  if (caKey === undefined || !keyMatchesCertificate(caKey, fromStore)) {
    throw new EnvironmentError('config', `${paths.rootCa} is not the CA certificate recorded in the store`);
  }
  writeFileAtomic(paths.rootCa, record.pem, PUBLIC_FILE_MODE);
  return { caCert: fromStore, repair };
}
