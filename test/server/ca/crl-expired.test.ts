// Expired certificates leave the complete CRL (server/ca/crl-sign.ts; RFC 5280 3.3: "An entry MUST NOT be
// removed from the CRL until it appears on one regularly scheduled CRL issued beyond the revoked
// certificate's validity period."), on BOTH store engines and on two CA handles of one store (two nodes
// on PostgreSQL, two processes on SQLite): each entry is listed until a complete CRL issued after its
// certificate's notAfter has listed it, and never after; every handle, and a reopened one, leaves out
// the same entries; the KDC's own revocation lookups keep every revocation.
import t from 'tap';
import type * as Tap from 'tap';
import { pooledKeyPair } from '../../helpers/template.js';
import { createCsr } from '../../../shared/pki/csr.js';
import { parseCrl } from '../../../shared/pki/crl.js';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { initCa } from '../../../server/ca/init.js';
import { CA_SETTINGS_KEY, DEFAULT_CA_SETTINGS, type CaSettings } from '../../../io/ca-files.js';
import { tempDir } from '../../helpers/tmp.js';
import { pgTestSchema } from '../../helpers/pg.js';
import { PASSPHRASE } from './fixture.js';

t.setTimeout(240_000);

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

interface Nodes {
  a: CertificateAuthority;
  b: CertificateAuthority;
  /** Another handle on the same store, as after a restart. */
  reopen(): Promise<CertificateAuthority>;
  /** Move every handle's clock this far ahead of the real time (ms). */
  skew(ms: number): void;
}

/** The CA settings for `regime`: 'delta' puts every revocation on the delta CRL only. */
async function configure(ca: CertificateAuthority, regime: 'full' | 'delta'): Promise<void> {
  if (regime === 'full') return;
  const current = (await ca.store.getSetting<CaSettings>(CA_SETTINGS_KEY)) ?? DEFAULT_CA_SETTINGS;
  await ca.store.setSetting(CA_SETTINGS_KEY, {
    ...current,
    crlSyncFullMax: 1,
    crlDeltaMaxEntries: 1_000,
    crlFullIntervalMs: 365 * DAY,
  });
}

const ENGINES: { name: string; open(t: Tap.Test, regime: 'full' | 'delta'): Promise<Nodes> }[] = [
  {
    name: 'sqlite',
    async open(t, regime) {
      const dir = tempDir(t);
      await initCa({ dataDir: dir, caKeyBits: 2048, passphrase: PASSPHRASE });
      let offset = 0;
      const clock = (): number => Date.now() + offset;
      const handles: CertificateAuthority[] = [];
      const open = async (): Promise<CertificateAuthority> => {
        const ca = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE, clock });
        handles.push(ca);
        return ca;
      };
      t.teardown(async () => {
        for (const h of handles) await h.close();
      });
      await configure(await open(), regime);
      return { a: await open(), b: await open(), reopen: open, skew: (ms) => void (offset = ms) };
    },
  },
  {
    name: 'postgres',
    async open(t, regime) {
      const handles: CertificateAuthority[] = [];
      const { url } = pgTestSchema(t, async () => {
        for (const h of handles) await h.close();
      });
      const first = tempDir(t);
      await initCa({ dataDir: first, caKeyBits: 2048, passphrase: PASSPHRASE, storeUrl: url });
      let offset = 0;
      const clock = (): number => Date.now() + offset;
      const open = async (): Promise<CertificateAuthority> => {
        const ca = await CertificateAuthority.open(handles.length === 0 ? first : tempDir(t), {
          passphrase: PASSPHRASE,
          storeUrl: url,
          clock,
          // Every handle's clock moves together, standing for time passing, not for a skewed node.
          maxClockSkewMs: Number.POSITIVE_INFINITY,
        });
        handles.push(ca);
        return ca;
      };
      await configure(await open(), regime);
      return { a: await open(), b: await open(), reopen: open, skew: (ms) => void (offset = ms) };
    },
  },
];

// The run's pooled leaf key (slot 17, test/helpers/template.ts): RSA keygen is slow.
const pair = await pooledKeyPair(17);

