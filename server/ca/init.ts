// `kds server init`: create the root CA, the KDC's own credential, the admin credential,
// the store and the first (empty) CRL in a data directory.
//
//   root CA   RSA-3072 by default, self-signed, 10 years, basicConstraints CA:true critical,
//             keyUsage keyCertSign+cRLSign critical, SKI (profile 'root-ca' in shared/pki/x509.ts)
//   KDC       RSA-2048, serverAuth, SAN localhost + 127.0.0.1 + every --host       server/key.pem, cert.pem
//   admin     RSA-2048, CN=admin OU=kds-admin, clientAuth, role admin in the store  admin/key.pem, cert.pem
//
// Every private key is PKCS#8-encrypted with the CA passphrase. Files 0600 and directories 0700, except
// root_ca.pem and root_crl.pem (0644): they are public by design (the KDC serves them over HTTP).
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { existsSync, renameSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, relative } from 'node:path';
import { generateRsaKeyPair } from '../../shared/crypto/rsa.js';
import { EnvironmentError, InputError } from '../../shared/errors.js';
import { entryKind } from '../../io/fs-errors.js';
import { lockDataDir } from '../../io/data-dir-lock.js';
import { HOSTNAME_PATTERN as HOSTNAME } from '../../shared/pki/names.js';
import { assertNotCommittable } from '../../io/git-exposure.js';
import {
  ensurePrivateDir,
  PRIVATE_FILE_MODE,
  PUBLIC_FILE_MODE,
  writeFileAtomic,
} from '../../io/fs-atomic.js';
import { openAsyncStore } from '../store/open-store.js';
import { storeCredentials } from './shared-credentials.js';
import { KeyEncryptionKeys } from '../keys/kek.js';
import { encryptPrivateKey } from './credentials.js';
import {
  ADMIN_NAME,
  ADMIN_OU,
  CA_SETTINGS_KEY,
  caPaths,
  baseUrlOf,
  crlUrlOf,
  DAY_MS,
  DEFAULT_CA_SETTINGS,
  KDC_NAME,
  normalizePublicUrl,
  ROOT_CA_CN,
  ROOT_CA_NAME,
  type CaSettings,
} from '../../io/ca-files.js';
import { issueCertificate } from './issue.js';
import { BACKDATE_MS } from '../../shared/pki/clock-skew.js';
import { createCaPassphrase, type PassphraseOptions, type PassphraseSource } from '../../io/ca-passphrase.js';
import { asyncSigner, syncSigner } from './signer.js';
import { publishInitialCrl } from './crl-files.js';

const CA_KEY_BITS = [2048, 3072, 4096] as const;
type CaKeyBits = (typeof CA_KEY_BITS)[number];
const DEFAULT_CA_KEY_BITS: CaKeyBits = 3072;
/** The KDC and admin keys: RSA-2048, the size clients accept for identities (shared/pki/policy.ts). */
const CREDENTIAL_KEY_BITS = 2048;
const CA_LIFETIME_DAYS = 3650;
const DEFAULT_PORT = 8443;

export interface InitOptions extends PassphraseOptions {
  dataDir: string;
  caKeyBits?: number;
  /** Extra names of the KDC: SANs of its certificate; the first one is also the CRL URL's host. */
  hosts?: string[];
  /** Port of the KDC (CRL URL). */
  port?: number;
  /**
   * The KDC's public base URL (--public-url, KDS_PUBLIC_URL), put in what the CA issues: CRL
   * distribution points and the Freshest CRL. Default: `http://<first host>:<port>` when a host is
   * given; otherwise none is stored and `kds server start` uses the address it listens on.
   */
  publicUrl?: string;
  /** Replace an existing CA (the old files are moved into `<dataDir>/replaced-<time>/`, not deleted). */
  force?: boolean;
  /**
   * The store's URL (postgres://...): the CA is created there, with the encrypted keys and the KDC's
   * certificate in its settings for other nodes (shared-credentials.ts). Undefined: the data directory's
   * SQLite file.
   */
  storeUrl?: string | undefined;
  actor?: string;
  now?: number;
}

