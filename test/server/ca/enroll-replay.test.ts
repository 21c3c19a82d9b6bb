// A retried enrollment (its answer lost) gets the certificate its token already produced
// (server/ca/enroll-replay.ts), on BOTH store engines; on PostgreSQL the retry reaches a second node (a
// second CA handle on the same store). Only the same enrollment: the token within its lifetime, a CSR
// for the token's name whose self-signature verifies, for the key of that certificate. Everything else
// about a spent token stays token_invalid with the fixed message, and nothing is written; a certificate
// revoked or superseded since is cert_revoked, and is not handed out again.
import t from 'tap';
import type * as Tap from 'tap';
import { generateRsaKeyPair } from '../../../shared/crypto/rsa.js';
import { createCsr } from '../../../shared/pki/csr.js';
import { derToPem, pemToDer } from '../../../shared/pki/pem.js';
import { verifyAuditChain } from '../../../shared/audit/chain.js';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { initCa } from '../../../server/ca/init.js';
import { hashToken, lookupEnrollmentToken, TOKEN_INVALID_MESSAGE } from '../../../server/ca/tokens.js';
import { tempDir } from '../../helpers/tmp.js';
import { pgTestSchema } from '../../helpers/pg.js';
import { PASSPHRASE } from './fixture.js';

t.setTimeout(240_000);

interface Nodes {
  /** Where the first attempt lands. */
  first: CertificateAuthority;
  /** Where the retry lands: another node on PostgreSQL, the same data directory on SQLite. */
  retry: CertificateAuthority;
  /** Set both nodes' clocks this far ahead of the real time (ms). */
  skew(ms: number): void;
}

const ENGINES: { name: string; open(t: Tap.Test): Promise<Nodes> }[] = [
  {
    name: 'sqlite',
    async open(t) {
      const dir = tempDir(t);
      await initCa({ dataDir: dir, caKeyBits: 2048, passphrase: PASSPHRASE });
      let offset = 0;
      const clock = (): number => Date.now() + offset;
      const first = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE, clock });
      const retry = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE, clock });
      t.teardown(async () => {
        await first.close();
        await retry.close();
      });
      return { first, retry, skew: (ms) => void (offset = ms) };
    },
  },
  {
    name: 'postgres',
    async open(t) {
      const handles: CertificateAuthority[] = [];
      const { url } = pgTestSchema(t, async () => {
        for (const h of handles) await h.close();
      });
      const dirs = [tempDir(t), tempDir(t)];
      await initCa({ dataDir: dirs[0]!, caKeyBits: 2048, passphrase: PASSPHRASE, storeUrl: url });
      let offset = 0;
      const clock = (): number => Date.now() + offset;
      for (const dir of dirs) {
        handles.push(await CertificateAuthority.open(dir, { passphrase: PASSPHRASE, storeUrl: url, clock }));
      }
      return { first: handles[0]!, retry: handles[1]!, skew: (ms) => void (offset = ms) };
    },
  },
];

const keys = await Promise.all([generateRsaKeyPair(2048), generateRsaKeyPair(2048)]);
const [mine, other] = keys as [(typeof keys)[0], (typeof keys)[0]];
const csrOf = (name: string, pair = mine): Promise<string> =>
  createCsr(name, pair.privateKeyPem, pair.publicKeyPem);

/** The CSR with the last byte of its signature flipped: the same key, no proof of possession. */
function brokenSignature(csrPem: string): string {
  const der = Buffer.from(pemToDer(csrPem, 'CERTIFICATE REQUEST'));
  der[der.length - 1]! ^= 0x01;
  return derToPem(der, 'CERTIFICATE REQUEST');
}

const invalid = { code: 'token_invalid', message: TOKEN_INVALID_MESSAGE };

