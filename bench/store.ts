// The store contract's cost, in one run: the same issuance-shaped write (consume a token, insert the
// certificate, append the audit row) and the same point read, through
//   - the synchronous SqliteStore (the group commit of group-commit.ts; a direct call for reads),
//   - the asynchronous contract on SQLite (sqlite-async-store.ts: batch(); an awaited call),
//   - PostgreSQL (pg-store.ts: batch(), a group commit under the write lock; 1 and 2 "nodes", i.e. one
//     or two pools on the same database).
// Ratios: async SQLite / sync SQLite (the contract must not cost SQLite its speed: ~1.0), PostgreSQL /
// SQLite (the target for issuance on PostgreSQL is >= 0.5). Needs PostgreSQL at KDS_TEST_PG_URL or
// 127.0.0.1:5432/test (a scratch schema, dropped at the end).
import pg from 'pg';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { machine, perSecond, ratio, sample, summarize, wallTime, type BenchResult } from './harness.js';
import { SqliteStore } from '../server/store/sqlite-store.js';
import { GroupCommit } from '../server/store/group-commit.js';
import { asyncSqliteStore } from '../server/store/sqlite-async-store.js';
import { PgStore } from '../server/store/pg-store.js';
import type { AsyncStore, AsyncStoreTx } from '../server/store/async-store.js';
import type { Store } from '../server/store/store.js';

const PG_URL = process.env.KDS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Writes per sample, all submitted at once (concurrent enrollments). */
const WRITES = 400;
const READS = 20_000;
const RUNS = 5;

let next = 0;
function fresh(): { serialHex: string; name: string; tokenHash: string } {
  next += 1;
  return { serialHex: next.toString(16), name: `n${next}`, tokenHash: `t${next}` };
}
const certOf = (f: ReturnType<typeof fresh>) => ({
  serialHex: f.serialHex,
  name: f.name,
  role: 'client' as const,
  notBefore: 1,
  notAfter: 2,
  issuedAt: 1,
  pem: `-----BEGIN CERTIFICATE-----\n${'A'.repeat(1400)}\n`,
  fingerprint256: randomBytes(32).toString('hex'),
});
const token = (f: ReturnType<typeof fresh>) => ({
  tokenHash: f.tokenHash,
  name: f.name,
  createdAt: 1,
  expiresAt: 9e15,
  createdBy: 'bench',
});

function syncWrite(s: Store, f: ReturnType<typeof fresh>): void {
  if (s.consumeEnrollmentToken(f.tokenHash, f.name, 2, f.serialHex) === undefined) throw new Error('token');
  s.insertIssuedCertificate(certOf(f));
  s.appendAudit({
    at: 2,
    actor: 'bench',
    action: 'cert.issue',
    subject: f.name,
    detail: { serial: f.serialHex },
  });
}

async function asyncWrite(tx: AsyncStoreTx, f: ReturnType<typeof fresh>): Promise<void> {
  if ((await tx.consumeEnrollmentToken(f.tokenHash, f.name, 2, f.serialHex)) === undefined)
    throw new Error('token');
  await tx.insertIssuedCertificate(certOf(f));
  await tx.appendAudit({
    at: 2,
    actor: 'bench',
    action: 'cert.issue',
    subject: f.name,
    detail: { serial: f.serialHex },
  });
}

/** One sample of writes per second: WRITES tokens prepared, then all issuances submitted at once. */
async function writesSync(s: Store, g: GroupCommit): Promise<number> {
  const batch = Array.from({ length: WRITES }, fresh);
  s.transaction(() => batch.forEach((f) => s.insertEnrollmentToken(token(f))));
  const ms = await wallTime(() => Promise.all(batch.map((f) => g.run(() => syncWrite(s, f)))));
  return perSecond(WRITES, ms);
}

