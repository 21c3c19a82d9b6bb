// Renewal of a certificate by its holder (docs/protocol.md "Renewal"; the anchor is `step ca renew`:
// the renewal is authenticated by the certificate being renewed). The rules, checked cheapest first:
//   1. the requesting session's certificate is the name's active one, unrevoked and unexpired (a revoked
//      or expired certificate cannot renew: its holder enrolls again with a new token);
//   2. at most MAX_RENEWALS_PER_WINDOW requests per name per RENEWAL_WINDOW_MS, counted in the store
//      (so across sessions, processes and restarts) before the RSA signature is spent; the KDC handler
//      adds one request in flight per session;
//   3. the CSR is for the same name, proves possession of its key (self-signature) and passes the
//      issuance policy, and its key is a NEW one (re-certifying a possibly exposed key renews nothing);
//   4. the new certificate is recorded `pending`; it becomes `active`, and the renewed one `superseded`,
//      when its holder first authenticates with it (installableRenewal, checked in the handshake and
//      again under the write lock). Until then the old certificate keeps working, so a renewal the
//      client never installs (a crash, a lost reply) leaves it with a valid identity.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { InputError, PolicyError, AuthError } from '../../shared/errors.js';
import type { CertificateRecord, RenewalRecord } from '../store/store.js';
import type { AsyncStoreData } from '../store/async-store.js';
import { CLOCK_SKEW_REFUSE_MS } from '../store/clock-skew.js';

/** Renewal requests one name may make per window (a renewal costs the CA an RSA signature). */
export const MAX_RENEWALS_PER_WINDOW = 3;
const RENEWAL_WINDOW_MS = 60 * 60_000;

/** Step 1: `current` (the session's certificate record) may be renewed by `name` at `now`. */
export async function checkRenewable(
  store: Pick<AsyncStoreData, 'getRevocation'>,
  current: CertificateRecord | undefined,
  name: string,
  now: number,
): Promise<void> {
  if (current === undefined || current.name !== name || current.pem === null) {
    throw new AuthError('cert_unknown_issuer', 'certificate not issued by the trusted CA');
  }
  if (current.status === 'revoked' || (await store.getRevocation(current.serialHex)) !== undefined) {
    throw new AuthError(
      'cert_revoked',
      'a revoked certificate cannot be renewed: enroll again with a new token',
      {
        serialHex: current.serialHex,
      },
    );
  }
  if (current.status !== 'active') {
    throw new AuthError('cert_revoked', 'certificate superseded', { serialHex: current.serialHex });
  }
  // RFC 5280 4.1.2.5: valid "from notBefore through notAfter, inclusive", at one-second resolution.
  if (Math.floor(now / 1000) * 1000 > current.notAfter) {
    throw new AuthError(
      'cert_expired',
      'an expired certificate cannot be renewed: enroll again with a new token',
      {
        serialHex: current.serialHex,
      },
    );
  }
  if (current.role !== 'client' && current.role !== 'admin') {
    throw new AuthError('cert_wrong_usage', 'certificate not valid for this use');
  }
}

/** Step 2, inside the issuing transaction. */
export async function checkRenewalRate(
  store: Pick<AsyncStoreData, 'countRenewalsSince'>,
  name: string,
  now: number,
): Promise<void> {
  // A request stamped further ahead of this clock than two in-bounds clocks can disagree (this one up to
  // CLOCK_SKEW_REFUSE_MS behind the database's, the stamper's up to that much ahead) came from a clock
  // that was wrong: it must not hold the name's limit full until the real time reaches it.
  const counted = await store.countRenewalsSince(
    name,
    now - RENEWAL_WINDOW_MS,
    now + 2 * CLOCK_SKEW_REFUSE_MS,
  );
  if (counted >= MAX_RENEWALS_PER_WINDOW) {
    throw new PolicyError(
      'rate_limited',
      `at most ${MAX_RENEWALS_PER_WINDOW} renewals per hour for one name; try again later`,
    );
  }
}

/** Step 3: the CSR's key must not be the key of the certificate being renewed. */
export function refuseSameKey(current: CertificateRecord, csrKey: KeyObject): void {
  const old = createPublicKey(current.pem!).export({ type: 'spki', format: 'der' });
  if (old.equals(csrKey.export({ type: 'spki', format: 'der' }))) {
    throw new InputError(
      'bad_request',
      'a renewal needs a new key pair: the CSR has the key of the certificate it renews',
    );
  }
}

/** Step 4: the renewal `serialHex` may be installed now (else undefined). */
export async function installableRenewal(
  store: Pick<
    AsyncStoreData,
    'getRenewal' | 'getCertificateStanding' | 'activeCertificate' | 'latestRenewalOf'
  >,
  serialHex: string,
  isRevoked: (serialHex: string) => boolean,
): Promise<RenewalRecord | undefined> {
  const renewal = await store.getRenewal(serialHex);
  if (renewal === undefined || renewal.installedAt !== null) return undefined;
  if ((await store.getCertificateStanding(serialHex))?.status !== 'pending') return undefined;
  if ((await store.activeCertificate(renewal.name))?.serialHex !== renewal.replaces) return undefined;
  if (isRevoked(renewal.replaces)) return undefined;
  // Only the newest request: an older one the client abandoned (it asked again) is never installed.
  if ((await store.latestRenewalOf(renewal.replaces))?.serialHex !== serialHex) return undefined;
  return renewal;
}