async function issue(
  ca: CertificateAuthority,
  name: string,
  validity?: { notBefore: number; notAfter: number },
): Promise<string> {
  const csr = await createCsr(name, pair.privateKeyPem, pair.publicKeyPem);
  const cert = await ca.issueFromCsr(csr, {
    name,
    actor: 'test',
    ...(validity === undefined ? {} : { validity }),
  });
  return cert.serialHex;
}

function listed(pem: string): string[] {
  return parseCrl(pem)
    .entries.map((e) => e.serialHex)
    .sort();
}

for (const engine of ENGINES) {
  t.test(
    `${engine.name}: an expired certificate is listed on one complete CRL issued after it expired, then left out`,
    async (t) => {
      const nodes = await engine.open(t, 'full');
      const { a, b } = nodes;
      const now = Date.now();
      const expired = await issue(a, 'expired', { notBefore: now - 2 * DAY, notAfter: now - DAY });
      const live = await issue(a, 'live');
      const soon = await issue(a, 'soon', { notBefore: now - DAY, notAfter: now + HOUR });

      await a.revoke({ serialHex: expired }, 'keyCompromise', 'test');
      t.same(listed(a.currentCrlPem()), [expired], 'revoked after it expired: still listed once');
      await a.revoke({ serialHex: live }, 'keyCompromise', 'test');
      t.same(
        listed(a.currentCrlPem()),
        [live],
        'the next complete CRL leaves it out: the one before was issued after its notAfter and listed it',
      );
      t.ok(a.revocationOf(expired), 'the KDC still knows it is revoked');

      await a.revoke({ serialHex: soon }, 'cessationOfOperation', 'test');
      t.same(listed(a.currentCrlPem()), [live, soon].sort());
      nodes.skew(2 * HOUR); // soon has expired
      await b.syncRevocations();
      await b.refreshCrl(true);
      t.same(
        listed(b.currentCrlPem()),
        [live, soon].sort(),
        'the first complete CRL issued after its notAfter (by the other handle) still lists it',
      );
      await a.syncRevocations();
      await a.refreshCrl(true);
      const after = a.currentCrl();
      t.same(listed(after.pem), [live], 'the next one does not');

      const again = await nodes.reopen();
      t.same(again.currentCrl(), after, 'a reopened handle serves the same CRL');
      await again.refreshCrl(true);
      t.same(listed(again.currentCrlPem()), [live], 'and issues the same list');
      t.ok(again.revocationOf(soon) && again.revocationOf(expired), 'its lookups keep every revocation');
      t.ok(again.currentCrl().crlNumber > after.crlNumber);
    },
  );

  t.test(
    `${engine.name}: with revocations on the delta CRL, only the complete CRL leaves expired entries out`,
    async (t) => {
      const nodes = await engine.open(t, 'delta');
      const { a, b } = nodes;
      const now = Date.now();
      const soon = await issue(a, 'soon', { notBefore: now - DAY, notAfter: now + HOUR });
      const live = await issue(a, 'live');
      await a.revoke({ serialHex: soon }, 'keyCompromise', 'test');
      await a.refreshCrl(true); // the complete CRL lists soon (not expired yet)
      t.same(listed(a.currentCrlPem()), [soon]);
      nodes.skew(2 * HOUR);
      await a.refreshCrl(true); // issued after soon expired: still lists it
      t.same(listed(a.currentCrlPem()), [soon]);
      await b.syncRevocations();
      const r = await b.revoke({ serialHex: live }, 'keyCompromise', 'test');
      t.equal(r.status === 'revoked' ? r.published : undefined, 'delta', 'published on the delta CRL');
      t.same(listed(b.currentDeltaCrlPem()!), [live], 'the delta lists the new revocation');
      t.same(listed(b.currentCrlPem()), [soon], 'the complete CRL is not re-issued by a revocation');
      await b.refreshCrl(true);
      t.same(listed(b.currentCrlPem()), [live], 'the next complete CRL: soon left out, live in');
      t.same(listed(b.currentDeltaCrlPem()!), [], 'and its delta is empty');
    },
  );
}
