// tools/unused-exports.js, the check `npm run check` runs: on a made-up tree it reports exactly the
// exports nothing imports (following namespaces, dynamic imports, re-exports and the types a used
// export names), counts a test as an importer only of the file it mirrors, and fails; on the
// repository itself it finds nothing.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

const TOOL = join(REPO_ROOT, 'tools/unused-exports.js');

function run(args: string[]): { status: number | null; lines: string[]; stderr: string } {
  const r = spawnSync(process.execPath, [TOOL, ...args], { encoding: 'utf8' });
  return { status: r.status, lines: r.stdout.split('\n').filter((l) => l !== ''), stderr: r.stderr };
}

function tree(t: Parameters<typeof tempDir>[0], files: Record<string, string>): string {
  const root = tempDir(t, 'kds-unused-');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

t.test('reports what nothing imports, and fails', async (t) => {
  const root = tree(t, {
    'shared/a.ts': [
      'export interface Shape { n: number }',
      'export interface Loose { s: string }',
      'export function used(x: Shape): number { return x.n; }',
      'export const LOCAL_ONLY = 1;',
      'export const viaNamespace = 2;',
      'export const neverRead = LOCAL_ONLY + 1;',
      'export const mirrorOnly = 3;',
      'export const otherTestOnly = 4;',
      'export const viaDynamic = 5;',
      'export const viaReexport = 6;',
    ].join('\n'),
    'shared/b.ts': [
      "import { used } from './a.js';",
      "import * as a from './a.js';",
      'export const total = used({ n: a.viaNamespace });',
      "export { viaReexport as again } from './a.js';",
    ].join('\n'),
    'client/c.ts': [
      "import { total, again } from '../shared/b.js';",
      'export async function main(): Promise<number> {',
      "  const { viaDynamic } = await import('../shared/a.js');",
      '  return total + again + viaDynamic;',
      '}',
    ].join('\n'),
    'cli/main.ts': "import { main } from '../client/c.js';\nvoid main();\n",
    'test/shared/a.test.ts': "import { mirrorOnly } from '../../shared/a.js';\nvoid mirrorOnly;\n",
    'test/other.test.ts': "import { otherTestOnly } from '../shared/a.js';\nvoid otherTestOnly;\n",
  });
  const r = run(['--root', root]);
  t.equal(r.status, 1, 'fails');
  t.same(
    r.lines.sort(),
    [
      "shared/a.ts:2: 'Loose' is exported but never imported (type)",
      "shared/a.ts:4: 'LOCAL_ONLY' is exported but never imported",
      "shared/a.ts:6: 'neverRead' is exported but never imported",
      "shared/a.ts:8: 'otherTestOnly' is exported but never imported",
    ],
    'Shape is named by a used export; namespace, dynamic, re-exported and mirror-tested names count',
  );
  t.match(r.stderr, /4 unused export\(s\)/);
  const listed = run(['--root', root, '--list']);
  t.equal(listed.status, 0, '--list prints without failing');
  t.equal(listed.lines.length, 4);
});

t.test('a namespace used as a value counts every export of its module', async (t) => {
  const root = tree(t, {
    'shared/a.ts': 'export const one = 1;\nexport const two = 2;\n',
    'cli/main.ts': "import * as a from '../shared/a.js';\nconsole.log(Object.keys(a));\n",
  });
  const r = run(['--root', root]);
  t.equal(r.status, 0, r.lines.join('\n'));
  t.same(r.lines, []);
});

t.test('the repository has no unused export', async (t) => {
  const r = run([]);
  t.equal(r.status, 0, `${r.lines.join('\n')}\n${r.stderr}`);
});
