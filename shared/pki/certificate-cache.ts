// A bounded cache of parsed certificates, keyed by the SHA-256 of their DER. Parsing a certificate
// (OpenSSL's X509 parse, the key import, the SPKI re-encoding and our own DER walk) costs ~100-250 us;
// hashing its DER ~2 us. A KDC sees the same client certificates again and again, and a client parses
// the same pinned CA, its own certificate and the KDC's certificate at every session it opens.
//
// Only parsing is cached, never a verdict: validity windows, signatures and revocation are evaluated
// by their callers every time. A ParsedCertificate is shared between callers and must not be mutated.
import { createHash } from 'node:crypto';
import { pemToDer } from './pem.js';
import { parseCertificate, type ParsedCertificate } from './x509.js';

/** Insertion-order eviction: the oldest entry goes when the cache is full. */
export class CertificateCache {
  readonly #entries = new Map<string, ParsedCertificate>();
  readonly #byPem = new Map<string, ParsedCertificate>();
  constructor(readonly limit: number) {}

  /** parseCertificate(der), or the certificate parsed earlier from the same bytes. Throws as it does. */
  parse(der: Buffer): ParsedCertificate {
    const key = createHash('sha256').update(der).digest('hex');
    const hit = this.#entries.get(key);
    if (hit !== undefined) return hit;
    const parsed = parseCertificate(der);
    evictOldest(this.#entries, this.limit);
    this.#entries.set(key, parsed);
    return parsed;
  }

  /**
   * The same for PEM text (a malformed PEM throws parseCertificate's `malformed` error). Found by the
   * text itself first: a caller passes the same string at every session, and V8 keeps a string's hash
   * once computed, so a hit decodes no base64 and hashes no DER.
   */
  parsePem(pem: string): ParsedCertificate {
    const hit = this.#byPem.get(pem);
    if (hit !== undefined) return hit;
    const parsed = this.parse(pemToDer(pem, 'CERTIFICATE'));
    evictOldest(this.#byPem, this.limit);
    this.#byPem.set(pem, parsed);
    return parsed;
  }

  /** Certificates held (by DER; the PEM index points at the same objects). */
  get size(): number {
    return this.#entries.size;
  }
}

function evictOldest(map: Map<string, ParsedCertificate>, limit: number): void {
  if (map.size < limit) return;
  const oldest = map.keys().next().value;
  if (oldest !== undefined) map.delete(oldest);
}
