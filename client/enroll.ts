// Enrollment over the network (docs/protocol.md "Certificates and enrollment"): the client
//   1. gets the root CA: GET /ca.pem over plain HTTP, which is safe only because the certificate is then
//      checked against the fingerprint the user pinned (--ca-fingerprint: SHA-256 of its DER, compared
//      in constant time). Without a pin it is trust on first use: the caller prints the fingerprint
//      with a loud note so the user can compare it out of band;
//   2. generates its RSA key locally (callback keygen, 2048 bits by default): the private key never
//      leaves this process except into the client's home;
//   3. opens an `enroll`-mode session (the KDC proves itself with a certificate chaining to that root;
//      the client stays anonymous) and sends the one-time token with a CSR for its name;
//   4. checks what comes back (chain to the pinned root, clientAuth, its name, its own public key) and
//      stores key.pem, cert.pem and ca.pem in its home.
// A lost answer (the connection closed, the node went away or no reply came in time, after the request
// was sent) may hide a certificate the CA already issued and a token already spent. The client then
// sends the SAME request once more, in a new session (on the next node of the list if the first is
// gone): the CA answers a replay of the enrollment that spent the token with that same certificate
// (docs/protocol.md "Lost answers"), and a first attempt that never arrived is simply served now. Only
// the same CSR can be replayed (the same key, proven again), so the key and the CSR are staged in the
// home (client/home.ts) before the request is sent: when every retry goes unanswered, or the process is
// killed, running the command again with the same token sends them again and recovers the certificate.

import { assertNotCommittable } from '../io/git-exposure.js';
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { equalBytes } from '../shared/crypto/ct.js';
import { generateRsaKeyPair } from '../shared/crypto/rsa.js';
import { AuthError, EnvironmentError, InputError, KdsError, ProtocolError } from '../shared/errors.js';
import { createCsr } from '../shared/pki/csr.js';
import { fingerprintMatches, normalizeFingerprint } from '../shared/pki/fingerprint.js';
import { assertValidName } from '../shared/pki/names.js';
import { verifyCertificate, verdictToError } from '../shared/pki/verify.js';
import { clockSkewOf, describeSkew } from '../shared/pki/clock-skew.js';
import { parseCertificate, type ParsedCertificate } from '../shared/pki/x509.js';
import type { DhGroup } from '../shared/crypto/dh.js';
import type { ResponseBody } from '../shared/protocol/catalog.js';
import {
  discardStagedEnrollment,
  ENROLLMENT_DIR,
  KEY_FILE,
  clientPassphrase,
  readStagedEnrollment,
  stageEnrollment,
  writeClientHome,
} from './home.js';
import { httpGetText, type HttpText } from '../io/http-get.js';
import { withFailover } from './failover.js';
import { httpUrlOf, openSession } from './session.js';

export const DEFAULT_KEY_BITS = 2048;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{16,256}$/;
const FETCH_TIMEOUT_MS = 15_000;
const MAX_CA_PEM_BYTES = 64 * 1024;
/**
 * Failures of a sent request that say nothing about whether the KDC acted on it: the answer was lost.
 * Every other failure is the KDC's answer, and retrying it would only repeat it.
 */
const LOST_ANSWER_CODES: ReadonlySet<string> = new Set(['session_closed', 'unavailable', 'timeout']);
/**
 * Refusals that say "not now" rather than "not this request": the staged request (client/home.ts) is
 * kept for them, as for a lost answer; any other refusal drops it.
 */
const PASSING_REFUSALS: ReadonlySet<string> = new Set([
  'rate_limited',
  'too_many_connections',
  'store_error',
  'internal',
]);

export interface EnrollOptions {
  server: string;
  name: string;
  token: string;
  /** SHA-256 of the root CA's DER (hex; colons and case ignored). Absent: trust on first use. */
  caFingerprint?: string | undefined;
  keyBits?: number;
  home: string;
  dh?: DhGroup;
  /** Called with the fingerprint when no pin was given, before anything is sent to the server. */
  onTrustOnFirstUse?: (fingerprint: string) => void;
  /** A note for the person (git could not say whether the home would be committed). */
  onWarning?: (text: string) => void;
  /** Called when the first answer was lost and the same request is about to be sent once more. */
  onLostAnswer?: (err: KdsError) => void;
  /** Called when the key and request staged by an earlier run with this token are sent again. */
  onResume?: () => void;
  /** This machine's clock, for the checks of the issued certificate (default Date.now; tests skew it). */
  now?: () => number;
}

