// What follows a committed revocation is completed even when it fails once (server/ca/revoke.ts header):
// a published file that cannot be written, a listener that throws, the store failing while another
// process reads the holder's name. The revocation is answered `revoked` (it is committed: an error would
// only invite a retry answering `already_revoked`), flagged followUpPending, and the next sync finishes
// the work: the files equal the store's CRLs again, every listener has been told of every revocation
// exactly until it succeeded. The same on SQLite and PostgreSQL (the path is the engines' shared code).
import t from 'tap';
import type * as Tap from 'tap';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { initCa } from '../../../server/ca/init.js';
import { caPaths } from '../../../io/ca-files.js';
import { EnvironmentError } from '../../../shared/errors.js';
import { issueTestClient } from '../../helpers/kdc-in-process.js';
import { initDataDir, TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import { pgTestSchema } from '../../helpers/pg.js';
import { tempDir } from '../../helpers/tmp.js';
import type { AsyncStoreTx } from '../../../server/store/async-store.js';
import { PASSPHRASE } from './fixture.js';

t.setTimeout(180_000);

type Engine = 'sqlite' | 'postgres';

/** Two handles on one CA (two processes, or two nodes of one PostgreSQL store). */
async function twoHandles(
  t: Tap.Test,
  engine: Engine,
): Promise<[CertificateAuthority, CertificateAuthority]> {
  const opened: CertificateAuthority[] = [];
  const closeAll = async (): Promise<void> => {
    for (const ca of opened.splice(0)) await ca.close();
  };
  const url = engine === 'postgres' ? pgTestSchema(t, closeAll).url : undefined;
  if (url === undefined) t.teardown(closeAll);
  // On SQLite, a copy of the run's initialised data directory (the same initCa, its three RSA keys made
  // once per run); on PostgreSQL the CA is created in the test's own schema.
  let first: string;
  let passphrase = PASSPHRASE;
  if (url === undefined) {
    first = await initDataDir(t);
    passphrase = TEST_CA_PASSPHRASE;
  } else {
    first = join(tempDir(t), 'data');
    await initCa({ dataDir: first, caKeyBits: 2048, passphrase, storeUrl: url });
  }
  // On PostgreSQL each node has a data directory of its own (its files; the CA material comes from the
  // store); on SQLite the two processes share one.
  const second = url === undefined ? first : tempDir(t);
  for (const dir of [first, second]) {
    opened.push(await CertificateAuthority.open(dir, { passphrase, storeUrl: url }));
  }
  return [opened[0]!, opened[1]!];
}

for (const engine of ['sqlite', 'postgres'] as const) {
  t.test(`${engine}: a CRL file not written after the commit is rewritten by the next sync`, async (t) => {
    const [ca] = await twoHandles(t, engine);
    const alice = await issueTestClient(ca, 'alice');
    const paths = caPaths(ca.dataDir);
    // A directory where the file goes: the atomic rename over it fails, every time, until it is gone.
    rmSync(paths.deltaCrl);
    mkdirSync(paths.deltaCrl);
    const outcome = await ca.revoke({ name: 'alice' }, 'keyCompromise', 'test');
    t.match(outcome, { status: 'revoked', serialHex: alice.cert.serialHex, followUpPending: true });
    t.equal(ca.revocationOf(alice.cert.serialHex)?.reason, 'keyCompromise', 'revoked in memory');
    await t.rejects(ca.syncRevocations(), 'a sync while the file still cannot be written says so');

    rmSync(paths.deltaCrl, { recursive: true });
    await ca.syncRevocations();
    t.equal(readFileSync(paths.deltaCrl, 'utf8'), ca.currentDeltaCrlPem(), 'the delta file is the store’s');
    t.equal(readFileSync(paths.rootCrl, 'utf8'), ca.currentCrlPem(), 'the complete CRL file is the store’s');
    const again = await ca.revoke({ name: 'alice' }, 'keyCompromise', 'test');
    t.match(again, { status: 'already_revoked' });
    t.equal(again.followUpPending, undefined, 'nothing left pending');
  });

  t.test(`${engine}: a listener that throws once is called again, until it succeeds`, async (t) => {
    const [ca] = await twoHandles(t, engine);
    const alice = await issueTestClient(ca, 'alice');
    const calls: number[] = [];
    const fine: string[] = [];
    ca.onRevoked((_serial, _name, _info, attempt) => {
      calls.push(attempt);
      if (attempt === 1)
        throw new EnvironmentError('unavailable', 'injected: the store went away after the commit');
    });
    ca.onRevoked((serial, name) => void fine.push(`${name}:${serial}`));
    const outcome = await ca.revoke({ name: 'alice' }, 'keyCompromise', 'test');
    t.match(outcome, { status: 'revoked', followUpPending: true }, 'revoked, the follow-up pending');
    t.same(calls, [1]);
    t.same(fine, [`alice:${alice.cert.serialHex}`], 'the other listener ran once');

    // The admin retrying is answered `already_revoked` and completes what was pending.
    const retry = await ca.revoke({ name: 'alice' }, 'keyCompromise', 'test');
    t.match(retry, { status: 'already_revoked' });
    t.equal(retry.followUpPending, undefined, 'nothing pending any more');
    t.same(calls, [1, 2], 'the failed listener ran again');
    await ca.syncRevocations();
    t.same(calls, [1, 2], 'and not after it succeeded');
    t.same(fine, [`alice:${alice.cert.serialHex}`], 'the listener that succeeded is not called again');
  });

  t.test(
    `${engine}: a revocation whose COMMIT was answered with an error is completed by the sync`,
    async (t) => {
      const [ca] = await twoHandles(t, engine);
      const alice = await issueTestClient(ca, 'alice');
      const told: string[] = [];
      ca.onRevoked((serial, name) => void told.push(`${name}:${serial}`));
      // The revocation's transaction commits, then its caller is told it failed: what a connection cut
      // during the COMMIT does on PostgreSQL (the outcome is unknown to the node).
      const store = ca.store;
      const transaction = store.transaction.bind(store);
      let cut = false;
      Object.defineProperty(store, 'transaction', {
        value: async <T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T> => {
          const result = await transaction(fn);
          if (!cut) {
            cut = true;
            throw new EnvironmentError('unavailable', 'injected: store commit failed (outcome unknown)');
          }
          return result;
        },
      });
      await t.rejects(ca.revoke({ name: 'alice' }, 'keyCompromise', 'test'), { code: 'unavailable' });
      t.same(told, [], 'nothing announced for a revocation the node does not know committed');
      await ca.syncRevocations();
      t.same(told, [`alice:${alice.cert.serialHex}`], 'the sync found the row and announced it');
      t.equal(ca.revocationOf(alice.cert.serialHex)?.reason, 'keyCompromise');
      const paths = caPaths(ca.dataDir);
      t.equal(readFileSync(paths.deltaCrl, 'utf8'), ca.currentDeltaCrlPem(), 'the delta file is the store’s');
      t.equal(
        readFileSync(paths.rootCrl, 'utf8'),
        ca.currentCrlPem(),
        'the complete CRL file is the store’s',
      );
      t.match(await ca.revoke({ name: 'alice' }, 'keyCompromise', 'test'), { status: 'already_revoked' });
      t.equal(told.length, 1, 'announced once');
    },
  );

  t.test(
    `${engine}: another handle's revocations are all announced though a name lookup failed`,
    async (t) => {
      const [one, two] = await twoHandles(t, engine);
      const serials: string[] = [];
      for (const name of ['r0', 'r1', 'r2']) serials.push((await issueTestClient(one, name)).cert.serialHex);
      const told: string[] = [];
      two.onRevoked((serial, name) => void told.push(`${name}:${serial}`));
      for (const name of ['r0', 'r1', 'r2']) await one.revoke({ name }, 'keyCompromise', 'test');

      // The second handle reads the three rows; the store fails its lookup of the second holder's name.
      const store = two.store;
      const getCertificate = store.getCertificate.bind(store);
      let lookups = 0;
      // An own property over the (read-only) method of the store's class.
      Object.defineProperty(store, 'getCertificate', {
        value: async (serialHex: string) => {
          lookups += 1;
          if (lookups === 2) throw new EnvironmentError('unavailable', 'injected: store read failed');
          return getCertificate(serialHex);
        },
      });
      await t.rejects(two.syncRevocations(), { code: 'unavailable' }, 'the sync reports the failure');
      t.same(told, [`r0:${serials[0]}`, `r2:${serials[2]}`], 'the others were announced');
      await two.syncRevocations();
      t.same(
        told.sort(),
        serials.map((s, i) => `r${i}:${s}`),
        'the next sync announced the one that failed, once',
      );
    },
  );
}