export interface InitResult {
  dataDir: string;
  caKeyBits: number;
  caSerialHex: string;
  caFingerprint256: string;
  caNotAfter: number;
  serverSerialHex: string;
  serverSans: { dns: string[]; ip: string[] };
  adminSerialHex: string;
  /**
   * The CRL distribution point of what the CA issues, `<public URL>/crl.pem`; null when no public URL
   * was given (neither --public-url nor --host): `kds server start` then uses the address it listens
   * on. (The KDC and admin certificates made here name `http://127.0.0.1:<port>/crl.pem` then.)
   */
  crlUrl: string | null;
  crlNumber: number;
  passphraseSource: PassphraseSource;
  /** Set when the passphrase was generated: where it is (never the passphrase itself). */
  passphrasePath?: string;
  /** Set with --force: where the previous CA's files went. */
  replacedDir?: string;
  warnings: string[];
}

/** Does this data directory already hold a CA (any of its defining files)? */
function caExists(dataDir: string): boolean {
  const p = caPaths(dataDir);
  return [p.rootCa, p.rootKey, p.store].some((f) => entryKind(f) !== 'missing');
}

export async function initCa(opts: InitOptions): Promise<InitResult> {
  // A KDC running on the directory would go on serving the old CA from the moved store and later write
  // its CRLs over the new CA's: --force takes the lock `kds server start` takes (io/data-dir-lock.ts),
  // before anything is moved, and holds it until the new CA is complete.
  if (!opts.force || !existsSync(opts.dataDir)) return initUnlocked(opts);
  const unlock = lockDataDir(opts.dataDir, 'replacing its CA');
  try {
    return await initUnlocked(opts);
  } finally {
    unlock();
  }
}

