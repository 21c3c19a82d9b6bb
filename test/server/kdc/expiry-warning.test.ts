// A KDC running for months must still warn a week before its own certificate expires: the start's
// check is made again on a timer (every day; here every few milliseconds), and each time the line is
// logged again.
import t from 'tap';
import { startKdc } from '../../../server/kdc/kdc.js';
import { initDataDir, runKds, TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';

t.setTimeout(120_000);

t.test('the expiry warning is logged again while the KDC runs', async (t) => {
  const dataDir = await initDataDir(t);
  const renew = await runKds(['server', 'renew', '--data-dir', dataDir, '--days', '3']);
  t.equal(renew.code, 0, renew.stderr);
  const lines: string[] = [];
  const kdc = await startKdc({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    passphrase: TEST_CA_PASSPHRASE,
    expiryCheckMs: 20,
    log: (line) => lines.push(line),
  });
  t.teardown(() => kdc.close());
  const warnings = () => lines.filter((l) => /^the KDC certificate expires on .*kds server renew/.test(l));
  t.equal(warnings().length, 1, 'at the start, without a "warning:" of its own (the log adds it)');
  while (warnings().length < 3) await new Promise((resolve) => setTimeout(resolve, 20));
  t.pass('logged again by the timer');
  await kdc.close();
});

t.test('a bad expiryCheckMs is refused', async (t) => {
  const dataDir = await initDataDir(t);
  await t.rejects(startKdc({ dataDir, port: 0, passphrase: TEST_CA_PASSPHRASE, expiryCheckMs: 0 }), {
    code: 'bad_request',
  });
});
