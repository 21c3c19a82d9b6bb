// `kds cert verify`'s view of the PUBLISHED revocation state: the complete CRL and the delta CRL
// completing it (RFC 5280 5.2.4), read as a relying party would (signature checked against the CA), so
// the command reports which of the two lists a certificate and never trusts only one of them.
import { parseCrl, type ParsedCrl } from '../shared/pki/crl.js';
import type { CertificateAuthority } from '../server/ca/authority.js';

export interface PublishedCrlStatus {
  /** Which published CRL lists the serial, if any. */
  listed: 'full' | 'delta' | undefined;
  /** Both CRLs are signed by this CA (false: do not trust a verdict built on them). */
  signaturesValid: boolean;
  json: {
    crlNumber: string;
    deltaCrlNumber?: string;
    baseCrlNumber?: string;
    listedIn: 'full' | 'delta' | null;
    reason?: string;
    signatures: 'valid' | 'INVALID';
  };
}

/**
 * RFC 5280 5.2.4: a delta CRL completes the complete CRL whose number is its BaseCRLNumber (or a later
 * one); it adds information only when its own number is above the complete CRL's (the rule openssl's
 * -use_deltas applies too). Any other delta is ignored.
 */
function deltaApplies(full: ParsedCrl, delta: ParsedCrl): boolean {
  return (
    delta.baseCrlNumber !== undefined &&
    delta.baseCrlNumber <= full.crlNumber &&
    delta.crlNumber > full.crlNumber
  );
}

export function publishedCrlStatus(
  ca: CertificateAuthority,
  serialHex: string | undefined,
): PublishedCrlStatus {
  const full = parseCrl(ca.currentCrlPem());
  const deltaPem = ca.currentDeltaCrlPem();
  const delta = deltaPem === undefined ? undefined : parseCrl(deltaPem);
  const signaturesValid =
    full.signatureValid(ca.caCert) && (delta === undefined || delta.signatureValid(ca.caCert));
  const serial = serialHex?.toLowerCase();
  const inDelta =
    delta !== undefined && deltaApplies(full, delta)
      ? delta.entries.find((e) => e.serialHex === serial)
      : undefined;
  const inFull = inDelta === undefined ? full.entries.find((e) => e.serialHex === serial) : undefined;
  const entry = inDelta ?? inFull;
  const listed = serial === undefined ? undefined : inDelta ? 'delta' : inFull ? 'full' : undefined;
  return {
    listed,
    signaturesValid,
    json: {
      crlNumber: full.crlNumber.toString(),
      ...(delta !== undefined
        ? { deltaCrlNumber: delta.crlNumber.toString(), baseCrlNumber: String(delta.baseCrlNumber) }
        : {}),
      listedIn: listed ?? null,
      ...(entry !== undefined ? { reason: entry.reason } : {}),
      signatures: signaturesValid ? 'valid' : 'INVALID',
    },
  };
}
