// crl.published events, read off the CA's published state rather than reported by the publisher: the
// KDC calls check() after each revocation it acknowledges, on its 2 s maintenance timer (which also
// sees CRLs issued by renewals, by the re-issue scheduled after a revocation, and by other processes)
// and at start and stop. The state comparison is two numbers held in memory; a CRL's entries are
// counted (one DER header per entry) only when its number moved.
import { TAG, childrenOf, readOne, sequenceOf } from '../../shared/pki/asn1.js';
import { pemToDer } from '../../shared/pki/pem.js';
import type { CertificateAuthority } from '../ca/authority.js';
import type { EventBus } from './bus.js';

interface Published {
  crlNumber: number;
  pem: string;
  thisUpdate: number;
  nextUpdate: number;
}

/** Entries of a CRL (RFC 5280 5.1: revokedCertificates is the optional SEQUENCE after the times). */
export function countCrlEntries(der: Buffer): number {
  const [tbs] = sequenceOf(readOne(der));
  const fields = childrenOf(tbs!);
  // version?, signature, issuer, thisUpdate, nextUpdate?, revokedCertificates?, [0] crlExtensions?
  let i = fields[0]?.tag === TAG.INTEGER ? 4 : 3;
  if (fields[i] !== undefined && fields[i]!.tag !== TAG.SEQUENCE && fields[i]!.constructed === false) i += 1;
  const revoked = fields[i];
  return revoked !== undefined && revoked.tag === TAG.SEQUENCE ? childrenOf(revoked).length : 0;
}

export class CrlWatch {
  readonly #ca: CertificateAuthority;
  readonly #events: EventBus;
  #full: number;
  #delta: number;

  constructor(ca: CertificateAuthority, events: EventBus) {
    this.#ca = ca;
    this.#events = events;
    // What was published before this KDC started is not news.
    this.#full = ca.currentCrl().crlNumber;
    this.#delta = ca.currentDeltaCrl()?.crlNumber ?? 0;
  }

  check(): void {
    if (!this.#events.wants('crl.published')) return;
    const full = this.#ca.currentCrl();
    if (full.crlNumber !== this.#full) {
      this.#full = full.crlNumber;
      this.#report('full', full);
    }
    const delta = this.#ca.currentDeltaCrl();
    if (delta !== undefined && delta.crlNumber !== this.#delta) {
      this.#delta = delta.crlNumber;
      this.#report('delta', delta);
    }
  }

  #report(kind: 'full' | 'delta', state: Published): void {
    const der = pemToDer(state.pem, 'X509 CRL');
    this.#events.emit({
      type: 'crl.published',
      kind,
      crlNumber: String(state.crlNumber),
      entries: countCrlEntries(der),
      bytes: der.length,
      thisUpdate: state.thisUpdate,
      nextUpdate: state.nextUpdate,
    });
  }
}
