// One linter for the tree. The custom rule below bans `==`/`===` on Buffers named like secrets is not
// expressible generically, so the source scan in test/hardening/secret-compare.test.ts backs it up.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

import historyComments from './tools/eslint/no-history-comments.js';

// Folder boundaries (docs/architecture.md "Who may import whom"). Flat config replaces a rule's options
// per matching block instead of merging them, so each block repeats the node-forge restriction.
const FORGE = {
  name: 'node-forge',
  message: 'node-forge is used only by shared/pki/x509.ts (see STYLE.md).',
};
const IO_MODULES = [
  'fs',
  'fs/promises',
  'child_process',
  'http',
  'https',
  'http2',
  'dgram',
  'dns',
  'os',
  'readline',
  'worker_threads',
  'timers',
  'timers/promises',
];
const SHARED_PATHS = [
  FORGE,
  ...IO_MODULES.flatMap((m) => [
    {
      name: m,
      message: 'shared/ does no I/O: move this to io/, server/ or client/.',
    },
    {
      name: `node:${m}`,
      message: 'shared/ does no I/O: move this to io/, server/ or client/.',
    },
  ]),
  {
    name: 'node:net',
    allowImportNames: ['isIP', 'isIPv4', 'isIPv6'],
    message: 'shared/ may only use the address checks of node:net.',
  },
  ...['ws', 'better-sqlite3', 'pg', 'pino', 'prom-client', 'yargs'].map((name) => ({
    name,
    message: 'shared/ does no I/O: this package belongs in server/, client/ or cli/.',
  })),
];
const folder = (names, message) => ({
  group: names.flatMap((n) => [`../${n}/*`, `../../${n}/*`, `../../../${n}/*`, `../../../../${n}/*`]),
  message,
});
const restrict = (paths, patterns = []) => ['error', { paths, patterns }];

export default tseslint.config(
  {
    ignores: ['dist/**', 'node_modules/**', 'certs/**', '.tap/**', 'bench/results/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        URL: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': restrict([FORGE]),
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['shared/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict(SHARED_PATHS, [
        folder(
          ['server', 'client', 'cli', 'io'],
          'shared/ is imported by every side and imports none of them.',
        ),
      ]),
    },
  },
  {
    files: ['io/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict(
        [FORGE],
        [folder(['server', 'client', 'cli'], 'io/ serves server/ and client/ and imports neither.')],
      ),
    },
  },
  {
    files: ['client/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict(
        [FORGE],
        [folder(['server', 'cli'], 'client/ never links server code; put what both use in shared/ or io/.')],
      ),
    },
  },
  {
    files: ['server/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict(
        [FORGE],
        [folder(['client', 'cli'], 'server/ never links client code; put what both use in shared/ or io/.')],
      ),
    },
  },
  {
    // Comments say why the code is as it is; work-tracking labels mean nothing to a reader of the tree.
    files: ['**/*.ts', '**/*.js'],
    plugins: { kds: { rules: { 'no-history-comments': historyComments } } },
    rules: { 'kds/no-history-comments': 'error' },
  },
  {
    // The one node-forge user (STYLE.md), and the declaration of the forge function it calls that
    // @types/node-forge lacks: still pure like the rest of shared/.
    files: ['shared/pki/x509.ts', 'shared/pki/node-forge-csr.d.ts'],
    rules: {
      'no-restricted-imports': restrict(
        SHARED_PATHS.filter((p) => p !== FORGE),
        [
          folder(
            ['server', 'client', 'cli', 'io'],
            'shared/ is imported by every side and imports none of them.',
          ),
        ],
      ),
    },
  },
  {
    // Private members are `#` fields (docs/architecture.md "Conventions"): a TypeScript `private` member is
    // an ordinary property at run time, which spread, JSON.stringify and an object dump show. A private
    // constructor has no `#` form and stays allowed.
    files: ['**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        ...[
          "PropertyDefinition[accessibility='private']",
          "MethodDefinition[accessibility='private'][kind!='constructor']",
          "TSParameterProperty[accessibility='private']",
          "TSAbstractPropertyDefinition[accessibility='private']",
          "TSAbstractMethodDefinition[accessibility='private']",
        ].map((selector) => ({
          selector,
          message: 'Use a #private member: TypeScript `private` is an ordinary property at run time.',
        })),
      ],
    },
  },
  {
    // Type-aware rules, the promise ones only: a promise nobody awaits or handles loses its rejection
    // (an unhandled rejection ends the process), and a promise where a boolean or a void callback is
    // expected is always truthy or never awaited. The project service reads each file's own tsconfig
    // (web/console has its own).
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // tap runs the subtests a test file starts (`t.test(...)` at the top level) and reports their
          // failures itself: its promise is never left unhandled.
          allowForKnownSafePromises: [
            { from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    // Tests reach across folders on purpose (an independent decoder, a server for a client test).
    files: ['test/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