async function initUnlocked(opts: InitOptions): Promise<InitResult> {
  const caKeyBits = opts.caKeyBits ?? DEFAULT_CA_KEY_BITS;
  if (!(CA_KEY_BITS as readonly number[]).includes(caKeyBits)) {
    throw new InputError('bad_request', `--ca-key-bits must be one of ${CA_KEY_BITS.join(', ')}`);
  }
  const port = opts.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InputError('bad_request', `--port must be 1..65535, got ${String(port)}`);
  }
  const hosts = (opts.hosts ?? []).map((h) => checkHost(h));
  const publicUrl =
    opts.publicUrl !== undefined
      ? normalizePublicUrl(opts.publicUrl)
      : hosts[0] !== undefined
        ? baseUrlOf(hosts[0], port)
        : undefined;
  const now = opts.now ?? Date.now();
  const actor = opts.actor ?? 'init';
  const paths = caPaths(opts.dataDir);
  const warnings: string[] = [];
  // Before anything is written: never a CA key where `git add .` would commit it.
  const exposure = assertNotCommittable(
    opts.dataDir,
    relative(opts.dataDir, paths.rootKey),
    'a CA data directory',
  );
  if (exposure !== undefined) warnings.push(exposure);

  let replacedDir: string | undefined;
  if (caExists(opts.dataDir)) {
    if (!opts.force) {
      throw new EnvironmentError(
        'ca_exists',
        `a CA already exists in ${opts.dataDir}; use --force to replace it (its files are kept aside)`,
        { dataDir: opts.dataDir },
      );
    }
  }
  ensurePrivateDir(opts.dataDir);
  // Resolve a supplied passphrase BEFORE moving anything: --passphrase-file may point into the old ca/.
  const supplied = opts.passphrase ?? opts.passphraseFile ?? (opts.env ?? process.env).KDS_CA_PASSPHRASE;
  let resolved =
    supplied !== undefined && supplied !== '' ? createCaPassphrase(opts.dataDir, opts) : undefined;
  if (opts.force && caExists(opts.dataDir)) {
    replacedDir = moveAside(opts.dataDir, now);
    warnings.push(
      `replaced the existing CA: its files are in ${replacedDir}; certificates it issued no longer verify`,
    );
  }
  resolved ??= createCaPassphrase(opts.dataDir, opts);
  const { passphrase } = resolved;
  warnings.push(...resolved.warnings);

  // The three keys at once: each callback keygen runs on its own thread-pool thread.
  const [caPair, kdcPair, adminPair] = await Promise.all([
    generateRsaKeyPair(caKeyBits),
    generateRsaKeyPair(CREDENTIAL_KEY_BITS),
    generateRsaKeyPair(CREDENTIAL_KEY_BITS),
  ]);
  const caKey: KeyObject = createPrivateKey(caPair.privateKeyPem);

  const settings: CaSettings = {
    ...DEFAULT_CA_SETTINGS,
    crlHost: hosts[0] ?? DEFAULT_CA_SETTINGS.crlHost,
    crlPort: port,
    ...(publicUrl === undefined ? {} : { publicUrl, publicUrlExplicit: true }),
  };
  const crlUrl = crlUrlOf(settings);

  const storeUrl = opts.storeUrl === '' ? undefined : opts.storeUrl;
  const store = await openAsyncStore({ dataDir: opts.dataDir, url: storeUrl });
  try {
    if (
      storeUrl !== undefined &&
      (await store.activeCertificate(ROOT_CA_NAME)) !== undefined &&
      !opts.force
    ) {
      throw new EnvironmentError(
        'ca_exists',
        `a CA already exists in ${store.location}; use --force to replace it`,
        { store: store.location },
      );
    }
    await store.setSetting(CA_SETTINGS_KEY, settings);
    const sign = asyncSigner(caKey);

    const root = await issueCertificate(
      { store, caCert: undefined, sign, settings, crlUrl: undefined, now },
      {
        name: ROOT_CA_NAME,
        role: 'ca',
        profile: 'root-ca',
        subjectCN: ROOT_CA_CN,
        publicKeyPem: caPair.publicKeyPem,
        // Backdated like every certificate the CA signs: a root valid only from this very second
        // would keep a client whose clock is a little behind from enrolling for its first minutes.
        validity: { notBefore: now - BACKDATE_MS, notAfter: now + CA_LIFETIME_DAYS * DAY_MS },
        uncapped: true,
        actor,
      },
    );
    const ctx = { store, caCert: root.cert, sign, settings, crlUrl, now };
    const sans = {
      dns: unique(['localhost', ...hosts.filter((h) => isIP(h) === 0)]),
      ip: unique(['127.0.0.1', ...hosts.filter((h) => isIP(h) !== 0)]),
    };
    const [kdc, admin] = await Promise.all([
      issueCertificate(ctx, {
        name: KDC_NAME,
        role: 'server',
        profile: 'server',
        subjectCN: KDC_NAME,
        publicKeyPem: kdcPair.publicKeyPem,
        sans,
        days: settings.maxDays,
        actor,
      }),
      issueCertificate(ctx, {
        name: ADMIN_NAME,
        role: 'admin',
        profile: 'admin',
        subjectCN: ADMIN_NAME,
        subjectOU: ADMIN_OU,
        publicKeyPem: adminPair.publicKeyPem,
        days: settings.maxDays,
        actor,
      }),
    ]);

    // Keys first, certificates after: a certificate on disk always has its key next to it.
    writeFileAtomic(paths.rootKey, encryptPrivateKey(caKey, passphrase), PRIVATE_FILE_MODE);
    ensurePrivateDir(paths.serverDir);
    writeFileAtomic(paths.serverKey, encryptPrivateKey(kdcPair.privateKeyPem, passphrase), PRIVATE_FILE_MODE);
    writeFileAtomic(paths.serverCert, kdc.cert.pem, PRIVATE_FILE_MODE);
    ensurePrivateDir(paths.adminDir);
    writeFileAtomic(
      paths.adminKey,
      encryptPrivateKey(adminPair.privateKeyPem, passphrase),
      PRIVATE_FILE_MODE,
    );
    writeFileAtomic(paths.adminCert, admin.cert.pem, PRIVATE_FILE_MODE);

    // RFC 5280 5.2.3: the first CRL is number 1; it lists nothing yet.
    const crl = await publishInitialCrl({
      store,
      paths,
      caCert: root.cert,
      sign: syncSigner(caKey),
      settings,
      now,
    });
    if (storeUrl !== undefined) {
      // The KEK of KDC-generated keys is made now, once, so every node shares its versions.
      await KeyEncryptionKeys.open(opts.dataDir, passphrase);
      await storeCredentials(store, paths);
    }
    await store.appendAudit({
      at: now,
      actor,
      action: 'ca.init',
      subject: ROOT_CA_NAME,
      detail: {
        serialHex: root.cert.serialHex,
        fingerprint256: root.cert.fingerprint256,
        caKeyBits,
        kdcSerialHex: kdc.cert.serialHex,
        adminSerialHex: admin.cert.serialHex,
        crlUrl,
        passphraseSource: resolved.source,
        ...(replacedDir !== undefined ? { replacedDir } : {}),
      },
    });

    // root_ca.pem last: its presence is what marks the CA as initialised for every other command.
    writeFileAtomic(paths.rootCa, root.cert.pem, PUBLIC_FILE_MODE);

    return {
      dataDir: opts.dataDir,
      caKeyBits,
      caSerialHex: root.cert.serialHex,
      caFingerprint256: root.cert.fingerprint256,
      caNotAfter: root.cert.notAfter,
      serverSerialHex: kdc.cert.serialHex,
      serverSans: kdc.cert.sans,
      adminSerialHex: admin.cert.serialHex,
      crlUrl: publicUrl === undefined ? null : crlUrl,
      crlNumber: crl.crlNumber,
      passphraseSource: resolved.source,
      ...(resolved.source === 'generated' && resolved.path !== undefined
        ? { passphrasePath: resolved.path }
        : {}),
      ...(replacedDir !== undefined ? { replacedDir } : {}),
      warnings,
    };
  } finally {
    await store.close();
  }
}

