// `kds admin audit verify` against a tampered store: a row edited, a row deleted, two rows swapped, the
// chain rewritten with recomputed hashes, the signed tail truncated. Each fails (exit 4) naming the
// first bad entry; the untouched store passes. The tampering is what a writer of the database file can
// do: drop the append-only triggers and change rows with SQL.
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { auditEntryHash } from '../../shared/audit/chain.js';
import { startKdc } from '../../server/kdc/kdc.js';
import { AUDIT_PAGE, readAudit } from '../../server/audit/read-audit.js';
import { openStore } from '../../server/store/store.js';
import { initDataDir, runKds, TEST_CA_PASSPHRASE } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

interface Row {
  id: number;
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  detail: string;
  prev_hash: string;
  hash: string;
}

let audited: Promise<string> | undefined;

/**
 * A data directory whose audit trail has four tokens and a signed head. The KDC (its start makes a KEK:
 * ~1 s of CPU) runs once for the file; each caller gets its own copy, so the subtests share no state.
 */
async function auditedDataDir(sub: Test): Promise<{ dir: string; ids: number[] }> {
  audited ??= (async () => {
    const source = await initDataDir(t);
    const kdc = await startKdc({ dataDir: source, port: 0, passphrase: TEST_CA_PASSPHRASE, log: () => {} });
    for (const name of ['alice', 'bob', 'carol', 'dave']) {
      await kdc.ca.createEnrollmentToken({ name, actor: 'admin:admin' });
    }
    await kdc.close(); // signs the head covering every entry
    return source;
  })();
  const dir = join(tempDir(sub), 'data');
  cpSync(await audited, dir, { recursive: true, preserveTimestamps: true });
  const db = new Database(join(dir, 'kds.sqlite'), { readonly: true });
  const ids = (db.prepare('SELECT id FROM audit_log ORDER BY id').all() as { id: number }[]).map((r) => r.id);
  const heads = db.prepare('SELECT count(*) AS n FROM audit_heads').get() as { n: number };
  db.close();
  sub.ok(heads.n >= 1, 'the KDC signed a head');
  return { dir, ids };
}

function hashOf(dir: string, id: number): string {
  const db = new Database(join(dir, 'kds.sqlite'), { readonly: true });
  try {
    return (db.prepare('SELECT hash FROM audit_log WHERE id = ?').get(id) as { hash: string }).hash;
  } finally {
    db.close();
  }
}

/** Edit entry `id`, then recompute its hash and every later one: a chain consistent again. */
function editAndRechain(db: Database.Database, id: number): void {
  db.prepare(`UPDATE audit_log SET subject = 'mallory' WHERE id = ?`).run(id);
  const rows = db.prepare('SELECT * FROM audit_log WHERE id >= ? ORDER BY id').all(id) as Row[];
  const put = db.prepare('UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?');
  let prev = rows[0]!.prev_hash;
  for (const row of rows) {
    const hash = auditEntryHash(prev, { ...row, detail: JSON.parse(row.detail) as Record<string, unknown> });
    put.run(prev, hash, row.id);
    prev = hash;
  }
}

function tamper(source: string, t: Test, fn: (db: Database.Database) => void): string {
  const dir = join(tempDir(t), 'data');
  cpSync(source, dir, { recursive: true });
  const db = new Database(join(dir, 'kds.sqlite'));
  db.exec('DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;');
  fn(db);
  db.close();
  return dir;
}

async function verify(
  dir: string,
  extra: string[] = [],
): Promise<{ code: number | null; out: string; json: Record<string, unknown> }> {
  const human = await runKds(['admin', 'audit', 'verify', '--data-dir', dir, ...extra]);
  const json = await runKds(['admin', 'audit', 'verify', '--data-dir', dir, '--json', ...extra]);
  t.equal(json.code, human.code, 'same exit with --json');
  return { code: human.code, out: human.stdout, json: JSON.parse(json.stdout) as Record<string, unknown> };
}

