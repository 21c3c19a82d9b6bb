// Enrollment over the network against an in-process KDC: pinning the root by fingerprint (any case,
// colons optional), trust on first use, and every token failure answered with token_invalid and one
// fixed message: reused, expired, bound to another name, unknown. Then the enrolled home opens
// sessions as that name, and a home holding another name's certificate is refused. A lost answer (the
// connection cut after the KDC committed the certificate, before its answer arrived) is retried once
// with the same CSR, and the client recovers the certificate already issued; a second loss is reported.
import t from 'tap';
import type * as Tap from 'tap';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { enroll } from '../../client/enroll.js';
import { stageEnrollment } from '../../client/home.js';
import { generateRsaKeyPair } from '../../shared/crypto/rsa.js';
import { createCsr } from '../../shared/pki/csr.js';
import { openAdminSession } from '../../client/admin.js';
import { openHomeSession, type ClientSession } from '../../client/session.js';
import { hashToken } from '../../server/ca/tokens.js';
import { TEST_CA_PASSPHRASE } from '../helpers/kds-process.js';
import { startTestKdc } from '../helpers/kdc-in-process.js';
import { tempDir } from '../helpers/tmp.js';
import { sqliteOf } from '../helpers/sqlite-view.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import type { CertificateAuthority } from '../../server/ca/authority.js';

t.setTimeout(120_000);

const { kdc, dataDir } = await startTestKdc(t);
const admin: ClientSession = await openAdminSession({
  dataDir,
  server: kdc.url,
  passphrase: TEST_CA_PASSPHRASE,
});
t.teardown(() => admin.close());
const TOKEN_MESSAGE = 'enrollment token invalid, expired or already used';

async function token(name: string, ttl?: number): Promise<string> {
  const out = await admin.request('admin.token', ttl === undefined ? { name } : { name, ttl });
  return String(out.token);
}

function colonUpper(hex: string): string {
  return hex.toUpperCase().replace(/(..)(?!$)/g, '$1:');
}

t.test('enroll with a pinned fingerprint (colons, upper case), then sessions as that name', async (t) => {
  const home = join(tempDir(t), 'alice');
  const result = await enroll({
    server: kdc.url,
    name: 'alice',
    token: await token('alice'),
    caFingerprint: colonUpper(kdc.fingerprint),
    home,
  });
  t.equal(result.name, 'alice');
  t.equal(result.pinned, true);
  t.equal(result.caFingerprint, kdc.fingerprint);
  t.match(result.serialHex, /^[0-9a-f]+$/);
  t.equal(statSync(join(home, 'key.pem')).mode & 0o777, 0o600);
  t.equal(readFileSync(join(home, 'ca.pem'), 'utf8'), kdc.ca.caCertPem);
  t.equal(sqliteOf(kdc.ca.store).getCertificate(result.serialHex)?.name, 'alice');

  const session = await openHomeSession({ name: 'alice', home, server: kdc.url });
  t.equal(session.facts.identity.serialHex, result.serialHex);
  t.same(await session.request('cert.status', { serial: result.serialHex }), { status: 'good' });
  await session.close();

  await t.rejects(openHomeSession({ name: 'bob', home, server: kdc.url }), { code: 'cert_wrong_name' });
});

t.test('trust on first use: the callback sees the fingerprint before anything is sent', async (t) => {
  const seen: string[] = [];
  const result = await enroll({
    server: kdc.url,
    name: 'tofu',
    token: await token('tofu'),
    home: join(tempDir(t), 'tofu'),
    onTrustOnFirstUse: (fp) => seen.push(fp),
  });
  t.same(seen, [kdc.fingerprint]);
  t.equal(result.pinned, false);
});