async function writesAsync(stores: AsyncStore[]): Promise<number> {
  const batch = Array.from({ length: WRITES }, fresh);
  await stores[0]!.transaction(async (tx) => {
    for (const f of batch) await tx.insertEnrollmentToken(token(f));
  });
  const ms = await wallTime(() =>
    Promise.all(batch.map((f, i) => stores[i % stores.length]!.batch((tx) => asyncWrite(tx, f)))),
  );
  return perSecond(WRITES, ms);
}

async function readsSync(s: Store, serial: string): Promise<number> {
  const ms = await wallTime(() => {
    for (let i = 0; i < READS; i++) s.getCertificateStanding(serial);
    return Promise.resolve();
  });
  return perSecond(READS, ms);
}

async function readsAsync(s: AsyncStore, serial: string, reads = READS): Promise<number> {
  const ms = await wallTime(async () => {
    for (let i = 0; i < reads; i++) await s.getCertificateStanding(serial);
  });
  return perSecond(reads, ms);
}

export async function run(): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'kds-bench-store-'));
  const schema = `kds_bench_${randomBytes(4).toString('hex')}`;
  const url = `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}schema=${schema}`;
  const sync = SqliteStore.open(dir);
  const group = new GroupCommit(sync);
  const lite = asyncSqliteStore(SqliteStore.open(dir));
  const node1 = await PgStore.open(url);
  const node2 = await PgStore.open(url);
  try {
    const f = fresh();
    sync.insertIssuedCertificate(certOf(f));
    await node1.insertIssuedCertificate(certOf(f));
    // Interleaved, so that a change in the machine's load affects every figure alike.
    const w = { sync: [] as number[], async: [] as number[], pg1: [] as number[], pg2: [] as number[] };
    const r = { sync: [] as number[], async: [] as number[], pg: [] as number[] };
    await sample(RUNS, async () => {
      w.sync.push(await writesSync(sync, group));
      w.async.push(await writesAsync([lite]));
      w.pg1.push(await writesAsync([node1]));
      w.pg2.push(await writesAsync([node1, node2]));
      r.sync.push(await readsSync(sync, f.serialHex));
      r.async.push(await readsAsync(lite, f.serialHex));
      r.pg.push(await readsAsync(node1, f.serialHex, READS / 10));
      return 0;
    });
    const figures = {
      issue_writes_sqlite_sync: summarize(w.sync, 'issuances/s'),
      issue_writes_sqlite_async: summarize(w.async, 'issuances/s'),
      issue_writes_pg_1_node: summarize(w.pg1, 'issuances/s'),
      issue_writes_pg_2_nodes: summarize(w.pg2, 'issuances/s'),
      point_reads_sqlite_sync: summarize(r.sync, 'reads/s'),
      point_reads_sqlite_async: summarize(r.async, 'reads/s'),
      point_reads_pg_sequential: summarize(r.pg, 'reads/s'),
    };
    return {
      machine: machine(),
      figures,
      ratios: {
        sqlite_async_vs_sync_writes: ratio(
          figures.issue_writes_sqlite_async.median,
          figures.issue_writes_sqlite_sync.median,
        ),
        sqlite_async_vs_sync_reads: ratio(
          figures.point_reads_sqlite_async.median,
          figures.point_reads_sqlite_sync.median,
        ),
        pg_1_node_vs_sqlite_writes: ratio(
          figures.issue_writes_pg_1_node.median,
          figures.issue_writes_sqlite_async.median,
        ),
        pg_2_nodes_vs_sqlite_writes: ratio(
          figures.issue_writes_pg_2_nodes.median,
          figures.issue_writes_sqlite_async.median,
        ),
      },
      notes: [
        `${WRITES} concurrent issuance-shaped writes per sample (token consumed, certificate, audit row), ${RUNS} samples`,
        'store only: no signing, no network; PostgreSQL on the same machine (127.0.0.1)',
      ],
    };
  } finally {
    sync.close();
    await lite.close();
    await node1.close();
    await node2.close();
    rmSync(dir, { recursive: true, force: true });
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
  }
}
