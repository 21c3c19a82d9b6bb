// Certificate renewal with real processes (a live KDC, `kds client ...` commands): `kds client renew`
// end to end (new key, the old certificate superseded on the CRL once the new one is installed, keys
// and pending deliveries carried over, the old certificate refused), crashes at each step of the swap
// (KDS_TEST_CRASH_AT kills the process with SIGKILL there), and every refusal with its code and exit
// code: revoked, expired, the same key, another name, one renewal in flight per session, the per-name
// rate. Re-enrollment of a revoked or expired name with a new token works.
import t from 'tap';
import Database from 'better-sqlite3';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { TEST_CA_PASSPHRASE, initDataDir, runKds } from '../helpers/kds-process.js';
import { pooledKeyPair } from '../helpers/template.js';
import { tempDir } from '../helpers/tmp.js';
import {
  client,
  enrollAll,
  freePort,
  issueToken,
  json,
  keyClient,
  listen,
  startServerOnPort,
  type Clients,
} from './keys-helpers.js';
import { EXIT } from '../../shared/errors.js';
import { parseCrl } from '../../shared/pki/crl.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import { createCsr } from '../../shared/pki/csr.js';
import { openHomeSession } from '../../client/session.js';
import { readClientHome, writeClientHome } from '../../client/home.js';
import { CertificateAuthority } from '../../server/ca/authority.js';
import { MAX_RENEWALS_PER_WINDOW } from '../../server/ca/renewal.js';
import { caPaths } from '../../io/ca-files.js';

t.setTimeout(300_000);

