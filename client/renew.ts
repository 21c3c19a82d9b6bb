// `kds client renew` (docs/protocol.md "Renewal"): over a session authenticated by the certificate being
// renewed, the client
//   1. generates a NEW RSA key pair locally (callback keygen; the private key never leaves this process
//      except into its home) and stages it, with the key store's key wrapped for it (client/home.ts);
//   2. sends `cert.renew` with a CSR for its name (the CSR's self-signature is the proof of possession);
//   3. checks the certificate that comes back (chain to the pinned root, clientAuth, its name, its new
//      public key), stages it (the commit point) and swaps the files into place by rename(2);
//   4. opens a session with the new certificate: the KDC installs the renewal at that handshake (the new
//      certificate becomes active, the old one superseded and listed on the CRL).
// A crash anywhere leaves a working identity: before step 3's commit, the old one (untouched); after
// it, the new one (recoverRenewal finishes the swap at the next read of the home). Keys and prekeys the
// client holds carry over (the key store's key is re-wrapped, not changed), and so do deliveries
// queued at the KDC (they are addressed to the name).
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { generateRsaKeyPair } from '../shared/crypto/rsa.js';
import { AuthError, ProtocolError, toKdsError } from '../shared/errors.js';
import { createCsr } from '../shared/pki/csr.js';
import { pastNotAfter, verifyCertificate, verdictToError } from '../shared/pki/verify.js';
import { parseCertificate } from '../shared/pki/x509.js';
import type { DhGroup } from '../shared/crypto/dh.js';
import { DEFAULT_KEY_BITS } from './enroll.js';
import { crashPoint } from '../io/crash-point.js';
import {
  lockRenewal,
  readClientHome,
  recoverRenewal,
  resolveHome,
  stageRenewalCertificate,
  stageRenewalKey,
  type HomeLocation,
} from './home.js';
import { storeKeyOf, wrapStoreKey } from './keys/key-store.js';
import { openHomeSession, type ClientSession } from './session.js';

export interface RenewOptions extends HomeLocation {
  server: string;
  dh?: DhGroup;
  keyBits?: number;
  /** An open session of this home's current certificate to renew over (listen's); else one is opened. */
  session?: ClientSession;
  /**
   * Open a session with the new certificate at the end, so the KDC installs it now (default true).
   * `listen` reconnects instead.
   */
  confirm?: boolean;
  /** This machine's clock (default Date.now; `listen` passes its own, tests skew it). */
  now?: () => number;
}

export interface RenewResult {
  name: string;
  home: string;
  serialHex: string;
  notBefore: number;
  notAfter: number;
  /** The certificate it replaces (superseded once the KDC has seen the new one). */
  previousSerialHex: string;
  /** The KDC installed the new certificate (a session authenticated with it). */
  installed: boolean;
  /** Why the install could not be confirmed (the KDC installs it at the next session). */
  installError?: { code: string; message: string };
}

export async function renewClient(opts: RenewOptions): Promise<RenewResult> {
  const home = resolveHome(opts);
  const name = opts.name;
  // Finish or discard an interrupted renewal before deciding anything from the files.
  recoverRenewal(home);
  const files = readClientHome(home);
  const current = parseCertificate(files.certPem);
  const ca = parseCertificate(files.caPem);
  const now = opts.now ?? Date.now;
  if (pastNotAfter(current.notAfter, now())) {
    throw new AuthError(
      'cert_expired',
      `the certificate of ${name} expired on ${new Date(current.notAfter).toISOString()}: an expired certificate cannot be renewed; enroll again with a new token (kds admin token, kds client enroll)`,
      { serialHex: current.serialHex },
    );
  }
  const release = lockRenewal(home);
  let cert;
  try {
    const session =
      opts.session ??
      (await openHomeSession({
        name,
        home,
        server: opts.server,
        ...(opts.dh === undefined ? {} : { dh: opts.dh }),
      }));
    try {
      const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair(opts.keyBits ?? DEFAULT_KEY_BITS);
      const newKey = createPrivateKey(privateKeyPem);
      stageRenewalKey(home, newKey, wrapStoreKey(storeKeyOf(home, name, files.privateKey), newKey, name));
      crashPoint('renew-key-staged');
      const csr = await createCsr(name, privateKeyPem, publicKeyPem);
      const reply = await session.request('cert.renew', { csr });
      cert = parseCertificate(reply.cert);
      const at = now();
      const verdict = verifyCertificate(cert, ca, { now: at, usage: 'clientAuth', expectName: name });
      if (verdict.code !== 'ok') throw verdictToError(verdict, { localNow: at });
      const ours = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
      const theirs = createPublicKey(cert.publicKeyPem).export({ type: 'spki', format: 'der' });
      if (!ours.equals(theirs)) {
        throw new ProtocolError(
          'unexpected_message',
          'the renewed certificate is not for the key we generated',
        );
      }
      crashPoint('renew-cert-received');
      stageRenewalCertificate(home, cert.pem);
      crashPoint('renew-cert-staged');
    } finally {
      if (opts.session === undefined) await session.close().catch(() => undefined);
    }
    recoverRenewal(home); // step 3: the swap
  } finally {
    release();
    // Not committed (an error above): the staged key is deleted; the old identity is untouched.
    recoverRenewal(home);
  }
  const result: RenewResult = {
    name,
    home,
    serialHex: cert.serialHex,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    previousSerialHex: current.serialHex,
    installed: false,
  };
  if (opts.confirm === false) return result;
  try {
    const confirm = await openHomeSession({
      name,
      home,
      server: opts.server,
      ...(opts.dh === undefined ? {} : { dh: opts.dh }),
    });
    result.installed = confirm.facts.identity.serialHex === cert.serialHex;
    await confirm.close();
  } catch (err) {
    const e = toKdsError(err);
    result.installError = { code: e.code, message: e.message };
  }
  return result;
}

/** When `listen` renews: at 2/3 of the certificate's lifetime (step-ca's `--daemon` default). */
export function renewalTime(cert: { notBefore: number; notAfter: number }): number {
  return cert.notBefore + Math.floor(((cert.notAfter - cert.notBefore) * 2) / 3);
}

/** However the dates read on this machine's clock, two automatic renewals are at least this far apart. */
const MIN_RENEW_INTERVAL_MS = 3_600_000;

/**
 * When `listen` renews next after a renewal at `renewedAt` (the local clock) brought `cert`: at its
 * 2/3 point, but never sooner than a third of its lifetime later on the local clock. The dates are the
 * CA's clock and renewalTime() reads them on the local one: a clock 21 days fast finds a certificate
 * issued this second already past its 2/3 point, and renewing would bring another just like it, again
 * and again. A third of the lifetime is shortened to half of what the local clock says is left (a
 * fast clock sees the certificate expire early, and renewClient refuses one it sees expired), but not
 * below MIN_RENEW_INTERVAL_MS.
 */
export function nextRenewalAfter(cert: { notBefore: number; notAfter: number }, renewedAt: number): number {
  const third = Math.floor((cert.notAfter - cert.notBefore) / 3);
  const halfLeft = Math.floor((cert.notAfter - renewedAt) / 2);
  const interval = Math.max(MIN_RENEW_INTERVAL_MS, Math.min(third, halfLeft));
  return Math.max(renewalTime(cert), renewedAt + interval);
}
