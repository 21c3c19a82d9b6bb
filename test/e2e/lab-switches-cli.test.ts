// `--lab-disable <defence>` as a user meets it (cli/lab-switches.ts): two keys (the flag AND
// KDS_ALLOW_INSECURE=1), never from the environment alone, unknown names are usage errors, only the key
// commands take it (enrollment and the other certificate operations refuse it), a loud warning on every
// start, and a KDC with a switch off says so in /healthz.
import t from 'tap';
import { initDataDir, parseJson, runKds, startServer } from '../helpers/kds-process.js';

t.test('the flag alone is refused: it also needs KDS_ALLOW_INSECURE=1', async (t) => {
  const dataDir = await initDataDir(t);
  const server = await runKds([
    'server',
    'start',
    '--lab-disable',
    'sequence-number',
    '--data-dir',
    dataDir,
    '--port',
    '0',
    '--json',
  ]);
  t.equal(server.code, 7, 'exit 7 (authentication)');
  const e = parseJson<{ error: { code: string; message: string } }>(server);
  t.equal(e.error.code, 'insecure_refused');
  t.match(e.error.message, /KDS_ALLOW_INSECURE=1/);

  const client = await runKds([
    'client',
    'keys',
    '--name',
    'alice',
    '--lab-disable',
    'record-authentication',
    '--data-dir',
    dataDir,
    '--json',
  ]);
  t.equal(client.code, 7);
  t.equal(parseJson<{ error: { code: string } }>(client).error.code, 'insecure_refused');
});

t.test('an unknown defence is a usage error, before anything else', async (t) => {
  const r = await runKds(['client', 'keys', '--name', 'alice', '--lab-disable', 'seatbelts', '--json'], {
    env: { KDS_ALLOW_INSECURE: '1' },
  });
  t.equal(r.code, 2);
  const e = parseJson<{ error: { code: string; message: string } }>(r);
  t.equal(e.error.code, 'bad_request');
  t.match(e.error.message, /unknown defence "seatbelts"; one of authentication, transcript-signature/);
});

t.test('certificate operations refuse it: enrollment always runs with every defence', async (t) => {
  const enroll = await runKds(
    [
      'client',
      'enroll',
      '--name',
      'alice',
      `--token=${'x'.repeat(43)}`,
      '--lab-disable',
      'certificate-chain',
      '--json',
    ],
    { env: { KDS_ALLOW_INSECURE: '1' } },
  );
  t.equal(enroll.code, 7);
  t.match(
    parseJson<{ error: { message: string } }>(enroll).error.message,
    /does not apply to `kds client enroll`/,
  );
});

t.test('the environment alone switches nothing off', async (t) => {
  const dataDir = await initDataDir(t);
  const server = await startServer(t, dataDir, [], {
    env: { KDS_ALLOW_INSECURE: '1', KDS_LAB_DISABLE: 'revocation' },
  });
  const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as Record<string, unknown>;
  t.equal(health.labDisabled, undefined, '/healthz: no switch is off');
  t.match(server.stderr(), /KDS_LAB_DISABLE is ignored: --lab-disable is a command-line flag only/);
  t.notMatch(server.stderr(), /LAB MODE/);
  await server.stop();
  t.equal(server.stderr().match(/KDS_LAB_DISABLE is ignored/g)?.length, 1, 'said once, up to the stop');
});

t.test('with both keys: a loud warning naming each defence, and /healthz lists them', async (t) => {
  const dataDir = await initDataDir(t);
  const server = await startServer(
    t,
    dataDir,
    ['--lab-disable', 'sequence-number', '--lab-disable', 'revocation,frame-limits'],
    { env: { KDS_ALLOW_INSECURE: '1' } },
  );
  const stderr = server.stderr();
  t.match(stderr, /WARNING LAB MODE \(--lab-disable\): this KDC runs with 3 DEFENCES SWITCHED OFF/);
  for (const s of ['sequence-number', 'revocation', 'frame-limits']) t.match(stderr, new RegExp(`- ${s}: `));
  t.match(stderr, /Enrollment stays fully checked/);
  const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as Record<string, unknown>;
  t.same(health.labDisabled, ['sequence-number', 'revocation', 'frame-limits'], 'in LAB_SWITCHES order');

  const client = await runKds(
    [
      'client',
      'keys',
      '--name',
      'alice',
      '--lab-disable',
      'sequence-number',
      '--data-dir',
      dataDir,
      '--server',
      'ws://127.0.0.1:1/kds',
    ],
    { env: { KDS_ALLOW_INSECURE: '1' } },
  );
  t.match(client.stderr, /WARNING LAB MODE \(--lab-disable\): this client runs with 1 DEFENCE SWITCHED OFF/);
  t.match(client.stderr, /- sequence-number: /);
});

t.test('--insecure-dh is the authentication switch of the same mechanism', async (t) => {
  const dataDir = await initDataDir(t);
  const server = await startServer(t, dataDir, ['--lab-disable', 'authentication'], {
    env: { KDS_ALLOW_INSECURE: '1' },
  });
  t.match(
    server.stderr(),
    /WARNING INSECURE MODE \(--insecure-dh\): this KDC ACCEPTS UNAUTHENTICATED SESSIONS/,
  );
  const health = (await (await fetch(`${server.httpUrl}/healthz`)).json()) as Record<string, unknown>;
  t.same(health.labDisabled, ['authentication']);
  const insecure = await startServer(t, await initDataDir(t), ['--insecure-dh'], {
    env: { KDS_ALLOW_INSECURE: '1' },
  });
  const h2 = (await (await fetch(`${insecure.httpUrl}/healthz`)).json()) as Record<string, unknown>;
  t.same(h2.labDisabled, ['authentication'], '--insecure-dh shows as the authentication switch');
});
