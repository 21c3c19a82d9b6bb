// One linter for the tree. The custom rule below bans `==`/`===` on Buffers named like secrets is not
// expressible generically, so the source scan in test/hardening/secret-compare.test.ts backs it up.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'certs/**', '.tap/**', 'bench/results/**'] },
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
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'node-forge', message: 'node-forge is used only by shared/pki/x509.ts (see STYLE.md).' },
          ],
        },
      ],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['shared/pki/x509.ts', 'shared/pki/asn1.ts', 'test/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