t.test('audit verify names the first bad entry of a tampered store', async (t) => {
  const { dir, ids } = await auditedDataDir(t);
  t.ok(ids.length >= 8, `enough entries (${ids.length})`);
  const middle = ids[Math.floor(ids.length / 2)]!;

  const intact = await verify(dir);
  t.equal(intact.code, 0, intact.out);
  t.match(intact.out, /audit trail intact: \d+ entries/);
  t.match(intact.json, { ok: true, entries: ids.length, signedThrough: ids[ids.length - 1] });

  await t.test('a row edited', async (t) => {
    const bad = tamper(dir, t, (db) =>
      db.prepare(`UPDATE audit_log SET subject = 'mallory' WHERE id = ?`).run(middle),
    );
    const r = await verify(bad);
    t.equal(r.code, 4);
    t.match(r.out, new RegExp(`BROKEN at entry #${middle} \\(edited\\)`));
    t.match(r.json, { ok: false, finding: { entryId: middle, problem: 'edited' } });
  });

  await t.test('a row deleted', async (t) => {
    const bad = tamper(dir, t, (db) => db.prepare('DELETE FROM audit_log WHERE id = ?').run(middle));
    const r = await verify(bad);
    t.equal(r.code, 4);
    t.match(r.json, { ok: false, finding: { entryId: middle, problem: 'deleted' } });
    t.match(r.out, new RegExp(`entry ${middle} is missing before entry ${middle + 1}`));
  });

  await t.test('two rows swapped', async (t) => {
    const [a, b] = [ids[2]!, ids[5]!];
    const bad = tamper(dir, t, (db) => {
      const get = db.prepare('SELECT * FROM audit_log WHERE id = ?');
      const ra = get.get(a) as Row;
      const rb = get.get(b) as Row;
      const put = db.prepare(
        'UPDATE audit_log SET at = ?, actor = ?, action = ?, subject = ?, detail = ?, prev_hash = ?, hash = ? WHERE id = ?',
      );
      put.run(rb.at, rb.actor, rb.action, rb.subject, rb.detail, rb.prev_hash, rb.hash, a);
      put.run(ra.at, ra.actor, ra.action, ra.subject, ra.detail, ra.prev_hash, ra.hash, b);
    });
    const r = await verify(bad);
    t.equal(r.code, 4);
    t.match(r.json, { ok: false, finding: { entryId: a, problem: 'moved' } });
    t.match(r.out, new RegExp(`entry ${a} holds the content and hash of entry ${b}`));
  });

  await t.test('an edit with every later hash recomputed: the signed head catches it', async (t) => {
    const bad = tamper(dir, t, (db) => {
      editAndRechain(db, middle);
    });
    const r = await verify(bad);
    t.equal(r.code, 4);
    t.match(r.json, { ok: false, finding: { problem: 'head_mismatch' } });
    t.match(r.out, /does not have the hash the KDC signed/);
  });

  await t.test('the signed tail truncated', async (t) => {
    const last = ids[ids.length - 1]!;
    const bad = tamper(dir, t, (db) => db.prepare('DELETE FROM audit_log WHERE id = ?').run(last));
    const r = await verify(bad);
    t.equal(r.code, 4);
    t.match(r.json, { ok: false, finding: { entryId: last, problem: 'head_missing_entry' } });
  });

  await t.test('heads kept outside the store catch what deleting the stored heads hides', async (t) => {
    // Someone who can write the store can delete the heads with the entries they cover: the chain
    // alone then verifies. A head the operator kept elsewhere (the report's last line, the log's
    // `audit head signed` lines) does not go away with them.
    const head = intact.json.lastHead as { entryId: number; hash: string };
    t.equal(head.entryId, ids[ids.length - 1], 'the report names the last signed head');
    t.match(
      intact.out,
      new RegExp(`keep outside the store, for the next verification: --head "#${head.entryId}:${head.hash}"`),
    );
    const anchored = await verify(dir, [
      '--head',
      `#${head.entryId}:${head.hash}`,
      '--head',
      `${ids[1]}:${hashOf(dir, ids[1]!).slice(0, 16)}`,
    ]);
    t.equal(anchored.code, 0, anchored.out);
    t.match(anchored.json, { ok: true, anchors: 2 });
    t.match(anchored.out, /2 heads kept outside the store found in the chain/);

    const rewritten = tamper(dir, t, (db) => {
      db.exec('DROP TRIGGER audit_heads_no_delete');
      db.prepare('DELETE FROM audit_heads').run();
      editAndRechain(db, middle);
    });
    const alone = await verify(rewritten);
    t.equal(alone.code, 0, 'without an anchor the rewritten chain verifies (the stored heads are gone)');
    t.match(alone.json, { ok: true, heads: 0 });
    const caught = await verify(rewritten, ['--head', `#${head.entryId}:${head.hash.slice(0, 16)}`]);
    t.equal(caught.code, 4, caught.out);
    t.match(caught.json, { ok: false, finding: { entryId: head.entryId, problem: 'anchor_mismatch' } });

    const truncated = tamper(dir, t, (db) => {
      db.exec('DROP TRIGGER audit_heads_no_delete');
      db.prepare('DELETE FROM audit_heads').run();
      db.prepare('DELETE FROM audit_log WHERE id = ?').run(head.entryId);
    });
    const cut = await verify(truncated, ['--head', `#${head.entryId}:${head.hash}`]);
    t.equal(cut.code, 4, cut.out);
    t.match(cut.json, { ok: false, finding: { entryId: head.entryId, problem: 'anchor_missing_entry' } });

    const typo = await runKds([
      'admin',
      'audit',
      'verify',
      '--data-dir',
      dir,
      '--head',
      `#${head.entryId}:abc`,
    ]);
    t.equal(typo.code, 2, 'a hash too short to mean anything is a usage error');
    t.match(typo.stderr, /--head: .*at least 16 hex digits/);
  });

  await t.test('a forged head signature', async (t) => {
    const bad = tamper(dir, t, (db) => {
      db.exec('DROP TRIGGER audit_heads_no_update');
      db.prepare(`UPDATE audit_heads SET signature = zeroblob(256)`).run();
    });
    const r = await verify(bad);
    t.equal(r.code, 4);
    t.match(r.json, { ok: false, finding: { problem: 'bad_head_signature' } });
  });
});