t.test('wrong CA fingerprint -> ca_fingerprint_mismatch, the token is not spent', async (t) => {
  const tok = await token('pinned');
  const wrong = 'ab'.repeat(32);
  const home = join(tempDir(t), 'pinned');
  // The message names no command-line flag: the menu's user typed the fingerprint at a prompt.
  await t.rejects(enroll({ server: kdc.url, name: 'pinned', token: tok, caFingerprint: wrong, home }), {
    code: 'ca_fingerprint_mismatch',
    message: /^the server's root CA does not match the root CA fingerprint given/,
  });
  const err = await enroll({ server: kdc.url, name: 'pinned', token: tok, caFingerprint: wrong, home }).catch(
    (e: Error) => e,
  );
  t.notMatch((err as Error).message, /--/, 'no flag named');
  await t.rejects(enroll({ server: kdc.url, name: 'pinned', token: tok, caFingerprint: 'nothex', home }), {
    code: 'bad_request',
  });
  const ok = await enroll({
    server: kdc.url,
    name: 'pinned',
    token: tok,
    caFingerprint: kdc.fingerprint,
    home,
  });
  t.equal(ok.name, 'pinned');
});

t.test('token failures are all token_invalid with one message', async (t) => {
  const home = join(tempDir(t), 'h');
  const used = await token('reuse');
  await enroll({
    server: kdc.url,
    name: 'reuse',
    token: used,
    caFingerprint: kdc.fingerprint,
    home: join(home, 'a'),
  });
  await kdc.ca.revoke({ name: 'reuse' }, 'superseded', 'test'); // so that only the token can refuse
  await t.rejects(
    enroll({
      server: kdc.url,
      name: 'reuse',
      token: used,
      caFingerprint: kdc.fingerprint,
      home: join(home, 'b'),
    }),
    {
      code: 'token_invalid',
      message: TOKEN_MESSAGE,
    },
  );

  const forAlice = await token('someone');
  await t.rejects(
    enroll({
      server: kdc.url,
      name: 'other',
      token: forAlice,
      caFingerprint: kdc.fingerprint,
      home: join(home, 'c'),
    }),
    {
      code: 'token_invalid',
      message: TOKEN_MESSAGE,
    },
  );
  const stillGood = await enroll({
    server: kdc.url,
    name: 'someone',
    token: forAlice,
    caFingerprint: kdc.fingerprint,
    home: join(home, 'd'),
  });
  t.equal(stillGood.name, 'someone', 'a wrong-name attempt does not burn the token');

  // An expired token, written straight into the store so no test waits on a clock.
  const expired = 'expiredtoken_0123456789abcdefABCDEF';
  const now = Date.now();
  sqliteOf(kdc.ca.store).insertEnrollmentToken({
    tokenHash: hashToken(expired),
    name: 'late',
    createdAt: now - 60_000,
    expiresAt: now - 1_000,
    createdBy: 'test',
  });
  await t.rejects(
    enroll({
      server: kdc.url,
      name: 'late',
      token: expired,
      caFingerprint: kdc.fingerprint,
      home: join(home, 'e'),
    }),
    {
      code: 'token_invalid',
      message: TOKEN_MESSAGE,
    },
  );
  await t.rejects(
    enroll({
      server: kdc.url,
      name: 'late',
      token: 'never-issued-token-0123456789',
      caFingerprint: kdc.fingerprint,
      home: join(home, 'f'),
    }),
    { code: 'token_invalid', message: TOKEN_MESSAGE },
  );
  await t.rejects(
    enroll({
      server: kdc.url,
      name: 'late',
      token: 'short',
      caFingerprint: kdc.fingerprint,
      home: join(home, 'g'),
    }),
    {
      code: 'token_invalid',
      message: TOKEN_MESSAGE,
    },
  );
  t.equal(sqliteOf(kdc.ca.store).activeCertificate('late'), undefined);
  t.equal(sqliteOf(kdc.ca.store).activeCertificate('other'), undefined);
});

t.test('admin.token refuses reserved names and out-of-range lifetimes', async (t) => {
  await t.rejects(admin.request('admin.token', { name: 'admin' }), { code: 'bad_name' });
  await t.rejects(admin.request('admin.token', { name: 'kdc' }), { code: 'bad_name' });
  await t.rejects(admin.request('admin.token', { name: 'x', ttl: 10 }), { code: 'bad_request' });
  const out = await admin.request('admin.token', { name: 'ttl-check', ttl: 120_000 });
  const expiresAt = Number(out.expiresAt);
  t.ok(expiresAt > Date.now() + 60_000 && expiresAt <= Date.now() + 120_000, 'expiry follows the ttl');
});