const dataDir = await initDataDir(t);
const port = await freePort();
const c: Clients = { server: await startServerOnPort(t, dataDir, port), homes: {} };
c.homes = await enrollAll(c.server, ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina']);

const serialOf = (name: string): string =>
  parseCertificate(readFileSync(join(c.homes[name]!, 'cert.pem'), 'utf8')).serialHex;

let db: Database.Database | undefined;
function store(): Database.Database {
  if (db === undefined) {
    db = new Database(caPaths(dataDir).store, { readonly: true, fileMustExist: true });
    t.teardown(() => db?.close());
  }
  return db;
}

function certStatus(serial: string): string | undefined {
  return (
    store().prepare('SELECT status FROM certificates WHERE serial = ?').get(serial) as
      | { status: string }
      | undefined
  )?.status;
}

async function crlReason(serial: string): Promise<string | undefined> {
  for (const path of ['/crl.pem', '/delta-crl.pem']) {
    const res = await fetch(`${c.server.httpUrl}${path}`);
    if (res.status !== 200) continue;
    const entry = parseCrl(await res.text()).entries.find((e) => e.serialHex === serial);
    if (entry !== undefined) return entry.reason;
  }
  return undefined;
}

async function waitFor<T>(fn: () => Promise<T | undefined> | T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test(
  'renew: new key, old certificate superseded on the CRL, keys and deliveries carried over',
  async (t) => {
    // bob holds an active key from alice, and another one waits for him at the KDC while he is offline.
    const bob0 = await keyClient(t, c, 'bob');
    const alice = await keyClient(t, c, 'alice');
    const held = await alice.client.sendKey({ to: 'bob' });
    await waitFor(
      () => bob0.events.find((e) => e.event === 'key' && e.serial === held.serial),
      'the first key',
    );
    await bob0.close();
    const queued = await alice.client.sendKey({ to: 'bob' });
    await alice.close();

    const oldSerial = serialOf('bob');
    const oldKey = readFileSync(join(c.homes.bob!, 'key.pem'), 'utf8');
    const oldHome = join(tempDir(t), 'old-bob');
    cpSync(c.homes.bob!, oldHome, { recursive: true });

    const r = await client(c, 'bob', 'renew', ['--json']);
    t.equal(r.code, 0, r.stderr);
    const out = json<{ serialHex: string; previousSerialHex: string; installed: boolean; notAfter: number }>(
      r,
    );
    t.equal(out.previousSerialHex, oldSerial);
    t.not(out.serialHex, oldSerial, 'a new certificate');
    t.equal(out.installed, true, 'the KDC installed it (a session with the new certificate)');
    t.equal(serialOf('bob'), out.serialHex, 'cert.pem is the new certificate');
    t.not(readFileSync(join(c.homes.bob!, 'key.pem'), 'utf8'), oldKey, 'key.pem is a new key');
    t.notOk(existsSync(join(c.homes.bob!, 'renewal')), 'nothing left staged');
    t.equal(certStatus(oldSerial), 'superseded');
    t.equal(certStatus(out.serialHex), 'active');
    t.equal(
      await waitFor(() => crlReason(oldSerial), 'the CRL entry'),
      'superseded',
      'on the CRL as superseded',
    );
    const audit = store()
      .prepare(
        `SELECT action, detail FROM audit_log WHERE subject = 'bob' AND action LIKE 'cert.renew%' ORDER BY id`,
      )
      .all() as { action: string; detail: string }[];
    t.same(
      audit.map((a) => a.action),
      ['cert.renew.request', 'cert.renew'],
      'audit rows for the request and the install',
    );
    t.match(JSON.parse(audit[1]!.detail), { serialHex: out.serialHex, supersedes: oldSerial });
    // The KDC's OCSP-like answer agrees with its CRL (it said `good` for the superseded certificate).
    const asked = await client(c, 'alice', 'cert-status', ['--serial', oldSerial, '--json']);
    t.equal(asked.code, EXIT.revoked, asked.stderr);
    t.match(JSON.parse(asked.stdout), { status: 'revoked', reason: 'superseded' });

    // The old certificate (and key) no longer authenticate.
    const old = await runKds([
      'client',
      'status',
      '--name',
      'bob',
      '--home',
      oldHome,
      '--server',
      c.server.url,
    ]);
    t.equal(old.code, EXIT.revoked, 'the superseded certificate is refused');
    t.match(old.stderr, /cert_revoked/);

    // Keys carried over: the key he held is still listed and usable; the queued one arrives and verifies.
    const bob = listen(t, c, 'bob');
    t.match(await bob.waitFor((e) => e.event === 'key' && e.serial === queued.serial, 'the queued key'), {
      verdict: 'valid',
    });
    const keys = await client(c, 'bob', 'keys', ['--json']);
    t.equal(keys.code, 0, keys.stderr);
    const listed = json<{ keys: { serial: string; state: string }[] }>(keys).keys;
    t.match(
      listed.find((k) => k.serial === held.serial),
      { state: 'active' },
      'the key held before renewal',
    );
    // And a new key reaches him under the new certificate (new prekeys).
    const sent = await client(c, 'alice', 'send-key', ['--to', 'bob', '--json']);
    t.equal(sent.code, 0, sent.stderr);
    const fresh = json<{ serial: string }>(sent).serial;
    await bob.waitFor((e) => e.event === 'key' && e.serial === fresh, 'a key after renewal');
    await bob.stop();
  },
);

t.test(
  'a crash after the new key is staged, before the certificate is installed: the old identity works',
  async (t) => {
    const before = serialOf('carol');
    const r = await client(c, 'carol', 'renew', []);
    t.equal(r.code, 0, r.stderr);
    const current = serialOf('carol');
    t.not(before, current);
    // renew-key-staged: before the request is sent; renew-cert-received: the KDC has issued (pending),
    // the client dies before staging the certificate.
    for (const point of ['renew-key-staged', 'renew-cert-received']) {
      const crash = await runKds(
        ['client', 'renew', '--name', 'carol', '--home', c.homes.carol!, '--server', c.server.url],
        { env: { KDS_TEST_CRASH_AT: point } },
      );
      t.equal(crash.signal, 'SIGKILL', `killed at ${point}`);
      t.ok(existsSync(join(c.homes.carol!, 'renewal', 'key.pem')), `${point}: the new key was staged`);
      t.notOk(existsSync(join(c.homes.carol!, 'renewal', 'cert.pem')), `${point}: no certificate staged`);
      const status = await client(c, 'carol', 'status', ['--json']);
      t.equal(status.code, 0, status.stderr);
      t.equal(
        json<{ identity: { serialHex: string } }>(status).identity.serialHex,
        current,
        `${point}: the old (current) identity`,
      );
      t.notOk(existsSync(join(c.homes.carol!, 'renewal')), `${point}: the uncommitted renewal was discarded`);
      t.equal(certStatus(current), 'active', `${point}: the KDC still has it active`);
    }
    const abandoned = (
      store().prepare(`SELECT serial FROM renewals WHERE name = 'carol' AND installed_at IS NULL`).all() as {
        serial: string;
      }[]
    ).map((r) => r.serial);
    t.equal(abandoned.length, 1, 'renew-cert-received left a certificate the KDC never installed');
    t.equal(certStatus(abandoned[0]!), 'pending');
    // A renewal after it works, and the one never installed is superseded with the old certificate.
    const again = await client(c, 'carol', 'renew', ['--json']);
    t.equal(again.code, 0, again.stderr);
    t.equal(json<{ installed: boolean }>(again).installed, true);
    t.equal(certStatus(current), 'superseded');
    t.equal(certStatus(abandoned[0]!), 'superseded', 'the abandoned renewal is superseded with it');
    t.equal(await waitFor(() => crlReason(abandoned[0]!), 'its CRL entry'), 'superseded');
  },
);

t.test('a crash after the certificate is staged, or mid-swap: the new identity works', async (t) => {
  for (const point of ['renew-cert-staged', 'renew-key-installed']) {
    const before = serialOf('dave');
    const crash = await runKds(
      ['client', 'renew', '--name', 'dave', '--home', c.homes.dave!, '--server', c.server.url],
      { env: { KDS_TEST_CRASH_AT: point } },
    );
    t.equal(crash.signal, 'SIGKILL', `killed at ${point}`);
    t.ok(existsSync(join(c.homes.dave!, 'renewal', 'cert.pem')), `${point}: the certificate was staged`);
    t.equal(certStatus(before), 'active', `${point}: the KDC keeps the old one until the new one is used`);
    const status = await client(c, 'dave', 'status', ['--json']);
    t.equal(status.code, 0, status.stderr);
    const now = json<{ identity: { serialHex: string } }>(status).identity.serialHex;
    t.not(now, before, `${point}: the new identity`);
    t.equal(serialOf('dave'), now);
    t.notOk(existsSync(join(c.homes.dave!, 'renewal')), `${point}: the swap was finished`);
    t.equal(certStatus(before), 'superseded', `${point}: installed at the first session`);
  }
});

t.test('a revoked certificate cannot renew; a new token re-enrolls the name', async (t) => {
  const revoked = await client(c, 'erin', 'revoke-cert', ['--reason', 'keyCompromise']);
  t.equal(revoked.code, 0, revoked.stderr);
  const r = await client(c, 'erin', 'renew');
  t.equal(r.code, EXIT.revoked, 'exit code of cert_revoked');
  t.match(r.stderr, /cert_revoked/);
  const token = await issueToken(c.server, 'erin');
  const again = await runKds([
    'client',
    'enroll',
    '--name',
    'erin',
    '--token',
    token,
    '--server',
    c.server.url,
    '--ca-fingerprint',
    c.server.fingerprint,
    '--home',
    c.homes.erin!,
    '--json',
  ]);
  t.equal(again.code, 0, again.stderr);
});

/** Re-issue `name`'s certificate for its own key with the window `validity` (the test process's CA). */
async function reissue(name: string, validity: { notBefore: number; notAfter: number }): Promise<string> {
  const ca = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  try {
    const files = readClientHome(c.homes[name]!);
    const csr = await createCsr(
      name,
      files.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      parseCertificate(files.certPem).publicKeyPem,
    );
    const cert = await ca.issueFromCsr(csr, { name, renew: true, validity, actor: 'test' });
    writeClientHome(c.homes[name]!, { ...files, certPem: cert.pem }, undefined);
    return cert.serialHex;
  } finally {
    await ca.close();
  }
}

t.test('listen renews by itself at 2/3 of the lifetime, says so, and reconnects', async (t) => {
  const day = 86_400_000;
  const now = Date.now();
  // 30 days, 20 of them gone: the 2/3 point is now.
  const old = await reissue('gina', {
    notBefore: now - 20 * day - 60_000,
    notAfter: now + 10 * day - 60_000,
  });
  const gina = listen(t, c, 'gina');
  const first = await gina.waitFor((e) => e.event === 'connected', 'the first session');
  t.equal(first.serial, old);
  t.ok(Number(first.renewAt) <= Date.now(), 'the renewal is due');
  const renewed = await gina.waitFor((e) => e.event === 'renewed', 'the renewal');
  t.equal(renewed.previous, old);
  t.equal(serialOf('gina'), renewed.serial, 'the home holds the new certificate');
  const second = await gina.waitFor(
    (e) => e.event === 'connected' && e.serial === renewed.serial,
    'the new session',
  );
  t.ok(Number(second.renewAt) > Date.now() + 10 * day, 'the next renewal is 2/3 into the new lifetime');
  t.equal(certStatus(old), 'superseded', 'installed by the new session');
  t.equal(await gina.stop(), 0);
});

t.test(
  'an expired certificate cannot renew; a new token re-enrolls the name (was already_active)',
  async (t) => {
    // frank's certificate re-issued (same key) with a window that ended an hour ago.
    const now = Date.now();
    await reissue('frank', { notBefore: now - 3 * 86_400_000, notAfter: now - 3_600_000 });
    const r = await client(c, 'frank', 'renew');
    t.equal(r.code, EXIT.expired, 'exit code of cert_expired');
    t.match(r.stderr, /cert_expired.*enroll again with a new token/s);
    const token = await issueToken(c.server, 'frank');
    const again = await runKds([
      'client',
      'enroll',
      '--name',
      'frank',
      '--token',
      token,
      '--server',
      c.server.url,
      '--ca-fingerprint',
      c.server.fingerprint,
      '--home',
      c.homes.frank!,
      '--json',
    ]);
    t.equal(again.code, 0, `re-enrollment after expiry: ${again.stderr}`);
    const status = await client(c, 'frank', 'status');
    t.equal(status.code, 0, status.stderr);
  },
);

t.test('refusals at the KDC: same key, another name, one in flight per session, per-name rate', async (t) => {
  const session = await openHomeSession({ name: 'alice', home: c.homes.alice!, server: c.server.url });
  t.teardown(() => session.close());
  const files = readClientHome(c.homes.alice!);
  const samePem = files.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const sameCsr = await createCsr('alice', samePem, parseCertificate(files.certPem).publicKeyPem);
  await t.rejects(session.request('cert.renew', { csr: sameCsr }), { code: 'bad_request' }, 'the same key');
  // A key of alice's renewal from the pool: slot 0 is free in this process (no in-process KDC here),
  // and it is none of the enrolled names' keys (slots 1-5).
  const fresh = await pooledKeyPair(0);
  t.ok(createPrivateKey(fresh.privateKeyPem));
  const other = await createCsr('bob', fresh.privateKeyPem, fresh.publicKeyPem);
  await t.rejects(session.request('cert.renew', { csr: other }), { code: 'name_mismatch' }, 'another name');
  const csr = await createCsr('alice', fresh.privateKeyPem, fresh.publicKeyPem);
  // Two at once: the second is refused if the first is still being signed when it arrives (on a loaded
  // machine the first may be done by then; test/server/kdc-handlers/cert-renew.test.ts holds it open).
  const both = await Promise.allSettled([
    session.request('cert.renew', { csr }),
    session.request('cert.renew', { csr }),
  ]);
  const outcomes = both.map((s) => (s.status === 'fulfilled' ? 'ok' : (s.reason as { code: string }).code));
  t.ok(
    outcomes.every((o) => o === 'ok' || o === 'rate_limited') && outcomes.includes('ok'),
    `one renewal in flight per session (${outcomes.join(', ')})`,
  );
  const done = outcomes.filter((o) => o === 'ok').length;
  for (let i = done; i < MAX_RENEWALS_PER_WINDOW; i++) await session.request('cert.renew', { csr });
  await t.rejects(session.request('cert.renew', { csr }), { code: 'rate_limited' }, 'the per-name rate');
  // None of them was installed: alice's certificate is still the active one.
  t.equal(certStatus(serialOf('alice')), 'active');
});