export interface EnrollResult {
  name: string;
  serialHex: string;
  notAfter: number;
  home: string;
  caFingerprint: string;
  /** true when the root was pinned by --ca-fingerprint, false for trust on first use. */
  pinned: boolean;
  /**
   * Present when the first answer was lost and the same request was sent again: the code of that loss.
   * The certificate is then the one the KDC had issued for the token (or issued now, if the first
   * request never reached it): either way the same key, the only one this token will ever certify.
   */
  lostAnswer?: string;
  /** Present when the key and request of an earlier run with this token (its answer lost) were sent again. */
  resumed?: true;
}

/** GET <http>/ca.pem (bounded size, timeout); the result is NOT trusted until its fingerprint is checked. */
export function fetchRootCa(server: string): Promise<ParsedCertificate> {
  return withFailover(server, fetchRootCaFrom);
}

async function fetchRootCaFrom(server: string): Promise<ParsedCertificate> {
  const url = `${httpUrlOf(server)}/ca.pem`;
  let res: HttpText;
  try {
    res = await httpGetText(url, FETCH_TIMEOUT_MS, MAX_CA_PEM_BYTES);
  } catch (err) {
    if (err instanceof InputError) {
      throw new InputError('malformed_pem', 'the server sent an oversized CA certificate');
    }
    throw err;
  }
  if (res.status !== 200) throw new EnvironmentError('unavailable', `GET ${url}: HTTP ${res.status}`);
  const text = res.text;
  const ca = parseCertificate(text);
  if (!ca.isCA) throw new AuthError('cert_wrong_usage', 'the server sent a certificate that is not a CA');
  return ca;
}

