// The lint rules that keep the tree's shape (eslint.config.js; docs/architecture.md "Who may import
// whom"): each rule is run through ESLint with the repository's own configuration on a made-up file
// placed in the folder under test, so a rule that silently stops matching fails here, not in review.
import t from 'tap';
import { ESLint } from 'eslint';
import { REPO_ROOT } from '../helpers/kds-process.js';

// The made-up files exist only as text: the type-aware rules' project service, which finds a file's
// tsconfig on disk, types them with the repository's tsconfig instead (its default project).
const eslint = new ESLint({
  cwd: REPO_ROOT,
  overrideConfig: {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: {
        projectService: {
          allowDefaultProject: ['*/made-up.ts', '*/*/made-up.ts', 'test/*/made-up.test.ts'],
          defaultProject: 'tsconfig.json',
        },
      },
    },
  },
});

// The same configuration with its type-aware rules (the promise ones, the last case here) off and no
// project service, for the cases of the other rules, which read the syntax only: the service types a
// made-up file in a program of the whole tree (its default project), and every file linted updates that
// program (most of this file's CPU). A type-aware rule added to the configuration and not named here
// makes those cases fail ("requires type information"), not pass.
const TYPE_AWARE_RULES = [
  '@typescript-eslint/no-floating-promises',
  '@typescript-eslint/no-misused-promises',
  '@typescript-eslint/await-thenable',
];
const syntaxOnly = new ESLint({
  cwd: REPO_ROOT,
  overrideConfig: {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: false } },
    rules: Object.fromEntries(TYPE_AWARE_RULES.map((rule) => [rule, 'off'])),
  },
});

async function ruleHits(filePath: string, code: string, linter = syntaxOnly): Promise<string[]> {
  const [result] = await linter.lintText(code, { filePath });
  return (result?.messages ?? []).map((m) => `${m.ruleId}: ${m.message}`);
}

t.test('shared/ imports no I/O and nothing from server/, client/, cli/ or io/', async (t) => {
  const hits = await ruleHits(
    'shared/pki/made-up.ts',
    [
      "import { a } from '../../server/ca/init.js';",
      "import { b } from '../../client/session.js';",
      "import { c } from '../../io/fs-atomic.js';",
      "import { d } from '../../cli/output.js';",
      "import { readFileSync } from 'node:fs';",
      "import { connect } from 'node:net';",
      "import WebSocket from 'ws';",
      'export const all = [a, b, c, d, readFileSync, connect, WebSocket];',
    ].join('\n'),
  );
  t.equal(hits.filter((h) => h.startsWith('no-restricted-imports')).length, 7, hits.join('\n'));
  t.same(
    await ruleHits(
      'shared/pki/made-up.ts',
      "import { isIP } from 'node:net';\nimport { createHash } from 'node:crypto';\nexport const f = [isIP, createHash];\n",
    ),
    [],
    'the pure parts of node: are allowed',
  );
});

t.test(
  'client/ never imports server/; server/ never imports client/; both may use io/ and shared/',
  async (t) => {
    const client = await ruleHits(
      'client/made-up.ts',
      "import { a } from '../server/kdc/kdc.js';\nexport const x = a;\n",
    );
    t.match(client, [/^no-restricted-imports: .*client\/ never links server code/]);
    const server = await ruleHits(
      'server/kdc/made-up.ts',
      "import { a } from '../../client/session.js';\nexport const x = a;\n",
    );
    t.match(server, [/^no-restricted-imports: .*server\/ never links client code/]);
    const io = await ruleHits(
      'io/made-up.ts',
      "import { a } from '../server/kdc/kdc.js';\nexport const x = a;\n",
    );
    t.match(io, [/^no-restricted-imports: /]);
    t.same(
      await ruleHits(
        'client/made-up.ts',
        "import { writeFileAtomic } from '../io/fs-atomic.js';\nimport { KdsError } from '../shared/errors.js';\nexport const x = [writeFileAtomic, KdsError];\n",
      ),
      [],
    );
  },
);