t.test('kds admin audit filters by type and name, and refuses a bad --since', async (t) => {
  const { dir } = await auditedDataDir(t);
  const tokens = await runKds(['admin', 'audit', '--data-dir', dir, '--type', 'token.create', '--json']);
  t.equal(tokens.code, 0, tokens.stderr);
  const rows = JSON.parse(tokens.stdout) as { action: string; subject: string; hash: string }[];
  t.same(
    rows.map((r) => r.subject),
    ['alice', 'bob', 'carol', 'dave'],
  );
  t.ok(rows.every((r) => r.action === 'token.create' && /^[0-9a-f]{64}$/.test(r.hash)));
  const carol = await runKds(['admin', 'audit', '--data-dir', dir, '--name', 'carol']);
  t.equal(carol.code, 0);
  t.match(carol.stdout, /token\.create\s+carol/);
  t.notMatch(carol.stdout, /alice/);
  const recent = await runKds(['admin', 'audit', '--data-dir', dir, '--since', '1h', '--json']);
  t.ok((JSON.parse(recent.stdout) as unknown[]).length >= 4);
  const future = await runKds(['admin', 'audit', '--data-dir', dir, '--since', '2999-01-01T00:00:00Z']);
  t.match(future.stdout, /no audit entries match/);
  const badSince = await runKds(['admin', 'audit', '--data-dir', dir, '--since', 'yesterday']);
  t.equal(badSince.code, 2);
  t.match(badSince.stderr, /--since/);
});

t.test('audit verify and audit read a trail longer than one page, in order, each entry once', async (t) => {
  const dir = await initDataDir(t);
  // More than two pages, written in one transaction (the store's own appendAudit, so the chain is real).
  const extra = AUDIT_PAGE * 2 + 7;
  const store = openStore(dir);
  store.transaction(() => {
    for (let i = 0; i < extra; i++) {
      store.appendAudit({ at: Date.now(), actor: 'test', action: 'test.bulk', subject: `s${i}` });
    }
  });
  const total = store.countAudit();
  store.close();
  const kdc = await startKdc({ dataDir: dir, port: 0, passphrase: TEST_CA_PASSPHRASE, log: () => {} });
  await kdc.close(); // signs a head over every entry
  const db = new Database(join(dir, 'kds.sqlite'), { readonly: true });
  const ids = (db.prepare('SELECT id FROM audit_log ORDER BY id').all() as { id: number }[]).map((r) => r.id);
  db.close();
  t.ok(total > AUDIT_PAGE * 2, `${total} entries`);

  const intact = await verify(dir);
  t.equal(intact.code, 0, intact.out);
  t.match(intact.json, { ok: true, entries: ids.length, signedThrough: ids[ids.length - 1] });

  const bulk = await readAudit(dir, { type: 'test.bulk' });
  t.equal(bulk.length, extra, 'every entry of the type, none twice');
  t.same(
    bulk.map((r) => r.subject),
    Array.from({ length: extra }, (_, i) => `s${i}`),
    'oldest first',
  );
  t.equal(
    (await readAudit(dir, { type: 'test.bulk', limit: 3 })).map((r) => r.subject).join(),
    [`s${extra - 3}`, `s${extra - 2}`, `s${extra - 1}`].join(),
    '--limit keeps the newest',
  );

  // An edit past the first page is found where it is.
  const late = ids[AUDIT_PAGE + 10]!;
  const bad = tamper(dir, t, (db) =>
    db.prepare(`UPDATE audit_log SET subject = 'mallory' WHERE id = ?`).run(late),
  );
  const r = await verify(bad);
  t.equal(r.code, 4);
  t.match(r.json, { ok: false, finding: { entryId: late, problem: 'edited' } });
});
