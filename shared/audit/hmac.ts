// Sensitive values in the audit trail, as Vault's audit devices keep them: an HMAC-SHA256 under a key
// of the deployment, never the value. An auditor who holds a value (an enrollment token found on a
// laptop, in a chat log) computes its HMAC with `kds admin audit hash --value V` and finds the entries
// about it; a reader of the audit table, a backup or `kds admin audit --json` learns nothing about the
// value, and cannot test guesses without the key (a plain hash would let anyone test them).
//
// The key is derived, never stored: HKDF-SHA256 (RFC 5869) over the CA private key, with its own
// label. The CA key is the deployment's one long-lived secret, already encrypted at rest under the
// CA passphrase (root_private_key.pem, 0600): the audit key is exactly as well protected, cannot be
// lost or restored apart from the deployment, and needs no file or setting of its own. HKDF's output
// reveals nothing about its input key, and the label keeps it apart from any other use of that key.
// Pure: no I/O.
import { createHmac, hkdfSync, type KeyObject } from 'node:crypto';

/** What a hashed value looks like in an entry's detail: `hmac-sha256:` + 64 hex digits. */
const AUDIT_HMAC_PREFIX = 'hmac-sha256:';
const SALT = Buffer.from('kds audit hmac salt v1', 'utf8');
const INFO = Buffer.from('kds v1 audit hmac key', 'utf8');

/** The deployment's audit HMAC key (32 bytes), from its CA private key. */
export function deriveAuditHmacKey(caKey: KeyObject): Buffer {
  const der = caKey.export({ format: 'der', type: 'pkcs8' });
  return Buffer.from(hkdfSync('sha256', der, SALT, INFO, 32));
}

/** `hmac-sha256:<hex>` of `value` (UTF-8) under `key`. */
export function auditHmac(key: Buffer, value: string): string {
  return `${AUDIT_HMAC_PREFIX}${createHmac('sha256', key).update(value, 'utf8').digest('hex')}`;
}
