// Authenticating the other party's certificate inside a key exchange (docs/keys.md "Requirements"): "checks the other's
// signature and certificate". The certificate must chain to the pinned root, be valid now, carry
// clientAuth and name exactly the expected party.
//
// Error mapping (a deliberate choice, docs/keys.md): a revoked peer is
// `peer_revoked`, an expired or not-yet-valid one `peer_unavailable`; every other failure means "the
// values I was given are not signed by the party I expected" and is `bad_signature`, the same code a
// swapped prekey or transcript gives, with the certificate verdict as a non-secret detail. A relay that
// substitutes a certificate (its own, a second CA's, another user's) therefore always fails the same way.
import { AuthError, StateError } from '../errors.js';
import { parseCertificate, type ParsedCertificate } from '../pki/x509.js';
import { verifyCertificate } from '../pki/verify.js';

export interface PeerCheck {
  /** The pinned root CA (the client's ca.pem). */
  ca: ParsedCertificate;
  expectName: string;
  now?: number;
}

export function authenticatePeerCertificate(certDer: Uint8Array, check: PeerCheck): ParsedCertificate {
  let cert: ParsedCertificate;
  try {
    cert = parseCertificate(Buffer.from(certDer));
  } catch {
    throw new AuthError('bad_signature', 'signature verification failed', { certificate: 'malformed' });
  }
  const verdict = verifyCertificate(cert, check.ca, {
    now: check.now ?? Date.now(),
    usage: 'clientAuth',
    expectName: check.expectName,
  });
  switch (verdict.code) {
    case 'ok':
      return cert;
    case 'revoked':
      throw new StateError('peer_revoked', `the certificate of ${check.expectName} is revoked`);
    case 'expired':
    case 'not_yet_valid':
      throw new StateError('peer_unavailable', `the certificate of ${check.expectName} is not valid now`);
    default:
      throw new AuthError('bad_signature', 'signature verification failed', { certificate: verdict.code });
  }
}
