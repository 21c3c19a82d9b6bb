import t from 'tap';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCaPassphrase, resolveCaPassphrase } from '../../io/ca-passphrase.js';
import { tempDir } from '../helpers/tmp.js';

t.test('precedence: option, file, environment, stored', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'pf');
  writeFileSync(file, 'file-secret\r\n', { mode: 0o600 });
  const env = { KDS_CA_PASSPHRASE: 'env-secret' };
  t.match(resolveCaPassphrase(dir, { passphrase: 'opt', passphraseFile: file, env }), {
    passphrase: 'opt',
    source: 'option',
  });
  t.match(resolveCaPassphrase(dir, { passphraseFile: file, env }), {
    passphrase: 'file-secret',
    source: 'file',
    path: file,
  });
  t.match(resolveCaPassphrase(dir, { env }), { passphrase: 'env-secret', source: 'env' });
  t.throws(() => resolveCaPassphrase(dir, { env: {} }), { code: 'config' }, 'nothing anywhere');
  t.throws(() => resolveCaPassphrase(dir, { env: { KDS_CA_PASSPHRASE: '' } }), { code: 'config' });
  const generated = createCaPassphrase(dir, { env: {} });
  t.equal(generated.source, 'generated');
  t.equal(statSync(join(dir, 'ca', 'passphrase')).mode & 0o777, 0o600);
  t.match(resolveCaPassphrase(dir, { env: {} }), { passphrase: generated.passphrase, source: 'stored' });
});

t.test('bad passphrase files', async (t) => {
  const dir = tempDir(t);
  t.throws(() => resolveCaPassphrase(dir, { passphraseFile: join(dir, 'missing') }), { code: 'config' });
  const empty = join(dir, 'empty');
  writeFileSync(empty, '\n', { mode: 0o600 });
  t.throws(() => resolveCaPassphrase(dir, { passphraseFile: empty }), { code: 'config' });
  const loose = join(dir, 'loose');
  writeFileSync(loose, 'x', { mode: 0o644 });
  t.match(resolveCaPassphrase(dir, { passphraseFile: loose }).warnings.join(), /readable by group or others/);
  t.throws(() => resolveCaPassphrase(dir, { passphrase: 'x'.repeat(2000) }), { code: 'config' });
});