/**
 * Move the previous CA's files into `<dataDir>/replaced-<ISO time>/` (0700): everything that belongs to
 * that CA, so that the new one starts clean and the old one can be restored from that folder alone.
 * The KEKs go too: they are encrypted under the old passphrase (a new KDC could not open them) and the
 * old store's wrapped keys (and ticket keys) open only under them. What stays:
 *   - clients/<name>/: client homes are the clients' own (their keys and received keys, which they may
 *     still need to read); they are not CA state, and a home elsewhere would not be moved either.
 *     Each client enrolls again with the new CA.
 *   - kds.pid: the lock of `kds server start`; init refuses while a live KDC holds it, and a stale
 *     one is taken over by the next start.
 *   - earlier replaced-<time>/ folders, and anything else a user put there.
 */
function moveAside(dataDir: string, now: number): string {
  const p = caPaths(dataDir);
  const dir = join(dataDir, `replaced-${new Date(now).toISOString().replace(/[:.]/g, '-')}`);
  ensurePrivateDir(dir);
  const names = [
    p.rootCa,
    p.rootKey,
    p.rootCrl,
    p.deltaCrl,
    p.store,
    `${p.store}-wal`,
    `${p.store}-shm`,
    p.caDir,
    p.serverDir,
    p.adminDir,
    p.kekDir,
  ];
  for (const from of names) {
    if (!existsSync(from)) continue;
    try {
      renameSync(from, join(dir, from.slice(dataDir.length + 1)));
    } catch (err) {
      throw new EnvironmentError(
        'io_error',
        `cannot move ${from} aside: ${(err as NodeJS.ErrnoException).code}`,
        {
          path: from,
        },
      );
    }
  }
  return dir;
}

function checkHost(host: string): string {
  const h = String(host).trim();
  if (isIP(h) !== 0 || HOSTNAME.test(h)) return isIP(h) === 0 ? h.toLowerCase() : h;
  throw new InputError(
    'bad_request',
    `--host must be a DNS name or an IP address, got ${JSON.stringify(h.slice(0, 80))}`,
  );
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