for (const engine of ENGINES) {
  t.test(engine.name, async (t) => {
    const nodes = await engine.open(t);
    const { first, retry } = nodes;
    const count = async (name: string) => ({
      certs: (await first.store.listCertificates({ name })).length,
      audit: await first.store.countAudit(),
    });
    const replays = async (name: string) =>
      (await first.store.listAudit({ afterId: 0, action: 'enroll.replayed' })).filter(
        (e) => e.subject === name,
      );

    t.test('the same request again: the same certificate, nothing issued, audited', async (t) => {
      const { token } = await first.createEnrollmentToken({ name: 'alice', actor: 'admin' });
      const csr = await csrOf('alice');
      const issued = await first.enroll({ token, csrPem: csr });
      t.notOk(issued.replayed, 'the first answer is an issuance');
      const before = await count('alice');
      const again = await retry.enroll({ token, csrPem: csr });
      t.equal(again.replayed, true, 'the retry is a replay');
      t.equal(again.cert.serialHex, issued.cert.serialHex, 'the same serial');
      t.ok(again.cert.der.equals(issued.cert.der), 'the same DER');
      t.equal((await count('alice')).certs, before.certs, 'no certificate issued');
      t.equal((await count('alice')).audit, before.audit + 1, 'one audit entry');
      const [entry, ...more] = await replays('alice');
      t.same(more, [], 'one enroll.replayed entry');
      const row = await first.store.getEnrollmentToken(hashToken(token));
      t.same(
        entry!.detail,
        {
          serialHex: issued.cert.serialHex,
          fingerprint256: issued.cert.fingerprint256,
          tokenId: row!.id,
          tokenHmac: first.auditHash(token),
        },
        'serial, fingerprint and the token only as its HMAC',
      );
      t.equal(entry!.actor, 'enroll:alice');
      t.notOk(JSON.stringify(entry).includes(token), 'never the token');
      t.notOk(/BEGIN|PUBLIC KEY/.test(JSON.stringify(entry)), 'no key or certificate material');
      // Replayed a second time too (the retry's own answer may be lost): still the same.
      t.equal((await first.enroll({ token, csrPem: csr })).cert.serialHex, issued.cert.serialHex);
      t.equal((await replays('alice')).length, 2);
      const chain = verifyAuditChain(await first.store.listAudit({ afterId: 0 }), [], () => true);
      t.equal(chain.ok, true, 'the audit chain still verifies');
    });

    t.test('not the same enrollment: token_invalid, nothing written', async (t) => {
      const { token } = await first.createEnrollmentToken({ name: 'bob', actor: 'admin' });
      const csr = await csrOf('bob');
      await first.enroll({ token, csrPem: csr });
      const before = await count('bob');
      await t.rejects(retry.enroll({ token, csrPem: await csrOf('bob', other) }), invalid, 'another key');
      await t.rejects(
        retry.enroll({ token, csrPem: await csrOf('bobby') }),
        invalid,
        'another name, same key',
      );
      await t.rejects(
        retry.enroll({ token, csrPem: brokenSignature(csr) }),
        invalid,
        'no proof of possession',
      );
      await t.rejects(retry.enroll({ token, csrPem: 'junk' }), invalid, 'not a CSR');
      await t.rejects(retry.enroll({ token: `${token}x`, csrPem: csr }), invalid, 'another token');
      t.same(await count('bob'), before, 'no certificate, no audit entry');
    });

    t.test('a revoked or superseded certificate is not handed out again: cert_revoked', async (t) => {
      const a = await first.createEnrollmentToken({ name: 'carol', actor: 'admin' });
      const csr = await csrOf('carol');
      const issued = await first.enroll({ token: a.token, csrPem: csr });
      await first.revoke({ serialHex: issued.cert.serialHex }, 'keyCompromise', 'admin');
      const before = await count('carol');
      await t.rejects(retry.enroll({ token: a.token, csrPem: csr }), {
        code: 'cert_revoked',
        details: { serialHex: issued.cert.serialHex },
      });
      // Still nothing for anyone else: the standing is told only to the proven requester.
      await t.rejects(retry.enroll({ token: a.token, csrPem: await csrOf('carol', other) }), invalid);
      t.same(await count('carol'), before, 'nothing written');
      t.same(await replays('carol'), []);

      const b = await first.createEnrollmentToken({ name: 'dave', actor: 'admin' });
      const dave = await first.enroll({ token: b.token, csrPem: await csrOf('dave') });
      await first.issueFromCsr(await csrOf('dave', other), { name: 'dave', renew: true, actor: 'admin' });
      t.equal((await first.store.getCertificate(dave.cert.serialHex))?.status, 'superseded');
      await t.rejects(retry.enroll({ token: b.token, csrPem: await csrOf('dave') }), {
        code: 'cert_revoked',
        message: /superseded/,
      });
    });

    t.test("after the token's lifetime: token_invalid", async (t) => {
      const { token, expiresAt } = await first.createEnrollmentToken({
        name: 'erin',
        actor: 'admin',
        ttlMs: 60_000,
      });
      const csr = await csrOf('erin');
      const issued = await first.enroll({ token, csrPem: csr });
      t.teardown(() => nodes.skew(0));
      nodes.skew(expiresAt - Date.now() - 5_000);
      t.equal(
        (await retry.enroll({ token, csrPem: csr })).cert.serialHex,
        issued.cert.serialHex,
        'just before',
      );
      nodes.skew(expiresAt - Date.now());
      await t.rejects(retry.enroll({ token, csrPem: csr }), invalid, 'at expires_at');
      nodes.skew(0);
    });

    t.test('a retry racing its own first attempt gets the same certificate', async (t) => {
      const { token } = await first.createEnrollmentToken({ name: 'frank', actor: 'admin' });
      const csr = await csrOf('frank');
      const [a, b] = await Promise.all([
        first.enroll({ token, csrPem: csr }),
        retry.enroll({ token, csrPem: csr }),
      ]);
      t.equal(a.cert.serialHex, b.cert.serialHex, 'one serial');
      t.same([a.replayed, b.replayed].filter((r) => r === true).length, 1, 'one of them a replay');
      t.equal((await count('frank')).certs, 1, 'one certificate');
      // Two keys racing one token: one certificate, the other refused as before.
      const t2 = await first.createEnrollmentToken({ name: 'grace', actor: 'admin' });
      const results = await Promise.allSettled([
        first.enroll({ token: t2.token, csrPem: await csrOf('grace') }),
        retry.enroll({ token: t2.token, csrPem: await csrOf('grace', other) }),
      ]);
      t.same(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      t.match((refused.reason as { code: string }).code, /^(token_invalid|already_active)$/);
      t.equal((await count('grace')).certs, 1);
    });
  });
}

t.test('a token spent before the store remembered its certificate cannot be replayed', async (t) => {
  const row = {
    id: 1,
    tokenHash: hashToken('old-token'),
    name: 'old',
    createdAt: 0,
    expiresAt: Date.now() + 60_000,
    createdBy: 'admin',
    usedAt: 1,
    certSerial: null,
  };
  const store = { getEnrollmentToken: () => Promise.resolve(row) };
  await t.rejects(lookupEnrollmentToken(store, { token: 'old-token', now: Date.now() }), invalid);
  t.same(
    await lookupEnrollmentToken(store, { token: 'old-token', now: Date.now() }).catch(() => 'refused'),
    'refused',
  );
  const spent = { ...row, certSerial: 'ab' };
  t.same(
    await lookupEnrollmentToken(
      { getEnrollmentToken: () => Promise.resolve(spent) },
      { token: 'old-token', now: Date.now() },
    ),
    { kind: 'spent', name: 'old', tokenId: 1, serialHex: 'ab' },
  );
});