t.test('node-forge only in shared/pki/x509.ts', async (t) => {
  const code = "import forge from 'node-forge';\nexport const f = forge;\n";
  t.match(await ruleHits('shared/pki/made-up.ts', code), [/^no-restricted-imports: .*node-forge/]);
  t.match(await ruleHits('server/made-up.ts', code), [/^no-restricted-imports: .*node-forge/]);
  t.same(await ruleHits('shared/pki/x509.ts', code), []);
});

t.test('comments that cite work-tracking labels are refused; other numbers are not', async (t) => {
  // The labels are assembled from parts so that a search of the repository for history labels in
  // comments finds real offenders only, not this rule's own inputs.
  const label = (word: string, rest: string): string => `${word} ${rest}`;
  for (const comment of [
    `// Enrollment (${label('issue', '3')}): the client`,
    `// see ${label('Issue', '#12')}`,
    `/** The extensions (${label('issue', '2')} ${label('parts', '3 and 4')}). */`,
    `// Delta CRLs (${label('part', '3(b)')})`,
    `// Until ${label('session', '2')} the serial was reserved`,
    `// ${label('wave', '1')} of the rollout`,
  ]) {
    const hits = await ruleHits('server/made-up.ts', `${comment}\nexport const x = 1;\n`);
    t.match(hits, [/^kds\/no-history-comments: /], comment);
  }
  for (const comment of [
    '// opened in waves of WAVE so that the accept queue never overflows',
    '// 1,000 sessions at once',
    '// an issue of the CRL every 5 minutes',
    '// the first part of the handshake',
  ]) {
    t.same(await ruleHits('server/made-up.ts', `${comment}\nexport const x = 1;\n`), [], comment);
  }
});

t.test('private members are # fields; a TypeScript `private` member is refused', async (t) => {
  for (const member of [
    'private x = 1;',
    'private readonly y: number = 2;',
    'private m(): number { return 1; }',
    'private static s = 3;',
    'constructor(private readonly p: number) {}',
  ]) {
    const hits = await ruleHits('shared/made-up.ts', `export class A {\n  ${member}\n}\n`);
    t.match(hits, [/^no-restricted-syntax: Use a #private member/], member);
  }
  for (const member of [
    '#x = 1;',
    'readonly #y: number = 2;',
    '#m(): number { return 1; }',
    'private constructor() {}',
    'protected z = 4;',
  ]) {
    const hits = await ruleHits('client/made-up.ts', `export class A {\n  ${member}\n}\n`);
    t.same(
      hits.filter((h) => h.startsWith('no-restricted-syntax')),
      [],
      member,
    );
  }
});

t.test('a promise is awaited or handled, and never used where a boolean or a void callback is', async (t) => {
  const hits = await ruleHits(
    'server/kdc/made-up.ts',
    [
      'async function work(): Promise<number> { return 1; }',
      'work();',
      'export const each = [1].forEach(async () => { await work(); });',
      'export function when(): number { return work() ? 1 : 0; }',
      'export async function plain(): Promise<number> { return await 1; }',
    ].join('\n'),
    eslint,
  );
  t.same(
    hits.map((h) => h.split(':')[0]),
    [
      '@typescript-eslint/no-floating-promises',
      '@typescript-eslint/no-misused-promises',
      '@typescript-eslint/no-misused-promises',
      '@typescript-eslint/await-thenable',
    ],
    hits.join('\n'),
  );
  t.same(
    await ruleHits(
      'server/kdc/made-up.ts',
      [
        'async function work(): Promise<number> { return 1; }',
        'void work();',
        'work().catch(() => undefined);',
        'export async function awaited(): Promise<number> { return await work(); }',
      ].join('\n'),
      eslint,
    ),
    [],
    'awaited, caught or explicitly voided',
  );
  const test = await ruleHits(
    'test/server/made-up.test.ts',
    [
      "import t from 'tap';",
      "t.test('runs', async (t) => { t.pass('ran'); });",
      'async function work(): Promise<number> { return 1; }',
      'work();',
    ].join('\n'),
    eslint,
  );
  t.same(
    test.map((h) => h.split(':')[0]),
    ['@typescript-eslint/no-floating-promises'],
    "tap's own subtests are not floating; any other promise is",
  );
});
