// `kds admin audit` and `kds admin audit verify`, reading the store of a data directory directly. The
// verification deliberately does not ask the running KDC: a KDC (or a database) that was tampered with
// would vouch for itself. It needs no passphrase: the heads verify with the KDC certificates recorded
// in the store, each checked against the root CA certificate of the data directory (whose fingerprint
// the report shows, to compare with the one clients pin).
import { readFileSync } from 'node:fs';
import { entryKind } from '../../io/fs-errors.js';
import { createPublicKey } from 'node:crypto';
import { verifyPss } from '../../shared/crypto/rsa.js';
import { EnvironmentError } from '../../shared/errors.js';
import {
  auditHeadSignedData,
  verifyAuditChain,
  type AuditAnchor,
  type AuditHeadRecord,
  type AuditVerification,
} from '../../shared/audit/chain.js';
import { verifyCertificate } from '../../shared/pki/verify.js';
import { parseCertificate, type ParsedCertificate } from '../../shared/pki/x509.js';
import { caPaths } from '../../io/ca-files.js';
import type { AuditRecord } from '../store/store.js';
import type { AsyncStore } from '../store/async-store.js';
import { openAsyncStore } from '../store/open-store.js';
import { auditHmac, deriveAuditHmacKey } from '../../shared/audit/hmac.js';
import { resolveCaPassphrase, type PassphraseOptions } from '../../io/ca-passphrase.js';
import { decryptPrivateKey, readText } from '../ca/credentials.js';

export interface AuditFilter {
  since?: number;
  type?: string;
  name?: string;
  limit?: number;
}

/**
 * The store, read-only: these commands write nothing, so they work on a read-only copy of the data
 * directory and never migrate (an older KDC may still be running on the store). entryKind, not
 * existsSync: a store out of reach is permission denied (io_error), not missing with the advice to run
 * `kds server init` over it.
 */
async function openExisting(dataDir: string, storeUrl: string | undefined): Promise<AsyncStore> {
  const paths = caPaths(dataDir);
  if (storeUrl === undefined && entryKind(paths.store) === 'missing') {
    throw new EnvironmentError('ca_missing', `no kds store in ${dataDir} (run kds server init)`);
  }
  return openAsyncStore({ dataDir, url: storeUrl, readOnly: true });
}

/**
 * Every audit entry matching `query`, oldest first, read in pages of AUDIT_PAGE entries. One query for
 * the whole log would be one statement whose time grows with the log, and PostgreSQL's store ends any
 * statement that runs longer than its query timeout (server/store/pg-store.ts): an operator with a long
 * audit trail could not verify it at all. Each page is an index range on the primary key.
 */
async function allAudit(
  store: AsyncStore,
  query: { action?: string; since?: number } = {},
): Promise<AuditRecord[]> {
  const all: AuditRecord[] = [];
  let afterId = 0;
  for (;;) {
    const page = await store.listAudit({ ...query, afterId, limit: AUDIT_PAGE });
    for (const entry of page) all.push(entry);
    const last = page.at(-1);
    if (page.length < AUDIT_PAGE || last === undefined) return all;
    afterId = last.id;
  }
}

/** Entries per audit read (see allAudit). */
export const AUDIT_PAGE = 5_000;

/** Whether an entry is about `name`: its subject, its actor (`admin:name`, `enroll:name`), or a party in its detail. */
function concerns(entry: AuditRecord, name: string): boolean {
  if (entry.subject === name || entry.actor === name || entry.actor.endsWith(`:${name}`)) return true;
  const d = entry.detail;
  return d.name === name || d.owner === name || d.peer === name;
}

export async function readAudit(
  dataDir: string,
  filter: AuditFilter = {},
  storeUrl?: string,
): Promise<AuditRecord[]> {
  const store = await openExisting(dataDir, storeUrl);
  try {
    const rows = await allAudit(store, {
      ...(filter.since === undefined ? {} : { since: filter.since }),
      ...(filter.type === undefined ? {} : { action: filter.type }),
    });
    const picked = filter.name === undefined ? rows : rows.filter((r) => concerns(r, filter.name!));
    return filter.limit === undefined ? picked : picked.slice(-filter.limit);
  } finally {
    await store.close();
  }
}

export interface AuditVerifyReport extends AuditVerification {
  /** SHA-256 of the root CA certificate the heads were checked against. */
  caFingerprint: string;
}

export async function verifyAudit(
  dataDir: string,
  storeUrl?: string,
  anchors: readonly AuditAnchor[] = [],
): Promise<AuditVerifyReport> {
  const paths = caPaths(dataDir);
  const store = await openExisting(dataDir, storeUrl);
  try {
    const ca = parseCertificate(readFileSync(paths.rootCa, 'utf8'));
    const entries = await allAudit(store);
    const heads = await store.listAuditHeads();
    // The KDC certificates the heads name, read before the (synchronous) chain walk.
    const records = new Map<string, Awaited<ReturnType<AsyncStore['getCertificate']>>>();
    for (const head of heads) {
      if (!records.has(head.certSerial))
        records.set(head.certSerial, await store.getCertificate(head.certSerial));
    }
    const kdcCerts = new Map<string, ParsedCertificate | null>();
    const kdcCert = (serial: string): ParsedCertificate | null => {
      let cert = kdcCerts.get(serial);
      if (cert === undefined) {
        const record = records.get(serial);
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
    const result = verifyAuditChain(entries, heads, verifyHead, anchors);
    return { ...result, caFingerprint: ca.fingerprint256 };
  } finally {
    await store.close();
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
export async function auditHashOf(
  dataDir: string,
  value: string,
  opts: PassphraseOptions = {},
  storeUrl?: string,
): Promise<AuditHashReport> {
  const paths = caPaths(dataDir);
  const store = await openExisting(dataDir, storeUrl);
  try {
    const { passphrase } = resolveCaPassphrase(dataDir, opts);
    const caKey = decryptPrivateKey(readText(paths.rootKey), passphrase);
    const hmac = auditHmac(deriveAuditHmacKey(caKey), value);
    const entries = (await allAudit(store)).filter((r) => Object.values(r.detail).includes(hmac));
    return { hmac, entries };
  } finally {
    await store.close();
  }
}
