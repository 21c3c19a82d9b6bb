// The on-disk layout of a CA data directory (certs/README.md documents it for users) and the CA settings
// kept in the store. The seed-compatible artifacts keep their historical names at the top level.
import { join } from 'node:path';

export interface CaPaths {
  dataDir: string;
  /** Root CA certificate (public, 0644). */
  rootCa: string;
  /** Root CA private key, PKCS#8 encrypted with the CA passphrase (0600). */
  rootKey: string;
  /** Current CRL v2 (public, 0644), rewritten atomically on every revocation. */
  rootCrl: string;
  /** Current delta CRL (RFC 5280 5.2.4) completing root_crl.pem (public, 0644), rewritten on every revocation. */
  deltaCrl: string;
  caDir: string;
  /** Generated CA passphrase (0600), only when none was supplied at init. */
  passphrase: string;
  serverDir: string;
  serverKey: string;
  serverCert: string;
  adminDir: string;
  adminKey: string;
  adminCert: string;
  store: string;
}

export function caPaths(dataDir: string): CaPaths {
  return {
    dataDir,
    rootCa: join(dataDir, 'root_ca.pem'),
    rootKey: join(dataDir, 'root_private_key.pem'),
    rootCrl: join(dataDir, 'root_crl.pem'),
    deltaCrl: join(dataDir, 'root_delta_crl.pem'),
    caDir: join(dataDir, 'ca'),
    passphrase: join(dataDir, 'ca', 'passphrase'),
    serverDir: join(dataDir, 'server'),
    serverKey: join(dataDir, 'server', 'key.pem'),
    serverCert: join(dataDir, 'server', 'cert.pem'),
    adminDir: join(dataDir, 'admin'),
    adminKey: join(dataDir, 'admin', 'key.pem'),
    adminCert: join(dataDir, 'admin', 'cert.pem'),
    store: join(dataDir, 'kds.sqlite'),
  };
}

/** Store setting key of the CA configuration written by `kds server init`. */
export const CA_SETTINGS_KEY = 'ca';

export interface CaSettings {
  /** Host and port of the KDC's HTTP endpoint, used in the CRL distribution point URL. */
  crlHost: string;
  crlPort: number;
  /** Validity of a certificate when --days is not given. */
  defaultDays: number;
  /** Longest validity the CA will sign (also capped by the CA's own notAfter). */
  maxDays: number;
  /** nextUpdate - thisUpdate of every CRL. */
  crlValidityDays: number;
  /**
   * While fewer certificates than this are revoked, every revocation also re-issues the complete CRL
   * before it is acknowledged (root_crl.pem always lists everything). From this size on, a revocation
   * publishes only the delta CRL and the complete CRL is rebuilt on the schedule below.
   */
  crlSyncFullMax: number;
  /** Rebuild the complete CRL (off the acknowledgement path) once the delta lists this many entries. */
  crlDeltaMaxEntries: number;
  /** ... or once the delta is non-empty and the complete CRL is older than this (ms). */
  crlFullIntervalMs: number;
}

export const DEFAULT_CA_SETTINGS: CaSettings = {
  crlHost: '127.0.0.1',
  crlPort: 8443,
  defaultDays: 30,
  maxDays: 365,
  crlValidityDays: 7,
  crlSyncFullMax: 10_000,
  crlDeltaMaxEntries: 2_000,
  crlFullIntervalMs: 3_600_000,
};

/** RFC 3986 host in a URL: IPv6 literals go in brackets. */
export function crlUrlOf(s: Pick<CaSettings, 'crlHost' | 'crlPort'>): string {
  const host = s.crlHost.includes(':') ? `[${s.crlHost}]` : s.crlHost;
  return `http://${host}:${s.crlPort}/crl.pem`;
}

/** Where the KDC serves the delta CRL (the complete CRL's Freshest CRL extension names it). */
export function deltaCrlUrlOf(s: Pick<CaSettings, 'crlHost' | 'crlPort'>): string {
  return crlUrlOf(s).replace(/\/crl\.pem$/, '/delta-crl.pem');
}

export const DAY_MS = 86_400_000;

/** Reserved names of the credentials `init` creates (shared/pki/names.ts reserves them for clients). */
export const ROOT_CA_NAME = 'root-ca';
export const KDC_NAME = 'kdc';
export const ADMIN_NAME = 'admin';
export const ADMIN_OU = 'kds-admin';
export const ROOT_CA_CN = 'kds root CA';
