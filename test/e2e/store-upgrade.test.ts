// Upgrading a data directory's store with real processes: a command that only reads (cert list, crl
// show, admin audit verify) never migrates: on a store of an older schema it refuses with `config`
// (exit 2), naming the fix, and leaves the store as it was (an older KDC may still be running on it);
// `kds server start` migrates it, after which the same commands read it. The older store is this kds's
// own with its last migration undone (schema 9: migration 10 only added certificates_by_status).
import t from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { MIGRATIONS } from '../../server/store/migrations.js';
import { initDataDir, runKds, startServer } from '../helpers/kds-process.js';

t.setTimeout(120_000);

const LATEST = MIGRATIONS.length;

function schemaOf(dataDir: string): { version: number; byStatus: boolean } {
  const db = new Database(join(dataDir, 'kds.sqlite'), { readonly: true });
  try {
    return {
      version: db.pragma('user_version', { simple: true }) as number,
      byStatus:
        db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'certificates_by_status'`).get() !== undefined,
    };
  } finally {
    db.close();
  }
}

t.test('read-only commands refuse an older store and leave it; server start migrates it', async (t) => {
  const dataDir = await initDataDir(t);
  const db = new Database(join(dataDir, 'kds.sqlite'));
  db.exec('DROP INDEX certificates_by_status');
  db.pragma(`user_version = ${LATEST - 1}`);
  db.close();

  for (const args of [
    ['cert', 'list'],
    ['crl', 'show'],
    ['admin', 'audit', 'verify'],
    ['admin', 'audit'],
  ]) {
    const what = `kds ${args.join(' ')}`;
    const r = await runKds([...args, '--data-dir', dataDir]);
    t.equal(r.code, 2, `${what}: exit 2 (${r.stderr.trim()})`);
    t.equal(
      r.stderr.trim(),
      `error [config]: the store has schema ${LATEST - 1}, this kds expects ${LATEST}; run \`kds server start\` ` +
        '(which migrates) after taking a backup (docs/deployment.md "Upgrading"); this command only reads and ' +
        'does not migrate',
      what,
    );
    t.same(schemaOf(dataDir), { version: LATEST - 1, byStatus: false }, `${what}: the store is as it was`);
  }

  const server = await startServer(t, dataDir);
  t.same(schemaOf(dataDir), { version: LATEST, byStatus: true }, 'server start migrated it');
  const list = await runKds(['cert', 'list', '--data-dir', dataDir, '--json']);
  t.equal(list.code, 0, list.stderr);
  const verify = await runKds(['admin', 'audit', 'verify', '--data-dir', dataDir]);
  t.equal(verify.code, 0, verify.stderr);
  t.match(verify.stdout, /^audit trail intact/);
  t.equal((await server.stop()).code, 0, server.stderr());
});
