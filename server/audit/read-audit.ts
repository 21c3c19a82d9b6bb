// `kds admin audit` and `kds admin audit verify`, reading the store of a data directory directly. The
// verification deliberately does not ask the running KDC: a KDC (or a database) that was tampered with
// would vouch for itself. It needs no passphrase: the heads verify with the KDC certificates recorded
// in the store, each checked against the root CA certificate of the data directory (whose fingerprint
// the report shows, to compare with the one clients pin).
import { existsSync, readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { verifyPss } from '../../shared/crypto/rsa.js';
import { EnvironmentError } from '../../shared/errors.js';
import {
  auditHeadSignedData,
  verifyAuditChain,
  type AuditHeadRecord,
  type AuditVerification,
} from '../../shared/audit/chain.js';
import { verifyCertificate } from '../../shared/pki/verify.js';
import { parseCertificate, type ParsedCertificate } from '../../shared/pki/x509.js';
import { caPaths } from '../../io/ca-files.js';
import { openStore, type AuditRecord, type Store } from '../store/store.js';
import { auditHmac, deriveAuditHmacKey } from '../../shared/audit/hmac.js';
import { resolveCaPassphrase, type PassphraseOptions } from '../../io/ca-passphrase.js';
import { decryptPrivateKey, readText } from '../ca/credentials.js';

export interface AuditFilter {
  since?: number;
  type?: string;
  name?: string;
  limit?: number;
}

function openExisting(dataDir: string): Store {
  const paths = caPaths(dataDir);
  if (!existsSync(paths.store)) {
    throw new EnvironmentError('ca_missing', `no kds store in ${dataDir} (run kds server init)`);
  }
  return openStore(dataDir);
}

/** Whether an entry is about `name`: its subject, its actor (`admin:name`, `enroll:name`), or a party in its detail. */
function concerns(entry: AuditRecord, name: string): boolean {
  if (entry.subject === name || entry.actor === name || entry.actor.endsWith(`:${name}`)) return true;
  const d = entry.detail;
  return d.name === name || d.owner === name || d.peer === name;
}

export function readAudit(dataDir: string, filter: AuditFilter = {}): AuditRecord[] {
  const store = openExisting(dataDir);
  try {
    const rows = store.listAudit({
      ...(filter.since === undefined ? {} : { since: filter.since }),
      ...(filter.type === undefined ? {} : { action: filter.type }),
    });
    const picked = filter.name === undefined ? rows : rows.filter((r) => concerns(r, filter.name!));
    return filter.limit === undefined ? picked : picked.slice(-filter.limit);
  } finally {
    store.close();
  }
}

export interface AuditVerifyReport extends AuditVerification {
  /** SHA-256 of the root CA certificate the heads were checked against. */
  caFingerprint: string;
}

export function verifyAudit(dataDir: string): AuditVerifyReport {
  const paths = caPaths(dataDir);
  const store = openExisting(dataDir);
  try {
    const ca = parseCertificate(readFileSync(paths.rootCa, 'utf8'));
    const kdcCerts = new Map<string, ParsedCertificate | null>();
    const kdcCert = (serial: string): ParsedCertificate | null => {
      let cert = kdcCerts.get(serial);
      if (cert === undefined) {
        const record = store.getCertificate(serial);
        cert = null;
        if (record !== undefined && record.pem !== null && record.role === 'server') {
          const parsed = parseCertificate(record.pem);
          // Issued by this CA for the KDC; valid when it signed (not necessarily now).
          const when = Math.max(parsed.notBefore, ca.notBefore);
          const verdict = verifyCertificate(parsed, ca, { usage: 'serverAuth', now: when });
          if (verdict.code === 'ok' && parsed.serialHex === serial) cert = parsed;
        }
        kdcCerts.set(serial, cert);
      }
      return cert;
    };
    const verifyHead = (head: AuditHeadRecord): boolean => {
      const cert = kdcCert(head.certSerial);
      if (cert === null) return false;
      if (head.signedAt < cert.notBefore || head.signedAt > cert.notAfter) return false;
      return verifyPss(auditHeadSignedData(head), head.signature, createPublicKey(cert.publicKeyPem));
    };
    const result = verifyAuditChain(store.listAudit(), store.listAuditHeads(), verifyHead);
    return { ...result, caFingerprint: ca.fingerprint256 };
  } finally {
    store.close();
  }
}

export interface AuditHashReport {
  /** `hmac-sha256:<hex>` of the value under this deployment's audit key. */
  hmac: string;
  /** The entries whose detail holds it, oldest first. */
  entries: AuditRecord[];
}

/**
 * `kds admin audit hash`: the audit trail's HMAC of a value the operator holds (shared/audit/hmac.ts)
 * and the entries that carry it. Needs the CA passphrase (the key is derived from the CA key), so a
 * reader of the store alone cannot test guesses. Nothing is written.
 */
export function auditHashOf(dataDir: string, value: string, opts: PassphraseOptions = {}): AuditHashReport {
  const paths = caPaths(dataDir);
  const store = openExisting(dataDir);
  try {
    const { passphrase } = resolveCaPassphrase(dataDir, opts);
    const caKey = decryptPrivateKey(readText(paths.rootKey), passphrase);
    const hmac = auditHmac(deriveAuditHmacKey(caKey), value);
    const entries = store.listAudit({}).filter((r) => Object.values(r.detail).includes(hmac));
    return { hmac, entries };
  } finally {
    store.close();
  }
}