t.test('unreachable server -> unavailable', async (t) => {
  await t.rejects(
    enroll({
      server: 'ws://127.0.0.1:1/kds',
      name: 'nobody',
      token: 'a'.repeat(43),
      home: join(tempDir(t), 'n'),
    }),
    { code: 'unavailable' },
  );
});

t.test(
  'with KDS_CLIENT_PASSPHRASE the stored key is encrypted and sessions need the passphrase',
  async (t) => {
    const home = join(tempDir(t), 'secret');
    process.env.KDS_CLIENT_PASSPHRASE = 'client passphrase for tests';
    t.teardown(() => {
      delete process.env.KDS_CLIENT_PASSPHRASE;
    });
    await enroll({
      server: kdc.url,
      name: 'secret',
      token: await token('secret'),
      caFingerprint: kdc.fingerprint,
      home,
    });
    t.match(readFileSync(join(home, 'key.pem'), 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    const session = await openHomeSession({ name: 'secret', home, server: kdc.url });
    t.equal(session.facts.identity.name, 'secret');
    await session.close();
    delete process.env.KDS_CLIENT_PASSPHRASE;
    await t.rejects(openHomeSession({ name: 'secret', home, server: kdc.url }), { code: 'bad_passphrase' });
  },
);

/** The KDC's URL through a proxy listening on `port`. */
function viaProxy(port: number): string {
  const url = new URL(kdc.url);
  url.port = String(port);
  return url.href;
}

/**
 * Cut every connection through `proxy` once the KDC's CA has committed an enrollment and before the
 * KDC answers, for the first `times` enrollments: the answer is lost, the certificate issued.
 */
function loseAnswers(
  t: Tap.Test,
  ca: CertificateAuthority,
  proxy: Awaited<ReturnType<typeof startTcpProxy>>,
  times: number,
): { calls: () => number } {
  let calls = 0;
  const real = ca.enroll.bind(ca);
  ca.enroll = async (opts) => {
    const result = await real(opts);
    calls += 1;
    if (calls <= times) {
      await proxy.cut();
      await proxy.restore();
    }
    return result;
  };
  t.teardown(() => {
    ca.enroll = real;
  });
  return { calls: () => calls };
}

t.test('a lost answer: the same request once more recovers the certificate already issued', async (t) => {
  const proxy = await startTcpProxy(t, '127.0.0.1', Number(new URL(kdc.url).port));
  const lost = loseAnswers(t, kdc.services.ca, proxy, 1);
  const home = join(tempDir(t), 'lost');
  const seen: string[] = [];
  const auditBefore = sqliteOf(kdc.ca.store).countAudit();
  const events: string[] = [];
  const off = kdc.services.events.subscribe(
    (e) => {
      if ((e.type === 'cert.issued' || e.type === 'cert.replayed') && e.name === 'lost') events.push(e.type);
    },
    { types: ['cert.issued', 'cert.replayed'] },
  );
  t.teardown(off);
  const result = await enroll({
    server: viaProxy(proxy.port),
    name: 'lost',
    token: await token('lost'),
    caFingerprint: kdc.fingerprint,
    home,
    onLostAnswer: (err) => seen.push(err.code),
  });
  t.same(seen, ['session_closed'], 'told of the lost answer once');
  t.equal(result.lostAnswer, 'session_closed', 'the result says so');
  t.equal(lost.calls(), 2, 'two requests reached the CA');
  const certs = sqliteOf(kdc.ca.store).listCertificates({ name: 'lost' });
  t.same(
    certs.map((c) => c.serialHex),
    [result.serialHex],
    'one certificate: the one issued for the first request',
  );
  t.equal(parseCertificate(readFileSync(join(home, 'cert.pem'), 'utf8')).serialHex, result.serialHex);
  const actions = sqliteOf(kdc.ca.store)
    .listAudit({ afterId: 0 })
    .slice(auditBefore)
    .filter((e) => e.subject === 'lost')
    .map((e) => e.action);
  t.same(
    actions,
    ['token.create', 'token.consume', 'cert.issue', 'enroll.replayed'],
    'issued once, replayed once',
  );
  // The first request's event is emitted after its reply was attempted (on the cut connection).
  t.same(events.sort(), ['cert.issued', 'cert.replayed'], 'the KDC reports one issuance and one replay');
  const session = await openHomeSession({ name: 'lost', home, server: kdc.url });
  t.equal(session.facts.identity.serialHex, result.serialHex, 'the recovered identity works');
  await session.close();
});

t.test('a second lost answer is reported as it is, after one retry', async (t) => {
  const proxy = await startTcpProxy(t, '127.0.0.1', Number(new URL(kdc.url).port));
  const lost = loseAnswers(t, kdc.services.ca, proxy, 2);
  const seen: string[] = [];
  await t.rejects(
    enroll({
      server: viaProxy(proxy.port),
      name: 'lost-twice',
      token: await token('lost-twice'),
      caFingerprint: kdc.fingerprint,
      home: join(tempDir(t), 'lost-twice'),
      onLostAnswer: (err) => seen.push(err.code),
    }),
    { code: 'session_closed' },
  );
  t.same(seen, ['session_closed']);
  t.equal(lost.calls(), 2, 'one retry, no more');
  t.equal(sqliteOf(kdc.ca.store).listCertificates({ name: 'lost-twice' }).length, 1, 'issued once');
});

t.test("the KDC's refusal is not retried", async (t) => {
  const seen: string[] = [];
  const used = await token('refused-once');
  await enroll({ server: kdc.url, name: 'refused-once', token: used, home: join(tempDir(t), 'a') });
  const second = join(tempDir(t), 'b');
  await t.rejects(
    enroll({
      server: kdc.url,
      name: 'refused-once',
      token: used,
      home: second,
      onLostAnswer: (err) => seen.push(err.code),
    }),
    { code: 'token_invalid', message: TOKEN_MESSAGE },
    'a new key with a spent token',
  );
  t.same(seen, [], 'no retry');
  t.notOk(existsSync(second), 'the home this run made for the refused request is not left behind');

  // A home that existed before is kept, whatever the KDC says.
  const existing = tempDir(t);
  await t.rejects(enroll({ server: kdc.url, name: 'refused-once', token: used, home: existing }), {
    code: 'token_invalid',
  });
  t.ok(existsSync(existing), 'a home given that existed stays');
  t.notOk(existsSync(join(existing, 'enrollment')), 'a refused request is not kept');
});

t.test('a home that is a file is refused before anything is fetched or sent', async (t) => {
  const file = join(tempDir(t), 'garb.pem');
  writeFileSync(file, 'not a directory');
  let trusted = false;
  await t.rejects(
    enroll({
      server: 'ws://127.0.0.1:1/kds', // nothing listens: a fetch would fail with unavailable
      name: 'frank',
      token: 'a'.repeat(43),
      home: file,
      onTrustOnFirstUse: () => (trusted = true),
    }),
    { code: 'bad_request', message: /is a file, not a directory/ },
  );
  t.notOk(trusted, 'no root CA was fetched');
  t.equal(readFileSync(file, 'utf8'), 'not a directory', 'the file is untouched');
});

t.test(
  'answers lost for good: the next run with the same token sends the staged request again',
  async (t) => {
    const proxy = await startTcpProxy(t, '127.0.0.1', Number(new URL(kdc.url).port));
    loseAnswers(t, kdc.services.ca, proxy, 2);
    const home = join(tempDir(t), 'staged');
    const tok = await token('staged');
    await t.rejects(
      enroll({
        server: viaProxy(proxy.port),
        name: 'staged',
        token: tok,
        caFingerprint: kdc.fingerprint,
        home,
      }),
      { code: 'session_closed' },
    );
    t.notOk(existsSync(join(home, 'key.pem')), 'no identity yet');
    t.equal(statSync(join(home, 'enrollment', 'key.pem')).mode & 0o777, 0o600, 'the key is staged, 0600');
    t.notOk(readFileSync(join(home, 'enrollment', 'request.json'), 'utf8').includes(tok), 'never the token');
    const issued = sqliteOf(kdc.ca.store).listCertificates({ name: 'staged' });
    t.equal(issued.length, 1, 'the KDC issued it, the client never heard');

    let resumed = 0;
    const result = await enroll({
      server: kdc.url,
      name: 'staged',
      token: tok,
      caFingerprint: kdc.fingerprint,
      home,
      onResume: () => (resumed += 1),
    });
    t.equal(resumed, 1, 'told it resumes');
    t.equal(result.resumed, true);
    t.equal(result.serialHex, issued[0]!.serialHex, 'the certificate issued for the first run');
    t.equal(sqliteOf(kdc.ca.store).listCertificates({ name: 'staged' }).length, 1, 'nothing more issued');
    t.notOk(
      existsSync(join(home, 'enrollment')),
      'the staged request is dropped once the certificate is saved',
    );
    const session = await openHomeSession({ name: 'staged', home, server: kdc.url });
    t.equal(session.facts.identity.serialHex, result.serialHex);
    await session.close();
  },
);

t.test(
  'a clock more than the backdate behind: the refusal says by how much, and the same command recovers',
  async (t) => {
    const home = join(tempDir(t), 'slow');
    const tok = await token('slow');
    const slowBy = 10 * 60_000;
    const err = await enroll({
      server: kdc.url,
      name: 'slow',
      token: tok,
      caFingerprint: kdc.fingerprint,
      home,
      now: () => Date.now() - slowBy,
    }).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string; details: Record<string, unknown> },
    );
    t.equal(err?.code, 'cert_not_yet_valid');
    t.match(
      err?.message,
      /^the certificate the KDC issued \(serial [0-9a-f]+\) is not valid yet by this machine's clock: the local clock looks behind the CA's by about (9 min 5\d s|10 min( [0-9] s)?)\. Correct the clock \(NTP\), then run the same command again with the same token: the key and request are kept in .*\/slow\/enrollment\/ and the KDC sends this certificate again$/,
    );
    const skewMs = Number(err?.details.skewMs);
    t.ok(Math.abs(skewMs + slowBy) < 5_000, `skew measured from the certificate: ${skewMs} ms`);
    const issued = sqliteOf(kdc.ca.store).listCertificates({ name: 'slow' });
    t.equal(issued.length, 1, 'the KDC issued it and spent the token');
    t.ok(existsSync(join(home, 'enrollment', 'request.json')), 'the request is kept');

    // The clock fixed: the same command gets the same certificate.
    const again = await enroll({
      server: kdc.url,
      name: 'slow',
      token: tok,
      caFingerprint: kdc.fingerprint,
      home,
    });
    t.equal(again.resumed, true);
    t.equal(again.serialHex, issued[0]!.serialHex, 'the certificate issued for the first run');
  },
);

t.test('a request staged for another token is not sent: a new key', async (t) => {
  const home = join(tempDir(t), 'restart');
  const old = await generateRsaKeyPair(2048);
  const oldCsr = await createCsr('restart', old.privateKeyPem, old.publicKeyPem);
  stageEnrollment(home, {
    name: 'restart',
    tokenHash: hashToken('an-abandoned-token-of-an-earlier-run'),
    csr: oldCsr,
    privateKey: createPrivateKey(old.privateKeyPem),
  });
  let resumed = 0;
  const result = await enroll({
    server: kdc.url,
    name: 'restart',
    token: await token('restart'),
    caFingerprint: kdc.fingerprint,
    home,
    onResume: () => (resumed += 1),
  });
  t.equal(resumed, 0);
  t.equal(result.resumed, undefined);
  const certKey = createPublicKey(readFileSync(join(home, 'cert.pem'), 'utf8')).export({
    type: 'spki',
    format: 'der',
  });
  t.notOk(
    certKey.equals(createPublicKey(old.publicKeyPem).export({ type: 'spki', format: 'der' })),
    'a new key',
  );
  t.notOk(existsSync(join(home, 'enrollment')));
});
