// The on-disk layout of a CA data directory (certs/README.md documents it for users) and the CA settings
// kept in the store. The seed-compatible artifacts keep their historical names at the top level.
import { join } from 'node:path';
import { InputError } from '../shared/errors.js';

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
  /** Key-encryption keys of KDC-generated keys (server/keys/kek.ts), encrypted with the CA passphrase. */
  kekDir: string;
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
    kekDir: join(dataDir, 'kek'),
    store: join(dataDir, 'kds.sqlite'),
  };
}

/** Store setting key of the CA configuration written by `kds server init`. */
export const CA_SETTINGS_KEY = 'ca';

export interface CaSettings {
  /**
   * Host and port of the KDC's HTTP endpoint, used in the CRL distribution point URL when no
   * `publicUrl` is set (data directories made before it existed, and `init` without --host).
   */
  crlHost: string;
  crlPort: number;
  /**
   * The KDC's public base URL (`http://kdc.example:8443`, no trailing slash): issued certificates name
   * `<publicUrl>/crl.pem` as their CRL distribution point and complete CRLs `<publicUrl>/delta-crl.pem`
   * as their Freshest CRL. `kds server start` writes the one it serves under (docs/cli.md).
   */
  publicUrl?: string;
  /** true when publicUrl was given (--public-url, KDS_PUBLIC_URL, init --host), not derived. */
  publicUrlExplicit?: boolean;
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

/** `http://host:port` for a host name or IP address (RFC 3986: IPv6 literals go in brackets). */
export function baseUrlOf(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The public base URL of the settings: `publicUrl`, else `http://crlHost:crlPort`. */
export function publicUrlOf(s: Pick<CaSettings, 'crlHost' | 'crlPort' | 'publicUrl'>): string {
  return s.publicUrl ?? baseUrlOf(s.crlHost, s.crlPort);
}

/** The CRL distribution point of issued certificates: `<public URL>/crl.pem`. */
export function crlUrlOf(s: Pick<CaSettings, 'crlHost' | 'crlPort' | 'publicUrl'>): string {
  return `${publicUrlOf(s)}/crl.pem`;
}

/** Where the KDC serves the delta CRL (the complete CRL's Freshest CRL extension names it). */
export function deltaCrlUrlOf(s: Pick<CaSettings, 'crlHost' | 'crlPort' | 'publicUrl'>): string {
  return `${publicUrlOf(s)}/delta-crl.pem`;
}

/**
 * A public base URL as given by a user (--public-url, KDS_PUBLIC_URL): an absolute http(s) URL with a
 * host, no credentials, query or fragment; a path is kept (a reverse proxy's prefix), its trailing
 * slashes dropped. Printable ASCII only, as it goes into certificates as an IA5String URI (RFC 5280
 * 4.2.1.13). Throws InputError `bad_request` naming the problem.
 */
export function normalizePublicUrl(input: string): string {
  const bad = (why: string): InputError =>
    new InputError('bad_request', `--public-url ${JSON.stringify(String(input).slice(0, 120))}: ${why}`);
  if (typeof input !== 'string' || !/^[\x21-\x7e]+$/.test(input)) throw bad('expected printable ASCII');
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw bad('not an absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('must start with http:// or https://');
  if (url.username !== '' || url.password !== '') throw bad('must not carry credentials');
  if (url.search !== '' || url.hash !== '' || input.includes('?') || input.includes('#'))
    throw bad('must not have a query or fragment');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export const DAY_MS = 86_400_000;

/** Reserved names of the credentials `init` creates (shared/pki/names.ts reserves them for clients). */
export const ROOT_CA_NAME = 'root-ca';
export const KDC_NAME = 'kdc';
export const ADMIN_NAME = 'admin';
export const ADMIN_OU = 'kds-admin';
export const ROOT_CA_CN = 'kds root CA';
