// Several processes revoking at the same moment (the KDC and `kds cert revoke` share a data directory):
// one revocation row and one CRL entry per serial, CRL numbers strictly increasing, the file and the
// store agreeing at the end.
import t from 'tap';
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CertificateAuthority, type RevokeOutcome } from '../../../server/ca/authority.js';
import { parseCrl } from '../../../shared/pki/crl.js';
import { freshCa, opensslCsr, PASSPHRASE } from './fixture.js';
import { tempDir } from '../../helpers/tmp.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

const WORKER = fileURLToPath(new URL('./fixtures/revoke-worker.js', import.meta.url));
const { dir } = await freshCa(t);
const ca = await CertificateAuthority.open(dir, { passphrase: PASSPHRASE });
t.teardown(() => ca.close());
const csrDir = tempDir(t);

async function issue(name: string): Promise<string> {
  const csr = await opensslCsr(csrDir, `${name}.csr`, { cn: name });
  return (await ca.issueFromCsr(csr, { name, actor: 'test' })).serialHex;
}

type Reply = { outcome: RevokeOutcome; crlEntries: number } | { error: string };

/** The next IPC message of a child; rejects (with its stderr) if it exits first. */
function nextMessage(c: ChildProcess, stderr: () => string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`worker exited (${code}): ${stderr()}`));
    c.once('exit', onExit);
    c.once('message', (m) => {
      c.off('exit', onExit);
      resolve(m);
    });
  });
}

/** Start one worker per serial, wait until all have opened the CA, then release them together. */
async function raceRevocations(t: { teardown(fn: () => void): void }, serials: string[]): Promise<Reply[]> {
  const workers = serials.map((serial) => {
    const child = fork(WORKER, [dir, serial], {
      env: { ...process.env, KDS_CA_PASSPHRASE: PASSPHRASE },
      execArgv: [],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    return { child, stderr: () => err };
  });
  t.teardown(() => {
    for (const { child } of workers)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await Promise.all(workers.map((w) => nextMessage(w.child, w.stderr)));
  const replies = workers.map((w) => nextMessage(w.child, w.stderr) as Promise<Reply>);
  for (const { child } of workers) child.send('go');
  const out = await Promise.all(replies);
  await Promise.all(
    workers.map(({ child }) =>
      child.exitCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', r)),
    ),
  );
  // This process learns of the workers' revocations and CRLs at its next sync, as a KDC would.
  await ca.syncRevocations();
  return out;
}

t.test(
  '4 processes revoke the same serial: one revoked, three already_revoked',
  { timeout: 60_000 },
  async (t) => {
    const serial = await issue('alice');
    await ca.syncRevocations();
    const before = ca.currentCrl().crlNumber;
    const replies = await raceRevocations(t, [serial, serial, serial, serial]);
    const statuses = replies.map((r) => ('outcome' in r ? r.outcome.status : r.error)).sort();
    t.same(statuses, ['already_revoked', 'already_revoked', 'already_revoked', 'revoked']);
    for (const r of replies) {
      if ('outcome' in r)
        t.equal(r.outcome.crlNumber, before + 1, 'every process reports the same CRL number');
    }
    t.equal(sqliteOf(ca.store).countRevocations(), 1, 'one revocation row');
    t.equal(sqliteOf(ca.store).listAudit({ action: 'cert.revoke' }).length, 1, 'one audit row');
    const state = ca.currentCrl();
    t.equal(state.crlNumber, before + 1);
    const crl = parseCrl(readFileSync(join(dir, 'root_crl.pem'), 'utf8'));
    t.equal(crl.crlNumber, BigInt(before + 1));
    t.same(
      crl.entries.map((e) => e.serialHex),
      [serial],
      'one CRL entry',
    );
    t.ok(crl.signatureValid(ca.caCert));
    t.equal(readFileSync(join(dir, 'root_crl.pem'), 'utf8'), state.pem, 'the file is the store CRL');
    t.match(ca.revocationOf(serial), { reason: 'keyCompromise' }, 'this process sees it too');
  },
);

t.test('4 processes revoke 4 serials: four entries, four new CRL numbers', { timeout: 60_000 }, async (t) => {
  const serials = await Promise.all(['bob', 'carol', 'dave', 'erin'].map((n) => issue(n)));
  await ca.syncRevocations();
  const before = ca.currentCrl().crlNumber;
  const replies = await raceRevocations(t, serials);
  const numbers = replies.map((r) => ('outcome' in r ? r.outcome.crlNumber : -1)).sort((a, b) => a - b);
  t.same(numbers, [before + 1, before + 2, before + 3, before + 4], 'each revocation got its own CRL number');
  for (const r of replies) {
    // CRL number before+k was signed over alice's revocation plus the k made so far in this race; the
    // store's CRL the worker read back right after may already be a later one, never an earlier one.
    if ('outcome' in r) {
      t.ok(
        r.crlEntries >= 1 + r.outcome.crlNumber - before,
        `CRL ${r.outcome.crlNumber} lists every revocation so far`,
      );
    }
  }
  const crl = parseCrl(readFileSync(join(dir, 'root_crl.pem'), 'utf8'));
  t.equal(crl.crlNumber, BigInt(before + 4), 'the file holds the newest CRL');
  t.same(
    crl.entries.map((e) => e.serialHex).sort(),
    [
      ...serials,
      ...sqliteOf(ca.store)
        .listRevocations()
        .slice(0, 1)
        .map((r) => r.serialHex),
    ].sort(),
  );
  t.equal(sqliteOf(ca.store).countRevocations(), 5);
});
