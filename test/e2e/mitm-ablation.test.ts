// `kds mitm --ablation --report FILE` run for real (client/mitm/ablation.ts): its own KDC, clients and
// Mallory in a temporary directory, every attack with all defences on and with its row's switches off.
// Every cell is asserted: with all defences on each attack fails, stopped by the defence the catalog
// names; with the row's switches off it shows what client/mitm/ablation-plan.ts promises (and the
// switches are the row's). docs/attacks.md must carry the table this very run renders
// (tools/ablation-table.ts), and the run must leave nothing behind in its temporary directory.
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ABLATION_ROWS, rowSwitches } from '../../client/mitm/ablation-plan.js';
import { ATTACKS } from '../../client/mitm/catalog.js';
import type { AblationResult } from '../../client/mitm/ablation.js';
import { ATTACKS_MD, attacksMarkdown } from '../../tools/docs.js';
import { runKds } from '../helpers/kds-process.js';

t.setTimeout(480_000);

const tmp = mkdtempSync(join(tmpdir(), 'kds-ablation-test-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const reportPath = join(tmp, 'ablation.json');
// TMPDIR: where the lab makes its own directory, so the test can see that it is gone afterwards.
const labTmp = join(tmp, 'lab');
const { mkdirSync } = await import('node:fs');
mkdirSync(labTmp);
const run = await runKds(['mitm', '--ablation', '--report', reportPath], {
  env: { TMPDIR: labTmp },
  timeoutMs: 420_000,
});
const results = JSON.parse(readFileSync(reportPath, 'utf8')) as AblationResult[];

t.test('the command succeeds, prints the table and leaves nothing behind', async (t) => {
  t.equal(run.code, 0, `exit 0: every row as documented\n${run.stdout}\n${run.stderr.slice(-3000)}`);
  t.match(run.stdout, /^attack +all defences on +switched off -> outcome$/m);
  t.same(readdirSync(labTmp), [], 'the temporary lab directory is removed');
});

t.test('one report line per attack of the catalog, in catalog order, with the documented keys', async (t) => {
  t.same(
    results.map((r) => r.attack),
    ATTACKS.map((a) => a.name),
  );
  for (const r of results) {
    t.same(Object.keys(r).slice(0, 4), ['attack', 'defences', 'withDefences', 'without'], r.attack);
  }
});

for (const row of ABLATION_ROWS) {
  t.test(`${row.attack}: all defences on, then ${rowSwitches(row).join(' + ')} off`, async (t) => {
    const r = results.find((x) => x.attack === row.attack);
    const attack = ATTACKS.find((a) => a.name === row.attack)!;
    t.ok(r !== undefined, 'in the report');
    if (r === undefined) return;
    t.equal(r.withDefences, 'failed', 'with every defence on the attack fails');
    t.equal(r.stoppedBy, attack.secure.defence, 'stopped by the defence the catalog names');
    t.same(r.defences, rowSwitches(row), "the row's switches, and only those");
    t.equal(r.without, row.without, `with them off: ${row.why}`);
    if (row.without === 'failed') t.not(r.stoppedWithout, null, 'a row that still fails names what stops it');
    else t.equal(r.stoppedWithout, null);
  });
}

t.test(
  'docs/attacks.md carries the table of this run (regenerate: npm run docs -- --ablation)',
  async (t) => {
    const wanted = await attacksMarkdown(results);
    const current = readFileSync(ATTACKS_MD, 'utf8');
    if (current === wanted) {
      t.pass('docs/attacks.md is up to date');
      return;
    }
    const a = current.split('\n');
    const b = wanted.split('\n');
    const at = a.findIndex((line, i) => line !== b[i]);
    t.fail(
      `docs/attacks.md differs from this run at line ${at + 1}\n  file: ${JSON.stringify(a[at])}\n  run:  ${JSON.stringify(b[at])}`,
    );
  },
);