export async function enroll(opts: EnrollOptions): Promise<EnrollResult> {
  const name = assertValidName(opts.name);
  if (!TOKEN_PATTERN.test(opts.token)) {
    // Same code and message as the server's: a mistyped token is just an invalid token.
    throw new AuthError('token_invalid', 'enrollment token invalid, expired or already used');
  }
  const pin = opts.caFingerprint === undefined ? undefined : normalizeFingerprint(opts.caFingerprint);
  // Before anything is fetched or sent: a home that cannot be one (a file) is the user's typo.
  const homeExisted = existsSync(opts.home);
  if (homeExisted && !statSync(opts.home).isDirectory()) {
    throw new InputError(
      'bad_request',
      `${opts.home} is a file, not a directory: give a client home directory`,
    );
  }
  // Before anything is fetched or sent: how the key will be stored (an empty passphrase is refused).
  const passphrase = clientPassphrase();
  // Before the token is spent: never an identity key where `git add .` would commit it.
  const exposure = assertNotCommittable(opts.home, KEY_FILE, 'a client home');
  if (exposure !== undefined) opts.onWarning?.(exposure);
  const ca = await fetchRootCa(opts.server);
  if (pin !== undefined) {
    if (!fingerprintMatches(ca.der, pin)) {
      // Worded for both the command (--ca-fingerprint) and the menu (a prompt): no flag is named.
      throw new AuthError(
        'ca_fingerprint_mismatch',
        `the server's root CA does not match the root CA fingerprint given (it sent ${ca.fingerprint256}): someone may be in the middle`,
        {
          expected: pin,
          actual: ca.fingerprint256,
        },
      );
    }
  } else {
    opts.onTrustOnFirstUse?.(ca.fingerprint256);
  }

  // The key and CSR of an earlier run with this token whose answer was lost for good (client/home.ts
  // "enrollment/"): sent again as they were, so the KDC can answer with the certificate it issued for
  // them. Anything else staged (another name, another token) is an abandoned enrollment: start over.
  const tokenHash = createHash('sha256').update(opts.token, 'utf8').digest();
  const staged = readStagedEnrollment(opts.home, passphrase);
  let privateKey: KeyObject;
  let csr: string;
  const resumed =
    staged !== undefined &&
    staged.name === name &&
    /^[0-9a-f]{64}$/.test(staged.tokenHash) &&
    equalBytes(Buffer.from(staged.tokenHash, 'hex'), tokenHash);
  if (resumed) {
    ({ privateKey, csr } = staged);
    opts.onResume?.();
  } else {
    const keyBits = opts.keyBits ?? DEFAULT_KEY_BITS;
    const pair = await generateRsaKeyPair(keyBits);
    privateKey = createPrivateKey(pair.privateKeyPem);
    csr = await createCsr(name, pair.privateKeyPem, pair.publicKeyPem);
    // Before anything is sent: a process killed while the request is in flight can still replay it.
    stageEnrollment(opts.home, { name, tokenHash: tokenHash.toString('hex'), csr, privateKey }, passphrase);
  }

  // Set when the KDC refused the request for good: the staged request is then useless.
  let refused = false;
  const send = async (): Promise<ResponseBody<'enroll'>> => {
    // Opening the session sends nothing of the request: its failure is final (failover already tried
    // every node of the list).
    const session = await openSession({
      server: opts.server,
      mode: 'enroll',
      caCertPem: ca.pem,
      ...(opts.dh === undefined ? {} : { dh: opts.dh }),
    });
    try {
      return await session.request('enroll', { token: opts.token, csr });
    } catch (err) {
      if (err instanceof KdsError && LOST_ANSWER_CODES.has(err.code)) throw new LostAnswer(err);
      refused = !(err instanceof KdsError && PASSING_REFUSALS.has(err.code));
      throw err;
    } finally {
      await session.close();
    }
  };
  let reply: ResponseBody<'enroll'>;
  let lostAnswer: string | undefined;
  try {
    try {
      reply = await send();
    } catch (err) {
      if (!(err instanceof LostAnswer)) throw err;
      lostAnswer = err.lost.code;
      opts.onLostAnswer?.(err.lost);
      // Once: a second loss is reported as it is (the person can see whether the KDC is reachable), and
      // the staged request waits for the command to be run again.
      try {
        reply = await send();
      } catch (again) {
        throw again instanceof LostAnswer ? again.lost : again;
      }
    }
  } catch (err) {
    if (refused) {
      discardStagedEnrollment(opts.home);
      // A home this run made for an enrollment the KDC refused holds nothing: do not leave it behind
      // (a later `kds client` command would take the name as enrolled there).
      if (!homeExisted) removeIfEmpty(opts.home);
    }
    throw err;
  }

  const cert = parseCertificate(reply.cert);
  const now = (opts.now ?? Date.now)();
  const verdict = verifyCertificate(cert, ca, { now, usage: 'clientAuth', expectName: name });
  if (verdict.code === 'not_yet_valid' && verdict.certificate === undefined) {
    // The CA signed it just now (backdated BACKDATE_MS): by this machine's clock it is not valid yet, so
    // the clock is behind by more than the backdate, and by how much is known. The token is spent, but
    // the staged request stays (it is not discarded on this path): once the clock is right, the same
    // command sends it again and the KDC answers with this same certificate.
    const skewMs = clockSkewOf(cert, now);
    throw new AuthError(
      'cert_not_yet_valid',
      `the certificate the KDC issued (serial ${cert.serialHex}) is not valid yet by this machine's clock: the local clock looks ${describeSkew(skewMs)}. Correct the clock (NTP), then run the same command again with the same token: the key and request are kept in ${join(opts.home, ENROLLMENT_DIR)}/ and the KDC sends this certificate again`,
      { ...verdictToError(verdict).details, skewMs },
    );
  }
  if (verdict.code !== 'ok') throw verdictToError(verdict, { localNow: now });
  const ourKey = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const certKey = createPublicKey(cert.publicKeyPem).export({ type: 'spki', format: 'der' });
  if (!ourKey.equals(certKey)) {
    throw new ProtocolError('unexpected_message', 'the issued certificate is not for the key we generated');
  }
  writeClientHome(opts.home, { privateKey, certPem: cert.pem, caPem: ca.pem }, passphrase);
  discardStagedEnrollment(opts.home);
  return {
    name,
    serialHex: cert.serialHex,
    notAfter: cert.notAfter,
    home: opts.home,
    caFingerprint: ca.fingerprint256,
    pinned: pin !== undefined,
    ...(lostAnswer === undefined ? {} : { lostAnswer }),
    ...(resumed ? { resumed: true as const } : {}),
  };
}

function removeIfEmpty(dir: string): void {
  try {
    if (readdirSync(dir).length === 0) rmdirSync(dir);
  } catch {
    // Best effort: a home left empty is untidy, not wrong.
  }
}

/** A sent enrollment request whose answer was lost (`lost`: how), as opposed to the KDC's refusal. */
class LostAnswer extends Error {
  constructor(readonly lost: KdsError) {
    super(lost.message);
  }
}
