// Issuance policy for client CSRs: what a verified CSR may ask for before the CA
// certifies its key. Runs after parseCsr (which already proved possession of the key). Fixed order:
// name -> key type -> key size -> names in the CSR -> requested powers; the first failure is reported.
import { InputError, PolicyError } from '../errors.js';
import type { ParsedCsr } from './csr.js';
import { assertValidName } from './names.js';

const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 4096;

/**
 * Throws PolicyError with `bad_name`, `unsupported_key`, `weak_key`, `name_mismatch` or
 * `forbidden_extension`. Reserved names (`admin`, `kdc`) are NOT refused here: the CA issues those
 * itself; the client enrollment path checks `isReservedName` (names.ts) where tokens are created.
 *
 * Requested CA powers are refused rather than silently dropped. Either way the certificate would carry
 * only the client profile (the CA never copies CSR extensions), but a CSR that asks for CA:true,
 * keyCertSign or cRLSign is either a mistake or an attack, and saying so is more useful than issuing
 * something other than what was asked.
 */
export function checkCsrPolicy(csr: ParsedCsr, expectedName: string): void {
  assertValidName(expectedName);

  if (csr.keyType !== 'rsa') {
    throw new InputError('unsupported_key', `only RSA keys are certified, got ${csr.keyType}`);
  }
  if (csr.keyBits < MIN_RSA_BITS) {
    throw new PolicyError(
      'weak_key',
      `RSA key of ${csr.keyBits} bits is too weak: at least ${MIN_RSA_BITS} required`,
    );
  }
  if (csr.keyBits > MAX_RSA_BITS) {
    throw new InputError(
      'unsupported_key',
      `RSA key of ${csr.keyBits} bits: at most ${MAX_RSA_BITS} supported`,
    );
  }

  // The subject must be exactly CN=<name>, and every SAN must name the same principal.
  const cns = csr.subjectCNs ?? [csr.subjectCN];
  if (cns.length !== 1 || cns[0] !== expectedName) {
    throw new PolicyError('name_mismatch', `CSR subject CN must be exactly ${JSON.stringify(expectedName)}`);
  }
  const foreign = [
    ...csr.sans.dns.filter((d) => d !== expectedName),
    ...csr.sans.ip,
    ...(csr.otherSans ?? []),
  ];
  if (foreign.length > 0) {
    throw new PolicyError('name_mismatch', `CSR subjectAltName may only contain DNS:${expectedName}`);
  }

  for (const ext of csr.requestedExtensions) {
    if (ext.ca === true) {
      throw new PolicyError('forbidden_extension', 'CSR requests basicConstraints CA:true');
    }
    if (ext.keyCertSign === true || ext.cRLSign === true) {
      throw new PolicyError('forbidden_extension', 'CSR requests keyCertSign/cRLSign key usage');
    }
  }
}
